"""Value-based and actor-critic heads: Q networks (optionally dueling), critic ensembles
(twin critics), SAC's stochastic actors and TD3's deterministic one.

Shapes: ``obs [..., D]``; discrete Q ``[..., A]``; an ensemble of ``K`` critics gets a
leading axis of ``K``, ``[K, ..., A]`` or ``[K, ...]`` (twin: ``K = 2``).

Dueling (Wang et al., 2016): ``Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a')``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.networks.mlp import Torso, TorsoDef, dense, mask_actions
from jaxlab.rl.distributions import Categorical, TanhGaussian

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class QNetwork(nn.Module):
    """``obs [..., D] -> Q [..., A]`` for discrete actions."""

    action_dim: int
    torso: TorsoDef = TorsoDef()
    dueling: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        h = Torso(self.torso)(obs)
        adv = dense(self.action_dim, 1.0, self.torso.kernel_init)(h)
        if not self.dueling:
            return mask_actions(adv, obs, self.torso.mask_dim)
        value = dense(1, 1.0, self.torso.kernel_init)(h)
        return mask_actions(
            value + adv - adv.mean(axis=-1, keepdims=True), obs, self.torso.mask_dim
        )


class StateActionQ(nn.Module):
    """``(obs [..., D], action [..., A]) -> Q [...]`` for continuous actions."""

    torso: TorsoDef = TorsoDef()

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        h = Torso(self.torso)(jnp.concatenate([obs, action], axis=-1))
        return dense(1, 1.0, self.torso.kernel_init)(h)[..., 0]


def ensemble(module: type[nn.Module], size: int, **fields: object) -> nn.Module:
    """``size`` independent copies of ``module`` evaluated together: outputs get a leading
    axis of ``size`` (and so do their parameters and batch statistics)."""
    copies = nn.vmap(
        module,
        variable_axes={"params": 0, "batch_stats": 0},
        split_rngs={"params": True},
        in_axes=None,
        out_axes=0,
        axis_size=size,
    )
    return copies(**fields)


def twin(module: type[nn.Module], **fields: object) -> nn.Module:
    """Two independent copies of ``module`` (twin critics): outputs get a leading 2."""
    return ensemble(module, 2, **fields)


class DiscreteActor(nn.Module):
    """``obs [..., D] -> Categorical`` over ``action_dim`` actions."""

    action_dim: int
    torso: TorsoDef = TorsoDef()

    @nn.compact
    def __call__(self, obs: jax.Array) -> Categorical:
        logits = dense(self.action_dim, 0.01, self.torso.kernel_init)(Torso(self.torso)(obs))
        return Categorical(mask_actions(logits, obs, self.torso.mask_dim))


class SquashedActor(nn.Module):
    """``obs [..., D] -> TanhGaussian`` in the box ``[low, high]`` (state-dependent std,
    ``log_std`` clipped to [-5, 2])."""

    action_dim: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    torso: TorsoDef = TorsoDef()

    @nn.compact
    def __call__(self, obs: jax.Array) -> TanhGaussian:
        h = Torso(self.torso)(obs)
        mean = dense(self.action_dim, 0.01, self.torso.kernel_init)(h)
        log_std = jnp.clip(
            dense(self.action_dim, 0.01, self.torso.kernel_init)(h), LOG_STD_MIN, LOG_STD_MAX
        )
        low, high = jnp.asarray(self.low), jnp.asarray(self.high)
        return TanhGaussian(mean, log_std, (high - low) / 2.0, (high + low) / 2.0)


class DeterministicActor(nn.Module):
    """``obs [..., D] -> action [..., A]`` in the box: ``center + half_range * tanh(mu(s))``
    (TD3/DDPG's policy)."""

    action_dim: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    torso: TorsoDef = TorsoDef()

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        mean = dense(self.action_dim, 0.01, self.torso.kernel_init)(Torso(self.torso)(obs))
        low, high = (jnp.broadcast_to(jnp.asarray(b), mean.shape) for b in (self.low, self.high))
        return (high + low) / 2.0 + (high - low) / 2.0 * jnp.tanh(mean)
