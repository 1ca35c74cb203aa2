"""One-step TD targets, pure functions over a batch ``[B]`` (jit and vmap safe).

    y    = r + gamma * (1 - terminated) * v'                         (bootstrap)
    v'   = Q_targ(s', a*),  a* = argmax_a Q_targ(s', a)              (Q-learning)
                            a* = argmax_a Q_online(s', a)            (double Q-learning)

Only termination zeroes the tail: a step cut by a time limit still bootstraps from its
(pre-reset) successor ``s'``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bootstrap(
    reward: jax.Array, terminated: jax.Array, gamma: jax.Array | float, next_value: jax.Array
) -> jax.Array:
    """``y = r + gamma * (1 - terminated) * v'``; ``terminated`` bool or float, any shape."""
    return reward + gamma * (1.0 - terminated.astype(jnp.float32)) * next_value


def q_learning_target(
    q_next_target: jax.Array,
    q_next_online: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    gamma: jax.Array | float,
    double: bool,
) -> jax.Array:
    """``y [B] = r + gamma (1 - terminated) Q_targ(s', a*)``; ``q_next_* [B, A]``.

    ``a* = argmax Q_targ(s')`` (DQN) or ``argmax Q_online(s')`` (Double DQN)."""
    chooser = q_next_online if double else q_next_target
    best = jnp.argmax(chooser, axis=-1)
    q_best = jnp.take_along_axis(q_next_target, best[:, None], axis=-1)[:, 0]
    return bootstrap(reward, terminated, gamma, q_best)


__all__ = ["bootstrap", "q_learning_target"]
