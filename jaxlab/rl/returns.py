"""Rollout returns on time-major ``[T, B]`` arrays: n-step bootstrapped and Monte-Carlo.

Notation: ``r_t`` reward, ``x_t`` termination, ``d_t`` episode end (``x_t | truncated_t``),
``V(s'_t)`` the value of the *true* successor of step ``t`` (pre-reset on episode end).

n-step (A2C's ``advantage: nstep``), each step accumulating rewards up to the end of the
rollout or of its episode, whichever comes first:

    R_t = r_t + gamma * (1 - x_t) * ( V(s'_t)   if d_t or t = T - 1
                                     R_{t+1}   otherwise )

So the last rollout step and a truncated step bootstrap from ``V(s'_t)``; a terminated
step does not bootstrap at all.

Q(lambda) (PQN, Gallici et al. 2024; Peng's Q(lambda) with ``V(s') = max_a Q(s', a)``)
mixes the one-step target into the same recursion:

    R_t = r_t + gamma * (1 - x_t) * ( V(s'_t)                           if d_t or t = T - 1
                                     (1 - lam) V(s'_t) + lam R_{t+1}     otherwise )

``lam = 1`` gives the n-step returns above, ``lam = 0`` one-step Q-learning targets.
Unlike the usual PQN code, which cuts every episode end, a truncated step bootstraps from
its true successor here.

Reward-to-go (REINFORCE), the discounted sum of rewards to the episode's end:

    G_t     = r_t + gamma * (1 - d_t) * G_{t+1},          G_T = 0
    valid_t = d_t or valid_{t+1},                          valid_T = False

``G_t`` is the Monte-Carlo return only when the episode of step ``t`` ends inside the
rollout (``valid_t``); for the other steps it is a truncated sum and must be masked out.
A time-limit truncation counts as the end of the episode here (no critic to bootstrap).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def nstep_returns(
    reward: jax.Array,
    next_value: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    gamma: jax.Array | float,
) -> jax.Array:
    """n-step bootstrapped returns ``R [T, B]`` (see the module docstring).

    Args:
        reward, next_value: ``[T, B]`` float; ``next_value[t] = V(s'_t)``.
        terminated, done: ``[T, B]`` bool; ``done = terminated | truncated``.
        gamma: scalar (may be a traced array).
    """
    chex.assert_rank([reward, next_value, terminated, done], 2)
    chex.assert_equal_shape([reward, next_value, terminated, done])
    not_term = 1.0 - terminated.astype(reward.dtype)

    def backward(ret_tp1: jax.Array, xs: tuple) -> tuple:
        r_t, v_t, nt_t, d_t = xs
        ret_t = r_t + gamma * nt_t * jnp.where(d_t, v_t, ret_tp1)
        return ret_t, ret_t

    # R_T := V(s'_{T-1}) makes the last step bootstrap from its own successor.
    _, ret = jax.lax.scan(
        backward, next_value[-1], (reward, next_value, not_term, done), reverse=True
    )
    return ret


def q_lambda_returns(
    reward: jax.Array,
    next_value: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    gamma: jax.Array | float,
    lam: jax.Array | float,
) -> jax.Array:
    """Q(lambda) returns ``R [T, B]`` (see the module docstring); arguments as in
    :func:`nstep_returns`, ``next_value[t] = max_a Q(s'_t, a)``, ``lam`` a scalar."""
    chex.assert_rank([reward, next_value, terminated, done], 2)
    chex.assert_equal_shape([reward, next_value, terminated, done])
    not_term = 1.0 - terminated.astype(reward.dtype)

    last = jnp.arange(reward.shape[0]) == reward.shape[0] - 1  # [T]

    def backward(ret_tp1: jax.Array, xs: tuple) -> tuple:
        r_t, v_t, nt_t, d_t, last_t = xs
        mixed = (1.0 - lam) * v_t + lam * ret_tp1
        ret_t = r_t + gamma * nt_t * jnp.where(d_t | last_t, v_t, mixed)
        return ret_t, ret_t

    xs = (reward, next_value, not_term, done, last)
    _, ret = jax.lax.scan(backward, jnp.zeros_like(reward[0]), xs, reverse=True)
    return ret


def discounted_returns(
    reward: jax.Array, done: jax.Array, gamma: jax.Array | float
) -> tuple[jax.Array, jax.Array]:
    """Reward-to-go ``G [T, B]`` within episodes and its validity mask ``valid [T, B]`` (bool).

    ``valid[t]`` is True when step ``t``'s episode ends (terminated or truncated) at or
    after ``t`` inside the rollout, i.e. when ``G[t]`` is a complete Monte-Carlo return.
    """
    chex.assert_rank([reward, done], 2)
    chex.assert_equal_shape([reward, done])

    def backward(carry: tuple, xs: tuple) -> tuple:
        g_tp1, valid_tp1 = carry
        r_t, d_t = xs
        g_t = r_t + gamma * jnp.where(d_t, 0.0, g_tp1)
        valid_t = d_t | valid_tp1
        return (g_t, valid_t), (g_t, valid_t)

    init = (jnp.zeros_like(reward[0]), jnp.zeros_like(done[0]))
    _, (ret, valid) = jax.lax.scan(backward, init, (reward, done), reverse=True)
    return ret, valid


__all__ = ["discounted_returns", "nstep_returns", "q_lambda_returns"]
