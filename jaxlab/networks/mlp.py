"""MLP actor-critic with orthogonal initialisation.

Hidden layers use ``orthogonal(sqrt(2))`` (see :mod:`jaxlab.networks.init`), the policy head ``orthogonal(0.01)`` and the
value head ``orthogonal(1.0)``, all with zero biases. With ``shared=True`` one torso feeds
both heads; otherwise actor and critic have separate torsos of the same widths. For
continuous actions the policy outputs a mean and a state-independent ``log_std``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.networks.init import orthogonal
from jaxlab.rl.distributions import Categorical, DiagGaussian

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}


def dense(features: int, scale: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Torso: ``x [..., D] -> [..., hid_layers[-1]]`` (identity when ``hid_layers`` is empty)."""

    hid_layers: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hid_layers:
            x = act(dense(width, math.sqrt(2))(x))
        return x


class ActorCritic(nn.Module):
    """``obs [..., D] -> (distribution over actions, value [...])``; ``value`` alone too."""

    action_dim: int
    discrete: bool
    hid_layers: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared: bool = False

    def setup(self) -> None:
        self.actor_torso = MLP(self.hid_layers, self.activation)
        if not self.shared:
            self.critic_torso = MLP(self.hid_layers, self.activation)
        self.policy_head = dense(self.action_dim, 0.01)
        self.value_head = dense(1, 1.0)
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def __call__(self, obs: jax.Array) -> tuple[Categorical | DiagGaussian, jax.Array]:
        actor_h = self.actor_torso(obs)
        critic_h = actor_h if self.shared else self.critic_torso(obs)
        value = self.value_head(critic_h)[..., 0]
        out = self.policy_head(actor_h)
        if self.discrete:
            return Categorical(out), value
        return DiagGaussian(out, jnp.broadcast_to(self.log_std, out.shape)), value

    def policy(self, obs: jax.Array) -> Categorical | DiagGaussian:
        """The actor only (no critic work): ``obs [..., D] ->`` action distribution."""
        out = self.policy_head(self.actor_torso(obs))
        if self.discrete:
            return Categorical(out)
        return DiagGaussian(out, jnp.broadcast_to(self.log_std, out.shape))

    def value(self, obs: jax.Array) -> jax.Array:
        """The critic only (no policy head work): ``obs [..., D] -> [...]``."""
        torso = self.actor_torso if self.shared else self.critic_torso
        return self.value_head(torso(obs))[..., 0]
