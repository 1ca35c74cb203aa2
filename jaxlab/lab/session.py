"""A Session: one seed's training as a pure function, run in compiled chunks.

``init(key) -> state`` comes from the algorithm. :func:`make_chunk` builds the pure chunk
``chunk(state, chunk_index) -> (state, metrics)`` that ``lax.scan``s ``updates_per_chunk``
updates, and a run trains exactly ``num_updates`` updates, however the last chunk is cut:

- on CPU, updates past ``num_updates`` (only in the last chunk) are skipped with
  ``lax.cond`` on the unbatched chunk index (:func:`active_update`), so every chunk is one
  compiled program; that costs nothing measurable there;
- on an accelerator a cond copies its predicate to the host and waits for it, a round
  trip per update that would stall the device between 1-3 ms off-policy updates; there
  every update runs unconditionally, and a short last chunk is a chunk of its own length
  (``make_chunk(..., updates=Derived.last_chunk_updates)``), which the Trial compiles as
  a second program (:func:`jaxlab.rl.branching.cheap_conds`).

On evaluation chunks (``Derived.is_eval_chunk``) the chunk ends with the deterministic
evaluation of :mod:`jaxlab.lab.evaluate`, also behind a ``lax.cond`` on the chunk index (so
under ``vmap`` it stays a real branch, not a select); other chunks report NaN for it.
Every chunk reports ``nonfinite`` = 1 when a loss/metric or a parameter is NaN or inf,
which the host turns into a sticky per-session ``diverged`` flag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.algorithms.registry import EPISODE_METRICS, SAMPLE_METRICS, Agent
from jaxlab.lab.evaluate import EVAL_METRICS, EVAL_SALT
from jaxlab.spec.schema import Derived


def session_key(random_seed: int, session: int) -> jax.Array:
    """The PRNG key of session ``session``: ``fold_in(PRNGKey(random_seed), session)``.

    A session's key does not depend on how many sessions the Trial has, so session k of
    a 4-seed Trial is the same run as a 1-session Trial started from this key.
    """
    return jax.random.fold_in(jax.random.PRNGKey(random_seed), session)


def all_finite(tree: Any) -> jax.Array:
    """True when every inexact leaf of ``tree`` is free of NaN and inf (a scalar bool)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def active_update(
    chunk_index: jax.Array, i: jax.Array, updates_per_chunk: int, num_updates: int
) -> jax.Array:
    """Whether update ``i`` of chunk ``chunk_index`` is one of the run's, i.e.
    ``chunk_index * updates_per_chunk + i < num_updates`` (``0 <= i < updates_per_chunk``),
    decided without forming that int32 sum, which wraps negative past ``2**31 - 1`` (the
    last chunk of a run near that many updates): with ``full, rest = divmod(num_updates,
    updates_per_chunk)`` it is ``chunk_index < full or (chunk_index == full and i < rest)``.
    The same boolean wherever the sum fits; ``num_updates`` may even pass int32 while
    the chunk count (and so ``full``) fits."""
    full, rest = divmod(num_updates, updates_per_chunk)
    return (chunk_index < full) | ((chunk_index == full) & (i < rest))


def make_chunk(
    agent: Agent,
    derived: Derived,
    evaluate: Callable[[Any, jax.Array], dict[str, jax.Array]] | None = None,
    updates: int | None = None,
) -> Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]]:
    """The pure chunk for one session: ``updates_per_chunk`` updates with those past
    ``num_updates`` skipped by a cond, or, given ``updates``, that many, all run (module
    docstring). The metrics' shapes are the same either way.

    Returns metrics reduced over the chunk's active updates: episode sums
    (``EPISODE_METRICS``) are summed, every other scalar is averaged, and ``updates`` is
    the number of updates actually done; plus ``nonfinite``, the ``SAMPLE_METRICS`` of the
    chunk's last update, and, when ``evaluate`` is given, its metrics (NaN on chunks that
    do not evaluate).
    """
    upc, total = derived.updates_per_chunk, derived.num_updates
    length = upc if updates is None else updates
    # Jitted so its trace is cached: the shape query below and the cond branch share one.
    update = jax.jit(agent.update)

    def chunk(state: Any, chunk_index: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        metric_shapes = jax.eval_shape(update, state)[1]

        def skip(s: Any) -> tuple[Any, dict[str, jax.Array]]:
            return s, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metric_shapes)

        def body(s: Any, i: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
            if updates is not None:  # every update runs
                s, metrics = update(s)
                return s, {**metrics, "active": jnp.bool_(True)}
            active = active_update(chunk_index, i, upc, total)
            s, metrics = jax.lax.cond(active, update, skip, s)
            return s, {**metrics, "active": active}

        state, ms = jax.lax.scan(body, state, jnp.arange(length))
        active = ms.pop("active").astype(jnp.float32)
        count = active.sum()
        last = jnp.maximum(count.astype(jnp.int32) - 1, 0)  # the last update actually done
        samples = {k: ms.pop(k)[last] for k in SAMPLE_METRICS if k in ms}
        out = {
            k: v.sum() if k in EPISODE_METRICS else (v * active).sum() / jnp.maximum(count, 1.0)
            for k, v in ms.items()
        }
        out["updates"] = count
        out["nonfinite"] = 1.0 - (all_finite(out) & all_finite(state.params)).astype(jnp.float32)
        out.update(samples)
        if evaluate is not None:
            due = (chunk_index + 1) % derived.eval_every == 0
            due = due | (chunk_index == derived.num_chunks - 1)
            key = jax.random.fold_in(jax.random.fold_in(state.key, EVAL_SALT), chunk_index)

            def skipped(s: Any, k: jax.Array) -> dict[str, jax.Array]:
                return {m: jnp.float32(jnp.nan) for m in EVAL_METRICS}

            with jax.named_scope("evaluate"):  # the phase's name in a profile
                out.update(jax.lax.cond(due, evaluate, skipped, state, key))
        return state, out

    return chunk
