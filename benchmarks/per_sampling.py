"""Prioritized replay: one stratified draw + priority update, two-level sums vs a full cumsum.

    python benchmarks/per_sampling.py [--capacities 10000 100000 1000000] [--seeds 4]

*two-level*: :class:`jaxlab.memory.PrioritizedReplay` (block totals kept in the state, a
prefix sum over blocks, then one over the sampled block). *full cumsum*: the array
implementation jaxlab had before (:func:`full_cumsum_draw`): ``cumsum(p ** alpha)`` over
the whole capacity, ``searchsorted`` of the batch's points, then the priority scatter. Both
are vmapped over ``--seeds`` memories and scanned over 50 draws of batch 128 (priorities
change every draw, so nothing is loop-invariant) in one compiled program each; best of 5.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import jaxlab  # noqa: F401  (XLA flags before jax starts)
from jaxlab.memory import PrioritizedReplay

BATCH, DRAWS, ALPHA = 128, 50, 0.6


def best_ms(fn: Callable[[], Any], repeats: int = 5) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times) / DRAWS * 1e3


def full_cumsum_draw(p: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One stratified draw from a full memory by a cumsum over every slot, and its update."""
    cdf = jnp.cumsum(p**ALPHA)
    u = (jnp.arange(BATCH) + jax.random.uniform(key, (BATCH,))) / BATCH
    idx = jnp.clip(jnp.searchsorted(cdf, u * cdf[-1], side="right"), 0, p.shape[0] - 1)
    weight = (p.shape[0] * p[idx] ** ALPHA / cdf[-1]) ** -0.4
    return p.at[idx].set(weight / weight.max() + 1e-6), idx


def measure(capacity: int, seeds: int) -> tuple[int, float, float]:
    """(block size, two-level ms per draw, full-cumsum ms per draw) at ``capacity``."""
    mem = PrioritizedReplay.create({"x": jnp.zeros(4)}, capacity, BATCH)
    mem = mem.add({"x": jnp.ones((capacity, 4))}, ALPHA)
    mems = jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds,) + x.shape).copy(), mem)
    keys = jax.random.split(jax.random.PRNGKey(0), DRAWS)

    def body(m: PrioritizedReplay, k: jax.Array) -> tuple[PrioritizedReplay, None]:
        idx, item, w = m.sample(k, BATCH, ALPHA, 0.4)
        return m.update(idx, item["x"].sum(-1) * w, 1e-6, ALPHA), None

    two = jax.jit(jax.vmap(lambda m: jax.lax.scan(body, m, keys)[0]))
    full = jax.jit(jax.vmap(lambda p: jax.lax.scan(full_cumsum_draw, p, keys)[0]))
    return mem.block, best_ms(lambda: two(mems)), best_ms(lambda: full(mems.priority))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacities", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    print("capacity | block | two-level ms/draw | full cumsum ms/draw | ratio")
    for cap in args.capacities:
        block, a, b = measure(cap, args.seeds)
        print(f"{cap:>8,} | {block:>5} | {a:17.3f} | {b:19.3f} | {b / a:5.1f}x")


if __name__ == "__main__":
    main()
