"""Algorithm registry. Importing this package registers every shipped algorithm."""

from jaxlab.algorithms import a2c, ppo, reinforce, sarsa
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
    "a2c",
    "ppo",
    "reinforce",
    "sarsa",
    "register",
    "registered",
]
