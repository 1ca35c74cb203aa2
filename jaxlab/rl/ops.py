"""Elementwise operations that losses share, differentiated by selection."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def smaller(a: jax.Array, b: jax.Array) -> jax.Array:
    """``min(a, b)`` elementwise, differentiated by selection: the gradient goes wholly to
    the smaller operand (``a`` on a tie).

    Losses use this instead of ``jnp.minimum``/``min`` reductions, whose gradients find the
    minimum by comparing the operands with the result (``min`` reductions then divide by the
    count of matches). XLA may compute an operand more than once, in separate kernels, and
    the copies need not round alike (its CPU build with backend optimisation off does not):
    then nothing matches, and the gradient is 0 (``jnp.minimum``) or ``0 / 0 = NaN`` (a
    reduction). A selection takes its gradient from the choice made, never from equality.
    A NaN in either operand is passed on, as ``jnp.minimum`` does.
    """
    return jnp.where((a <= b) | jnp.isnan(a), a, b)


def larger(a: jax.Array, b: jax.Array) -> jax.Array:
    """``max(a, b)`` elementwise, differentiated by selection (``a`` on a tie); see
    :func:`smaller`."""
    return jnp.where((a >= b) | jnp.isnan(a), a, b)


def ensemble_min(q: jax.Array) -> jax.Array:
    """``min_k q_k`` over the leading (ensemble) axis, ``q [K, ...] -> [...]``, folded with
    :func:`smaller` (``K = 1`` gives ``q[0]``; twin critics ``smaller(q[0], q[1])``)."""
    out = q[0]
    for k in range(1, q.shape[0]):
        out = smaller(out, q[k])
    return out


def pick(q: jax.Array, action: jax.Array) -> jax.Array:
    """``Q [..., A]`` at ``action [...]`` -> ``[...]`` (a one-hot contraction, cheap on CPU)."""
    return jnp.sum(q * jax.nn.one_hot(action, q.shape[-1], dtype=q.dtype), axis=-1)
