"""Generalised advantage estimation on time-major ``[T, B]`` arrays.

With ``d_t`` the end of an episode (terminated or truncated) and ``x_t`` termination:

    delta_t = r_t + gamma * (1 - x_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - d_t) * A_{t+1},        A_T = 0
    R_t     = A_t + V(s_t)                                        (value targets)

``V(s'_t)`` is the value of the *true* next observation: on truncation that is the
pre-reset final observation, so the return is bootstrapped through the time limit;
only termination zeroes it. The recursion is cut at every episode end either way.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def gae(
    reward: jax.Array,
    value: jax.Array,
    next_value: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    gamma: jax.Array | float,
    lam: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets, both ``[T, B]``.

    Args:
        reward, value, next_value: ``[T, B]`` float; ``next_value[t] = V(s'_t)``.
        terminated, done: ``[T, B]`` bool; ``done = terminated | truncated``.
        gamma, lam: scalars (may be traced arrays).
    """
    chex.assert_rank([reward, value, next_value, terminated, done], 2)
    chex.assert_equal_shape([reward, value, next_value, terminated, done])
    not_term = 1.0 - terminated.astype(reward.dtype)
    not_done = 1.0 - done.astype(reward.dtype)
    delta = reward + gamma * not_term * next_value - value
    decay = gamma * lam * not_done

    def backward(adv_tp1: jax.Array, xs: tuple[jax.Array, jax.Array]) -> tuple:
        delta_t, decay_t = xs
        adv_t = delta_t + decay_t * adv_tp1
        return adv_t, adv_t

    _, adv = jax.lax.scan(backward, jnp.zeros_like(delta[0]), (delta, decay), reverse=True)
    return adv, adv + value
