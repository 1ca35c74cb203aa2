"""Algorithm registry. Importing this package registers every shipped algorithm."""

from jaxlab.algorithms import dqn, ppo
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
    "dqn",
    "ppo",
    "register",
    "registered",
]
