"""Pure RL maths: returns/GAE on [T, B], normalisers, distributions."""

from jaxlab.rl.distributions import Categorical, DiagGaussian
from jaxlab.rl.gae import gae
from jaxlab.rl.normalize import RunningStats

__all__ = ["Categorical", "DiagGaussian", "RunningStats", "gae"]
