"""Networks: torsos (MLP, Conv), the actor-critic, Q networks, twin critics, SAC actors."""

from jaxlab.networks.heads import (
    DiscreteActor,
    QNetwork,
    SquashedActor,
    StateActionQ,
    twin,
)
from jaxlab.networks.mlp import MLP, ActorCritic, Torso, TorsoDef

__all__ = [
    "MLP",
    "ActorCritic",
    "DiscreteActor",
    "QNetwork",
    "SquashedActor",
    "StateActionQ",
    "Torso",
    "TorsoDef",
    "twin",
]
