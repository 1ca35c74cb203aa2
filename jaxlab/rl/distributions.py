"""Action distributions as small pytrees: categorical (logits) and diagonal Gaussian.

Shapes: a batch ``[..., A]`` of parameters gives samples ``[...]`` (categorical) or
``[..., A]`` (Gaussian); ``log_prob`` and ``entropy`` return ``[...]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Categorical:
    logits: jax.Array  # [..., A]

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        # A one-hot contraction, not a gather: its gradient is a multiply instead of a
        # scatter-add, which is much cheaper on CPU.
        logp = jax.nn.log_softmax(self.logits)
        return jnp.sum(logp * jax.nn.one_hot(action, logp.shape[-1], dtype=logp.dtype), axis=-1)

    def entropy(self) -> jax.Array:
        logp = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


@struct.dataclass
class DiagGaussian:
    mean: jax.Array  # [..., A]
    log_std: jax.Array  # same shape as mean

    def sample(self, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def mode(self) -> jax.Array:
        return self.mean

    def log_prob(self, action: jax.Array) -> jax.Array:
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        z = (action - self.mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)

    def entropy(self) -> jax.Array:
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        return jnp.sum(log_std + 0.5 * (1.0 + math.log(2 * math.pi)), axis=-1)


@struct.dataclass
class TanhGaussian:
    """A Gaussian squashed by tanh into the box ``shift +- scale`` (SAC's policy).

    With ``u ~ N(mean, std)`` and ``a = shift + scale * tanh(u)``:

        log pi(a) = log N(u; mean, std) - sum_i log(scale_i * (1 - tanh(u_i)^2))

    ``sample_and_log_prob`` uses the reparameterised ``u`` (gradients flow through the
    sample). ``log_prob`` of a given action inverts the squash (clipped inside the box).
    ``entropy`` is a one-point estimate at the mean: the Gaussian's entropy plus the
    log-Jacobian there (there is no closed form).
    """

    mean: jax.Array  # [..., A]
    log_std: jax.Array  # [..., A]
    scale: jax.Array  # [A] (or broadcastable)
    shift: jax.Array  # [A]

    def _box(self, like: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``scale`` and ``shift`` broadcast to ``like``'s shape (no implicit rank promotion)."""
        return jnp.broadcast_to(self.scale, like.shape), jnp.broadcast_to(self.shift, like.shape)

    def _log_det(self, t: jax.Array) -> jax.Array:
        scale = jnp.broadcast_to(self.scale, t.shape)
        return jnp.sum(jnp.log(scale * (1.0 - t**2) + 1e-6), axis=-1)

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        base = DiagGaussian(self.mean, self.log_std)
        u = base.sample(key)
        t = jnp.tanh(u)
        scale, shift = self._box(t)
        return shift + scale * t, base.log_prob(u) - self._log_det(t)

    def sample(self, key: jax.Array) -> jax.Array:
        return self.sample_and_log_prob(key)[0]

    def mode(self) -> jax.Array:
        scale, shift = self._box(self.mean)
        return shift + scale * jnp.tanh(self.mean)

    def log_prob(self, action: jax.Array) -> jax.Array:
        scale, shift = self._box(action)
        t = jnp.clip((action - shift) / scale, -1.0 + 1e-6, 1.0 - 1e-6)
        u = jnp.arctanh(t)
        return DiagGaussian(self.mean, self.log_std).log_prob(u) - self._log_det(t)

    def entropy(self) -> jax.Array:
        return DiagGaussian(self.mean, self.log_std).entropy() + self._log_det(jnp.tanh(self.mean))
