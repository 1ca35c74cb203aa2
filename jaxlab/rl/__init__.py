"""Pure RL maths: returns/GAE on [T, B], losses, selection ops, normalisers, distributions."""

from jaxlab.rl.distributions import Categorical, DiagGaussian, TanhGaussian
from jaxlab.rl.gae import gae
from jaxlab.rl.normalize import RunningStats

__all__ = ["Categorical", "DiagGaussian", "RunningStats", "TanhGaussian", "gae"]
