"""Networks: torsos (MLP, Conv), the actor-critic, Q networks, twin critics, SAC and TD3 actors."""

from jaxlab.networks.heads import (
    DeterministicActor,
    DiscreteActor,
    QNetwork,
    SquashedActor,
    StateActionQ,
    ensemble,
    twin,
)
from jaxlab.networks.mlp import MASKED, MLP, ActorCritic, Torso, TorsoDef, allowed, mask_actions

__all__ = [
    "MASKED",
    "MLP",
    "ActorCritic",
    "DeterministicActor",
    "DiscreteActor",
    "QNetwork",
    "SquashedActor",
    "StateActionQ",
    "Torso",
    "TorsoDef",
    "allowed",
    "ensemble",
    "mask_actions",
    "twin",
]
