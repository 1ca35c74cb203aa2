"""Control flow of the compiled training step, per platform: where a ``lax.cond`` is
cheap (CPU) programs skip work behind one; on an accelerator, where each would be a host
round trip per update or env step, they compute and select instead (:func:`branch`), and
the Trial cuts a short last chunk as a program of its own (:mod:`jaxlab.lab.trial`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def cheap_conds(platform: str) -> bool:
    """Whether a ``lax.cond`` on a device value costs no host round trip on ``platform``.

    On CPU it costs nothing measurable, so programs there skip work behind one (through
    :func:`branch`, or the session chunk's own cond): the updates past the budget in a
    run's short last chunk (:mod:`jaxlab.lab.session`), learning before
    ``learning_starts``, a self-imitation step before its memory holds a batch, and the
    env restart on steps where no episode ended (:mod:`jaxlab.envs.adapter`). PPO
    CartPole 5e5 frames ran at 202k env-steps/s with the chunk's cond, 207k and 189k
    without; DQN CartPole 51k against 50k and 51k. Cutting the short chunk out as a
    second program instead adds its compile (``benchmarks/tail_chunk.py``: PPO CartPole
    5e4 frames, cache off, compile 8.8 s against 5.4-6.2 s, run 1.0-1.1 s either way).
    On an accelerator a cond
    copies its predicate to the host and waits for it, per update or per env step inside
    the training scan, so there the work is done unconditionally (a select, or a tail
    program of the chunk's own length)."""
    return platform == "cpu"


def branch(pred: jax.Array, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
    """``lax.cond(pred, true_fn, false_fn, *operands)`` where conds are cheap (on the
    default backend, :func:`cheap_conds`); elsewhere both branches are computed and the
    result selected leaf by leaf, which is what ``vmap`` makes of a cond on a per-session
    predicate anyway. For per-update and per-step choices inside the training scan."""
    if cheap_conds(jax.default_backend()):
        return jax.lax.cond(pred, true_fn, false_fn, *operands)
    taken, other = true_fn(*operands), false_fn(*operands)
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), taken, other)
