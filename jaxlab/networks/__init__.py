"""Networks: torsos (MLP, Conv), the actor-critic, Q networks, twin critics, SAC actors."""

from jaxlab.networks.heads import (
    DiscreteActor,
    QNetwork,
    SquashedActor,
    StateActionQ,
    twin,
)
from jaxlab.networks.mlp import MASKED, MLP, ActorCritic, Torso, TorsoDef, allowed, mask_actions

__all__ = [
    "MASKED",
    "MLP",
    "ActorCritic",
    "DiscreteActor",
    "QNetwork",
    "SquashedActor",
    "StateActionQ",
    "Torso",
    "TorsoDef",
    "allowed",
    "mask_actions",
    "twin",
]
