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
