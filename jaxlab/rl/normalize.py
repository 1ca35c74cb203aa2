"""Running mean/variance statistics (parallel Welford merge) for obs/reward normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    """Mean and variance of everything seen so far, per feature. ``count`` is a float."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> RunningStats:
        # count starts at a tiny epsilon (as in gym's wrappers) so the first merge is stable.
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.float32(1e-4))

    def update(self, batch: jax.Array) -> RunningStats:
        """Merge a batch ``[n, *shape]`` (Chan et al. parallel variance)."""
        b_mean = batch.mean(0)
        b_var = batch.var(0)
        b_count = jnp.float32(batch.shape[0])
        delta = b_mean - self.mean
        total = self.count + b_count
        mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        return RunningStats(mean, m2 / total, total)

    def normalize(self, x: jax.Array, clip: float | jax.Array) -> jax.Array:
        """``clip((x - mean) / std, -clip, clip)`` for ``x [..., *shape]``."""
        mean = jnp.broadcast_to(self.mean, x.shape)
        std = jnp.broadcast_to(jnp.sqrt(self.var + 1e-8), x.shape)
        return jnp.clip((x - mean) / std, -clip, clip)

    def scale(self, x: jax.Array, clip: float | jax.Array) -> jax.Array:
        """Divide by the standard deviation only (reward scaling keeps the sign and zero)."""
        return jnp.clip(x / jnp.sqrt(self.var + 1e-8), -clip, clip)
