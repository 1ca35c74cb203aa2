"""A Trial: the Session vmapped over seeds, compiled once, and aggregation across seeds."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.algorithms import get_algorithm
from jaxlab.evaluate import make_evaluate
from jaxlab.session import make_chunk, session_key
from jaxlab.spec.schema import Spec


class Trial:
    """``meta.max_session`` sessions of one spec, trained together by ``vmap``.

    ``keys`` overrides the per-session keys (``[S, 2]`` uint32); by default session k
    gets :func:`~jaxlab.session.session_key` ``(meta.random_seed, k)``.
    The chunk is compiled ahead of time once (:meth:`compile`); ``state`` is donated.
    """

    def __init__(self, spec: Spec, keys: jax.Array | None = None) -> None:
        self.spec = spec
        self.derived = spec.derived
        self.agent = get_algorithm(spec.agent.algorithm.name).make(spec)
        if keys is None:
            seeds = jnp.arange(spec.meta.max_session)
            keys = jax.vmap(session_key, in_axes=(None, 0))(spec.meta.random_seed, seeds)
        self.keys = keys
        self.num_sessions = int(keys.shape[0])
        self._init = jax.jit(jax.vmap(self.agent.init))
        evaluate = make_evaluate(self.agent, spec) if self.derived.eval_every else None
        chunk = make_chunk(self.agent, self.derived, evaluate)
        self._chunk_jit = jax.jit(jax.vmap(chunk, in_axes=(0, None)), donate_argnums=0)
        self._chunk: Any = None

    def init(self) -> Any:
        return self._init(self.keys)

    def abstract_state(self) -> Any:
        """Shapes and dtypes of the Trial state (``jax.ShapeDtypeStruct`` leaves), no compute."""
        return jax.eval_shape(self._init, self.keys)

    def compile(self, state: Any) -> None:
        """Compile the chunk for ``state``'s shapes, ahead of time and once."""
        self._chunk = self._chunk_jit.lower(state, jnp.int32(0)).compile()

    def dispatch(self, state: Any, chunk_index: int) -> tuple[Any, dict[str, jax.Array]]:
        """Start one chunk on every session and return at once (JAX dispatches async).

        ``state`` is donated: do not use it afterwards. Metrics stay on device.
        """
        if self._chunk is None:
            self.compile(state)
        return self._chunk(state, jnp.int32(chunk_index))

    def chunk(self, state: Any, chunk_index: int) -> tuple[Any, dict[str, np.ndarray]]:
        """Run one chunk on every session; metrics come back as host arrays ``[S]``."""
        state, metrics = self.dispatch(state, chunk_index)
        return state, jax.device_get(metrics)

    def frames_after(self, chunk_index: int) -> int:
        """Frames trained per session once chunk ``chunk_index`` is done."""
        d = self.derived
        return min((chunk_index + 1) * d.updates_per_chunk, d.num_updates) * d.frames_per_update


def episode_means(metrics: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean return and length of the episodes that ended in a chunk, per session (NaN if none)."""
    count = metrics["ep_count"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.where(count > 0, metrics["ep_return_sum"] / count, np.nan)
        length = np.where(count > 0, metrics["ep_length_sum"] / count, np.nan)
    return ret, length


def summarize(final_returns: np.ndarray) -> dict[str, Any]:
    """Across-session statistics of the final returns ``[S]`` (NaN sessions excluded)."""
    finite = final_returns[np.isfinite(final_returns)]
    return {
        "final_return_mean": float(finite.mean()) if finite.size else None,
        "final_return_std": float(finite.std()) if finite.size else None,
        "final_return_min": float(finite.min()) if finite.size else None,
        "final_return_max": float(finite.max()) if finite.size else None,
        "final_return_per_session": [
            None if not np.isfinite(r) else float(r) for r in final_returns
        ],
    }
