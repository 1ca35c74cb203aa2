"""A Session: one seed's training as a pure function, run in compiled chunks.

``init(key) -> state`` comes from the algorithm. :func:`make_chunk` builds the pure chunk
``chunk(state, chunk_index) -> (state, metrics)`` that ``lax.scan``s ``updates_per_chunk``
updates. Updates past ``num_updates`` (only in the last chunk) are skipped with
``lax.cond`` on the unbatched chunk index, so every chunk has one compiled shape and a
run trains exactly ``num_updates`` updates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.algorithms.base import EPISODE_METRICS, Agent
from jaxlab.spec.schema import Derived


def session_key(random_seed: int, session: int) -> jax.Array:
    """The PRNG key of session ``session``: ``fold_in(PRNGKey(random_seed), session)``.

    A session's key does not depend on how many sessions the Trial has, so session k of
    a 4-seed Trial is the same run as a 1-session Trial started from this key.
    """
    return jax.random.fold_in(jax.random.PRNGKey(random_seed), session)


def make_chunk(
    agent: Agent, derived: Derived
) -> Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]]:
    """The pure chunk for one session.

    Returns metrics reduced over the chunk's active updates: episode sums
    (``EPISODE_METRICS``) are summed, every other scalar is averaged, and ``updates`` is
    the number of updates actually done.
    """
    upc, total = derived.updates_per_chunk, derived.num_updates

    def chunk(state: Any, chunk_index: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        metric_shapes = jax.eval_shape(agent.update, state)[1]

        def skip(s: Any) -> tuple[Any, dict[str, jax.Array]]:
            return s, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metric_shapes)

        def body(s: Any, i: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
            active = chunk_index * upc + i < total
            s, metrics = jax.lax.cond(active, agent.update, skip, s)
            return s, {**metrics, "active": active}

        state, ms = jax.lax.scan(body, state, jnp.arange(upc))
        active = ms.pop("active").astype(jnp.float32)
        count = active.sum()
        out = {
            k: v.sum() if k in EPISODE_METRICS else (v * active).sum() / jnp.maximum(count, 1.0)
            for k, v in ms.items()
        }
        out["updates"] = count
        return state, out

    return chunk
