"""Episodes in progress, kept across rollouts, for Monte-Carlo returns (self-imitation).

A rollout ``[T, N]`` ends some episodes that began in earlier rollouts. The
:class:`EpisodeBuffer` keeps, per env, the steps of its unfinished episode, right-aligned
in ``L`` slots (``valid`` marks them). :func:`finish_episodes` joins them to the new
rollout, env-major ``[N, L + T]``, and computes every step's discounted return backwards:

    G_t = r_t + gamma * (G_{t+1}              if the episode goes on after t
                         V(s'_t)              if it was truncated at t
                         0                    if it terminated at t)

A step's return is final once its episode has ended within the joined sequence; those
steps are handed out as rows ``[N * (L + T)]`` with a ``keep`` mask, and the steps after
each env's last episode end become the new buffer (the last ``L`` of them: an episode
longer than ``L`` steps loses its oldest steps, whose returns are never known).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class EpisodeBuffer:
    """Per env, its unfinished episode's last steps, right-aligned: ``[N, L, ...]``."""

    obs: jax.Array  # [N, L, D]
    action: jax.Array  # [N, L] or [N, L, A]
    reward: jax.Array  # [N, L]
    valid: jax.Array  # [N, L] bool

    @classmethod
    def create(
        cls, envs: int, steps: int, obs_dim: int, action: Any, obs_dtype: Any = jnp.float32
    ) -> EpisodeBuffer:
        """Empty, for ``action`` shaped like one env's action (``()`` int or ``[A]``)."""
        a = jnp.asarray(action)
        return cls(
            jnp.zeros((envs, steps, obs_dim), obs_dtype),
            jnp.zeros((envs, steps) + a.shape, a.dtype),
            jnp.zeros((envs, steps), jnp.float32),
            jnp.zeros((envs, steps), bool),
        )


def discounted_returns(
    reward: jax.Array, done: jax.Array, end_value: jax.Array, gamma: jax.Array
) -> jax.Array:
    """``G [N, S]`` by the recursion of the module docstring, along axis 1: ``end_value``
    is what an ended step bootstraps from (``V(s')`` if truncated, 0 if terminated);
    after the last step of a row the return is taken as 0 (such steps are not final)."""

    def back(g_next: jax.Array, step: tuple) -> tuple:
        r, d, v = step
        g = r + gamma * jnp.where(d, v, g_next)
        return g, g

    xs = (reward.T, done.T, end_value.T)
    _, g = jax.lax.scan(back, jnp.zeros(reward.shape[0], jnp.float32), xs, reverse=True)
    return g.T


def finish_episodes(
    buf: EpisodeBuffer, ro: Any, end_value: jax.Array, gamma: jax.Array
) -> tuple[EpisodeBuffer, dict[str, jax.Array], jax.Array]:
    """Join ``buf`` to the rollout ``ro`` (a :class:`~jaxlab.rl.rollout.Transition`
    ``[T, N]``; ``end_value [T, N]`` as in :func:`discounted_returns`): the new buffer, the
    rows ``{obs, action, ret}`` ``[N * (L + T), ...]`` and ``keep``, the rows whose
    returns are final."""
    steps = buf.valid.shape[1]
    env_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    join = lambda a, b: jnp.concatenate([a, env_major(b)], axis=1)  # noqa: E731
    obs, action = join(buf.obs, ro.obs), join(buf.action, ro.action)
    reward, valid = join(buf.reward, ro.reward), join(buf.valid, jnp.ones_like(ro.done))
    done = join(jnp.zeros_like(buf.valid), ro.done)
    ended = jnp.where(ro.terminated, 0.0, end_value)
    ret = discounted_returns(reward, done, join(jnp.zeros_like(buf.reward), ended), gamma)
    # final: an episode end at or after the step (a reverse cumulative OR along the row)
    final = jnp.flip(jnp.cumsum(jnp.flip(done, axis=1), axis=1) > 0, axis=1)
    tail = lambda x: x[:, -steps:]  # noqa: E731
    rest = EpisodeBuffer(tail(obs), tail(action), tail(reward), tail(valid & ~final))
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    rows = {"obs": flat(obs), "action": flat(action), "ret": flat(ret)}
    return rest, rows, flat(valid & final)


__all__ = ["EpisodeBuffer", "discounted_returns", "finish_episodes"]
