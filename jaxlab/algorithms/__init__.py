"""Algorithm registry. Importing this package registers every shipped algorithm."""

from jaxlab.algorithms import a2c, crossq, dqn, forms, ppo, pqn, reinforce, sac, sarsa, td3
from jaxlab.algorithms.registry import (
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
    "a2c",
    "crossq",
    "dqn",
    "forms",
    "get_algorithm",
    "ppo",
    "pqn",
    "register",
    "registered",
    "reinforce",
    "sac",
    "sarsa",
    "td3",
]
