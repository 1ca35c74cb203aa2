"""Networks: MLP torso and actor-critic heads."""

from jaxlab.networks.mlp import MLP, ActorCritic

__all__ = ["MLP", "ActorCritic"]
