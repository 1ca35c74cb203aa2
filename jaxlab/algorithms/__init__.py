"""Algorithm registry. Importing this package registers every shipped algorithm."""

from jaxlab.algorithms import ppo, sac
from jaxlab.algorithms.base import (
    EPISODE_METRICS,
    SAMPLE_METRICS,
    Agent,
    AlgorithmEntry,
    get_algorithm,
    register,
    registered,
)

__all__ = [
    "EPISODE_METRICS",
    "SAMPLE_METRICS",
    "Agent",
    "AlgorithmEntry",
    "get_algorithm",
    "ppo",
    "sac",
    "register",
    "registered",
]
