"""Replay memories as fixed-size arrays inside the training state (vmappable over seeds).

:class:`ReplayBuffer` is a ring buffer of ``capacity`` transitions; ``data`` is any
pytree whose leaves are ``[capacity, ...]``. :class:`PrioritizedReplay` adds one
priority per slot and samples proportionally (Schaul et al., 2016):

    P(i) = p_i^alpha / sum_j p_j^alpha          over the filled slots
    w_i  = (n * P(i))^-beta / max_k w_k         (k over the sampled minibatch)

New transitions enter at the largest priority seen so far, so each is replayed at least
once with high probability; after learning, ``update`` sets ``p_i = |delta_i| + epsilon``.

Sampling is stratified: the total mass is cut into ``B`` equal segments and one point is
drawn uniformly in each. Each point is located in a two-level sum over blocks of ``b``
slots (``b`` about ``sqrt(capacity / 2B)``): a prefix sum over the per-block totals, which
are kept in the state, finds the block, and a prefix sum over that block's ``b`` values of
``p^alpha`` finds the slot. ``add`` and ``update`` recompute the totals of the blocks they
touch. A draw plus its update costs ``O(B b + capacity / b)`` = ``O(sqrt(B capacity))``
instead of a ``cumsum`` over the whole capacity, and stays a few gathers and fused
reductions under ``jit`` and ``vmap``. A sum-tree's per-item walks and updates would
serialise badly on an accelerator. The sums run in float32, and priorities are at least
``epsilon``.

Both memories have one interface (:class:`Replay`), so a learner has one code path: ``add``,
``sample`` (slots, items, importance weights), ``update`` (set priorities from TD errors)
and ``priorities``/``with_priorities``. The uniform buffer takes the priority arguments and
ignores them: its weights are all 1, ``update`` is a no-op and its priorities are ``()``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

Scalar = jax.Array | float


class Replay(Protocol):
    """What a learner calls on a replay memory (the memory is its own state, a pytree).

    ``alpha`` (priority exponent), ``beta`` (importance exponent) and ``epsilon`` (priority
    floor) are hyperparameters, often state leaves, so they are passed on every call
    (:class:`ReplayBuffer` gives them defaults, as it ignores them).
    """

    @property
    def size(self) -> jax.Array: ...

    def add(self, batch: Any, alpha: Scalar) -> Replay: ...

    def sample(
        self, key: jax.Array, batch_size: int, alpha: Scalar, beta: Scalar
    ) -> tuple[jax.Array, Any, jax.Array]: ...

    def update(
        self, idx: jax.Array, td_error: jax.Array, epsilon: Scalar, alpha: Scalar
    ) -> Replay: ...

    @property
    def priorities(self) -> tuple: ...

    def with_priorities(self, prio: tuple) -> Replay: ...


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

    def add(self, batch: Any, alpha: Scalar = 1.0) -> ReplayBuffer:
        """Write ``batch`` (leaves ``[B, ...]``, ``B <= capacity``), overwriting the oldest
        (``alpha`` is ignored)."""
        count = jax.tree.leaves(batch)[0].shape[0]
        if count > self.capacity:
            raise ValueError(f"cannot add {count} transitions to a buffer of {self.capacity}")
        idx = self.slots(count)
        data = jax.tree.map(lambda buf, x: buf.at[idx].set(x.astype(buf.dtype)), self.data, batch)
        return ReplayBuffer(
            data, (self.pos + count) % self.capacity, jnp.minimum(self.size + count, self.capacity)
        )

    def add_where(self, batch: Any, keep: jax.Array) -> tuple[ReplayBuffer, jax.Array]:
        """Write the rows of ``batch`` (leaves ``[K, ...]``) where ``keep [K]`` is true, in
        order (the last ``capacity`` of them if more are kept). Returns the buffer and
        each row's slot ``[K]`` (``capacity``, out of range, for rows not written)."""
        cap = self.capacity
        rank = jnp.cumsum(keep.astype(jnp.int32)) - 1
        total = rank[-1] + 1
        skipped = jnp.maximum(total - cap, 0)  # the oldest kept rows that would be overwritten
        written = keep & (rank >= skipped)
        idx = jnp.where(written, (self.pos + rank - skipped) % cap, cap)
        data = jax.tree.map(
            lambda buf, x: buf.at[idx].set(x.astype(buf.dtype), mode="drop"), self.data, batch
        )
        count = total - skipped
        size = jnp.minimum(self.size + count, cap)
        return ReplayBuffer(data, (self.pos + count) % cap, size), idx

    def get(self, idx: jax.Array) -> Any:
        return jax.tree.map(lambda buf: buf[idx], self.data)

    def sample(
        self, key: jax.Array, batch_size: int, alpha: Scalar = 1.0, beta: Scalar = 1.0
    ) -> tuple[jax.Array, Any, jax.Array]:
        """``batch_size`` slots drawn uniformly (with replacement) from the filled ones: slots
        ``[B]``, items, weights ``[B]`` all 1 (``alpha``, ``beta`` are ignored)."""
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(self.size, 1))
        return idx, self.get(idx), jnp.ones((batch_size,), jnp.float32)

    def update(
        self, idx: jax.Array, td_error: jax.Array, epsilon: Scalar = 0.0, alpha: Scalar = 1.0
    ) -> ReplayBuffer:
        """No priorities to set: the buffer itself."""
        return self

    @property
    def priorities(self) -> tuple:
        """No priority leaves: ``()``."""
        return ()

    def with_priorities(self, prio: tuple) -> ReplayBuffer:
        return self


def block_size(capacity: int, batch_size: int = 128) -> int:
    """The power of two nearest ``sqrt(capacity / (2 * batch_size))`` (at least 1).

    A draw costs about ``2 * B * b`` (the sampled and the updated blocks) plus ``capacity /
    b`` (the prefix sum over block totals); this ``b`` minimises the sum.
    """
    target = max(capacity / (2.0 * batch_size), 1.0) ** 0.5
    return 1 << max(0, round(math.log2(target)))


@struct.dataclass
class PrioritizedReplay:
    """Proportional prioritized replay over a :class:`ReplayBuffer`; see the module docstring.

    ``block_mass[k]`` is the exact sum of ``p_i^alpha`` over the filled slots of block
    ``k`` (slots ``[k b, (k + 1) b)``), recomputed from the priorities of every block that
    :meth:`add` or :meth:`update` touches, so it never drifts. The exponent ``alpha`` is a
    hyperparameter (a state leaf, searchable), so every method that changes priorities
    takes it; pass the same value throughout a run.
    """

    buffer: ReplayBuffer
    priority: jax.Array  # [capacity] float32, p_i (0 for empty slots)
    block_mass: jax.Array  # [ceil(capacity / block)] float32, sum of p^alpha per block
    max_priority: jax.Array  # float32
    block: int = struct.field(pytree_node=False, default=1)

    @classmethod
    def create(
        cls, example: Any, capacity: int, batch_size: int = 128, block: int | None = None
    ) -> PrioritizedReplay:
        """An empty memory; ``block`` slots per block (default :func:`block_size`)."""
        block = block or block_size(capacity, batch_size)
        return cls(
            ReplayBuffer.create(example, capacity),
            jnp.zeros((capacity,), jnp.float32),
            jnp.zeros((-(-capacity // block),), jnp.float32),
            jnp.float32(1.0),
            block,
        )

    @property
    def size(self) -> jax.Array:
        return self.buffer.size

    @property
    def priorities(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """The priority leaves without the stored items: what a learner carries through a
        scan of gradient steps (:meth:`with_priorities` puts them back)."""
        return self.priority, self.block_mass, self.max_priority

    def with_priorities(self, prio: tuple[jax.Array, jax.Array, jax.Array]) -> PrioritizedReplay:
        return self.replace(priority=prio[0], block_mass=prio[1], max_priority=prio[2])

    def _mass(self, priority: jax.Array, slots: jax.Array, alpha: jax.Array | float) -> jax.Array:
        """``p^alpha`` at ``slots`` (any shape), 0 for empty slots and padding past capacity."""
        capacity = priority.shape[0]
        filled = (slots < self.buffer.size) & (slots < capacity)
        p = priority[jnp.minimum(slots, capacity - 1)]
        return jnp.where(filled, p**alpha, 0.0)

    def _with(self, priority: jax.Array, touched: jax.Array, alpha: jax.Array | float, **kw):
        """``priority`` written back with the totals of the blocks holding ``touched [K]``."""
        new = self.replace(priority=priority, **kw)
        blocks = touched // self.block
        slots = blocks[:, None] * self.block + jnp.arange(self.block, dtype=jnp.int32)[None]
        sums = new._mass(priority, slots, alpha).sum(axis=1)
        return new.replace(block_mass=self.block_mass.at[blocks].set(sums))

    def add(self, batch: Any, alpha: Scalar) -> PrioritizedReplay:
        """Write ``batch`` (leaves ``[K, ...]``) at the largest priority seen so far."""
        count = jax.tree.leaves(batch)[0].shape[0]
        idx = self.buffer.slots(count)
        priority = self.priority.at[idx].set(self.max_priority)
        return self._with(priority, idx, alpha, buffer=self.buffer.add(batch))

    def add_where(self, batch: Any, keep: jax.Array, alpha: Scalar) -> PrioritizedReplay:
        """:meth:`ReplayBuffer.add_where` at the largest priority seen so far; every
        block's total is recomputed (one pass over the priorities)."""
        buffer, idx = self.buffer.add_where(batch, keep)
        priority = self.priority.at[idx].set(self.max_priority, mode="drop")
        new = self.replace(buffer=buffer, priority=priority)
        blocks = self.block_mass.shape[0]
        slots = jnp.arange(blocks * self.block, dtype=jnp.int32).reshape(blocks, self.block)
        return new.replace(block_mass=new._mass(priority, slots, alpha).sum(axis=1))

    def probabilities(self, alpha: jax.Array | float) -> jax.Array:
        """``P(i)`` for every slot, ``[capacity]`` (0 for empty slots)."""
        mass = self._mass(self.priority, jnp.arange(self.priority.shape[0]), alpha)
        return mass / jnp.maximum(mass.sum(), 1e-30)

    def sample(
        self, key: jax.Array, batch_size: int, alpha: Scalar, beta: Scalar
    ) -> tuple[jax.Array, Any, jax.Array]:
        """Stratified proportional sample: slots ``[B]``, items, importance weights ``[B]``.

        Point ``t`` is located in two steps: its block by binary search in the prefix sums
        of ``block_mass``, then its slot by a prefix sum over that block's ``p^alpha``.
        """
        b, size = self.block, self.buffer.size
        cdf = jnp.cumsum(self.block_mass)
        total = cdf[-1]
        u = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) / batch_size
        t = u * total
        last_block = jnp.maximum(size - 1, 0) // b
        blk = jnp.minimum(jnp.searchsorted(cdf, t, side="right"), last_block).astype(jnp.int32)
        rest = t - (cdf[blk] - self.block_mass[blk])
        slots = blk[:, None] * b + jnp.arange(b, dtype=jnp.int32)[None]
        within = jnp.cumsum(self._mass(self.priority, slots, alpha), axis=1)
        j = jnp.minimum(jnp.sum(within <= rest[:, None], axis=1), b - 1)
        idx = jnp.clip(blk * b + j, 0, jnp.maximum(size - 1, 0)).astype(jnp.int32)
        prob = self._mass(self.priority, idx, alpha) / jnp.maximum(total, 1e-30)
        n = jnp.maximum(size, 1).astype(jnp.float32)
        weight = (n * jnp.maximum(prob, 1e-30)) ** (-beta)
        return idx, self.buffer.get(idx), weight / weight.max()

    def update(
        self, idx: jax.Array, td_error: jax.Array, epsilon: Scalar, alpha: Scalar
    ) -> PrioritizedReplay:
        """Set ``p_i = |td_error_i| + epsilon`` for the sampled slots ``idx [B]``."""
        p = jnp.abs(td_error).astype(jnp.float32) + epsilon
        priority = self.priority.at[idx].set(p)
        return self._with(
            priority, idx, alpha, max_priority=jnp.maximum(self.max_priority, p.max())
        )


def make_replay(
    prioritized: bool, example: Any, capacity: int, batch_size: int = 128
) -> ReplayBuffer | PrioritizedReplay:
    """An empty memory for items shaped like ``example``: prioritized or uniform."""
    if prioritized:
        return PrioritizedReplay.create(example, capacity, batch_size)
    return ReplayBuffer.create(example, capacity)


__all__ = ["PrioritizedReplay", "Replay", "ReplayBuffer", "make_replay"]
