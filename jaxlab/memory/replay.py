"""Replay memories as fixed-size arrays inside the training state (vmappable over seeds).

:class:`ReplayBuffer` is a ring buffer of ``capacity`` transitions; ``data`` is any
pytree whose leaves are ``[capacity, ...]``. :class:`PrioritizedReplay` adds one
priority per slot and samples proportionally (Schaul et al., 2016):

    P(i) = p_i^alpha / sum_j p_j^alpha          over the filled slots
    w_i  = (n * P(i))^-beta / max_k w_k         (k over the sampled minibatch)

New transitions enter at the largest priority seen so far, so each is replayed at least
once with high probability; after learning, ``update`` sets ``p_i = |delta_i| + epsilon``.

Sampling is stratified: the total mass is cut into ``B`` equal segments and one point is
drawn uniformly in each, then located with a binary search (``searchsorted``) in the
cumulative sum of ``p^alpha``. That replaces a sum-tree: one vectorised ``cumsum`` of
``capacity`` entries per minibatch, no per-item tree walks, so it is a handful of fused
kernels under ``jit`` and ``vmap`` (a sum-tree's sequential updates serialise badly on an
accelerator). The cumulative sum runs in float32; priorities are clipped to >= epsilon.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ReplayBuffer:
    """Uniform ring buffer. ``pos``: next slot to write; ``size``: filled slots (<= capacity)."""

    data: Any  # pytree of [capacity, ...]
    pos: jax.Array  # int32
    size: jax.Array  # int32

    @classmethod
    def create(cls, example: Any, capacity: int) -> ReplayBuffer:
        """An empty buffer for items shaped like ``example`` (one transition, no batch dim)."""
        data = jax.tree.map(
            lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example
        )
        return cls(data, jnp.int32(0), jnp.int32(0))

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]

    def slots(self, count: int) -> jax.Array:
        """The ``count`` slots the next :meth:`add` writes, ``[count]`` int32."""
        return (self.pos + jnp.arange(count, dtype=jnp.int32)) % self.capacity

    def add(self, batch: Any) -> ReplayBuffer:
        """Write ``batch`` (leaves ``[B, ...]``, ``B <= capacity``), overwriting the oldest."""
        count = jax.tree.leaves(batch)[0].shape[0]
        if count > self.capacity:
            raise ValueError(f"cannot add {count} transitions to a buffer of {self.capacity}")
        idx = self.slots(count)
        data = jax.tree.map(lambda buf, x: buf.at[idx].set(x.astype(buf.dtype)), self.data, batch)
        return ReplayBuffer(
            data, (self.pos + count) % self.capacity, jnp.minimum(self.size + count, self.capacity)
        )

    def get(self, idx: jax.Array) -> Any:
        return jax.tree.map(lambda buf: buf[idx], self.data)

    def sample(self, key: jax.Array, batch_size: int) -> tuple[jax.Array, Any]:
        """``batch_size`` slots drawn uniformly (with replacement) from the filled ones."""
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(self.size, 1))
        return idx, self.get(idx)


@struct.dataclass
class PrioritizedReplay:
    """Proportional prioritized replay over a :class:`ReplayBuffer`; see the module docstring."""

    buffer: ReplayBuffer
    priority: jax.Array  # [capacity] float32, p_i (0 for empty slots)
    max_priority: jax.Array  # float32

    @classmethod
    def create(cls, example: Any, capacity: int) -> PrioritizedReplay:
        return cls(
            ReplayBuffer.create(example, capacity),
            jnp.zeros((capacity,), jnp.float32),
            jnp.float32(1.0),
        )

    @property
    def size(self) -> jax.Array:
        return self.buffer.size

    def add(self, batch: Any) -> PrioritizedReplay:
        count = jax.tree.leaves(batch)[0].shape[0]
        idx = self.buffer.slots(count)
        return self.replace(
            buffer=self.buffer.add(batch), priority=self.priority.at[idx].set(self.max_priority)
        )

    def probabilities(self, alpha: jax.Array | float) -> jax.Array:
        """``P(i)`` for every slot, ``[capacity]`` (0 for empty slots)."""
        filled = jnp.arange(self.priority.shape[0]) < self.buffer.size
        mass = jnp.where(filled, self.priority**alpha, 0.0)
        return mass / jnp.maximum(mass.sum(), 1e-30)

    def sample(
        self, key: jax.Array, batch_size: int, alpha: jax.Array | float, beta: jax.Array | float
    ) -> tuple[jax.Array, Any, jax.Array]:
        """Stratified proportional sample: slots ``[B]``, items, importance weights ``[B]``."""
        filled = jnp.arange(self.priority.shape[0]) < self.buffer.size
        mass = jnp.where(filled, self.priority**alpha, 0.0)
        cdf = jnp.cumsum(mass)
        total = cdf[-1]
        u = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) / batch_size
        idx = jnp.searchsorted(cdf, u * total, side="right").astype(jnp.int32)
        idx = jnp.clip(idx, 0, jnp.maximum(self.buffer.size - 1, 0))
        prob = mass[idx] / jnp.maximum(total, 1e-30)
        n = jnp.maximum(self.buffer.size, 1).astype(jnp.float32)
        weight = (n * jnp.maximum(prob, 1e-30)) ** (-beta)
        return idx, self.buffer.get(idx), weight / weight.max()

    def update(self, idx: jax.Array, td_error: jax.Array, epsilon: float) -> PrioritizedReplay:
        """Set ``p_i = |td_error_i| + epsilon`` for the sampled slots ``idx [B]``."""
        p = jnp.abs(td_error).astype(jnp.float32) + epsilon
        return self.replace(
            priority=self.priority.at[idx].set(p),
            max_priority=jnp.maximum(self.max_priority, p.max()),
        )


__all__ = ["PrioritizedReplay", "ReplayBuffer"]
