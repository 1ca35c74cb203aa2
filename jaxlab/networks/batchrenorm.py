"""Batch renormalisation (Ioffe, 2017) and CrossQ's batch-renormalised critic.

Over the batch axes of ``x [..., F]``, with batch mean and std ``mu_B``, ``sigma_B`` and
running ones ``mu``, ``sigma`` (``sigma^2 = var + eps`` throughout):

    train:  x_hat = (x - mu_B) / sigma_B * r + d,
            r = sg(clip(sigma_B / sigma, 1 / r_max, r_max)),
            d = sg(clip((mu_B - mu) / sigma, -d_max, d_max)),
            mu <- m mu + (1 - m) mu_B,  var <- m var + (1 - m) var_B
    eval:   x_hat = (x - mu) / sigma
    out:    y = scale * x_hat + bias

For the first ``warmup_steps`` training calls ``r = 1``, ``d = 0`` (plain batch norm) while
the running statistics settle. The running ``mean``, ``var`` and the call count ``steps``
are the ``batch_stats`` collection: state leaves, checkpointed like the parameters.
``steps`` is int32: a run that may call it 2**31 times (``saturate``) stops counting at
``warmup_steps``, where its only reader (``steps < warmup_steps``) no longer changes;
other runs keep the plain count (and the program they always compiled).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.networks.mlp import ACTIVATIONS, dense

sg = jax.lax.stop_gradient


class BatchRenorm(nn.Module):
    """See the module docstring; ``train`` picks batch or running statistics."""

    train: bool
    momentum: float = 0.99
    warmup_steps: int = 100_000
    r_max: float = 3.0
    d_max: float = 5.0
    epsilon: float = 1e-3
    saturate: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        feat, lead = x.shape[-1], (1,) * (x.ndim - 1)
        mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((feat,), jnp.float32))
        var = self.variable("batch_stats", "var", lambda: jnp.ones((feat,), jnp.float32))
        steps = self.variable("batch_stats", "steps", lambda: jnp.zeros((), jnp.int32))
        scale = self.param("scale", nn.initializers.ones, (feat,))
        bias = self.param("bias", nn.initializers.zeros, (feat,))
        run_mean, run_std = mean.value.reshape(lead + (feat,)), jnp.sqrt(var.value + self.epsilon)
        run_std = run_std.reshape(lead + (feat,))
        if not self.train:
            x_hat = (x - run_mean) / run_std
        else:
            axes = tuple(range(x.ndim - 1))
            batch_mean = x.mean(axes, keepdims=True)
            batch_var = ((x - batch_mean) ** 2).mean(axes, keepdims=True)
            batch_std = jnp.sqrt(batch_var + self.epsilon)
            warm = steps.value < self.warmup_steps
            r = jnp.where(warm, 1.0, jnp.clip(batch_std / run_std, 1 / self.r_max, self.r_max))
            d = jnp.clip((batch_mean - run_mean) / run_std, -self.d_max, self.d_max)
            d = jnp.where(warm, 0.0, d)
            x_hat = (x - batch_mean) / batch_std * sg(r) + sg(d)
            if not self.is_initializing():
                m = self.momentum
                mean.value = m * mean.value + (1 - m) * sg(batch_mean).reshape(feat)
                var.value = m * var.value + (1 - m) * sg(batch_var).reshape(feat)
                more = (steps.value < self.warmup_steps).astype(jnp.int32) if self.saturate else 1
                steps.value = steps.value + more
        return x_hat * scale.reshape(lead + (feat,)) + bias.reshape(lead + (feat,))


class RenormQ(nn.Module):
    """CrossQ's critic: ``(obs [B, D], action [B, A]) -> Q [B]``, or with ``action_dim``
    (discrete actions) ``obs [B, D] -> Q [B, action_dim]``; the input and every hidden
    layer batch-renormalised (dense -> BatchRenorm -> activation)."""

    hid_layers: Sequence[int]
    train: bool
    activation: str = "relu"
    kernel_init: str = "orthogonal"
    momentum: float = 0.99
    warmup_steps: int = 100_000
    action_dim: int = 0
    saturate: bool = False  # BatchRenorm's: the run may call it 2**31 times

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array | None = None) -> jax.Array:
        norm = lambda: BatchRenorm(  # noqa: E731
            self.train, self.momentum, self.warmup_steps, saturate=self.saturate
        )
        act = ACTIVATIONS[self.activation]
        x = norm()(obs if self.action_dim else jnp.concatenate([obs, action], axis=-1))
        for width in self.hid_layers:
            x = act(norm()(dense(width, 2**0.5, self.kernel_init)(x)))
        if self.action_dim:
            return dense(self.action_dim, 1.0, self.kernel_init)(x)
        return dense(1, 1.0, self.kernel_init)(x)[..., 0]


__all__ = ["BatchRenorm", "RenormQ"]
