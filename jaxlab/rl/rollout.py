"""Shared experience collection: ``T`` steps of ``N`` envs in one ``lax.scan``, time-major.

Every algorithm collects through :func:`collect`. It applies the spec's observation
normalisation and reward scaling (:class:`Normalizers`, carried in the training state) and
returns a :class:`Transition` ``[T, N, ...]``. ``next_obs`` is the *true* successor
(pre-reset on episode end), so learners bootstrap through truncation and cut only on
termination. What the acting policy adds per step (log-probs, values, ...) rides in
``extra``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.envs import Env, VecEnvState
from jaxlab.rl.normalize import RunningStats

# act(obs [N, obs_dim], key) -> (action [N] or [N, A], extra: dict of [N, ...] arrays)
ActFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
# A recurrent policy's act(obs, key, (carry, first)) -> (action, extra, carry after the step)
MemoryActFn = Callable[[jax.Array, jax.Array, Any], tuple[jax.Array, dict[str, jax.Array], Any]]


class NormalizeOptions(Protocol):
    """The spec's normalisation switches (``env.normalize_obs`` ...), all static."""

    normalize_obs: bool
    clip_obs: float
    normalize_reward: bool
    clip_reward: float


@struct.dataclass
class Normalizers:
    """Running observation statistics and discounted-return statistics for reward scaling.

    Used only when ``env.normalize_obs`` / ``env.normalize_reward`` are set; kept in every
    state so its structure does not depend on those flags."""

    obs: RunningStats
    ret: RunningStats
    ret_acc: jax.Array  # [N] running discounted return

    @classmethod
    def create(cls, obs_dim: int, num_envs: int) -> Normalizers:
        return cls(
            RunningStats.create((obs_dim,)),
            RunningStats.create(()),
            jnp.zeros((num_envs,), jnp.float32),
        )

    def observe(self, obs: jax.Array, spec: NormalizeOptions) -> jax.Array:
        """``obs`` normalised with the current statistics (identity when off)."""
        return self.obs.normalize(obs, spec.clip_obs) if spec.normalize_obs else obs


@struct.dataclass
class Transition:
    """One rollout, time-major ``[T, N, ...]`` (``obs``/``next_obs`` normalised when on)."""

    obs: jax.Array  # [T, N, obs_dim]
    action: jax.Array  # [T, N] or [T, N, A] (the learner's action, before clipping)
    reward: jax.Array  # [T, N] (scaled when env.normalize_reward)
    terminated: jax.Array  # [T, N] bool
    done: jax.Array  # [T, N] bool, terminated | truncated
    next_obs: jax.Array  # [T, N, obs_dim], the true (pre-reset) next observation
    done_return: jax.Array  # [T, N], an episode's raw return where it ended, else 0
    done_length: jax.Array  # [T, N] int32
    extra: dict[str, jax.Array]  # what ``act`` returned besides the action
    # The learner's ``done`` also marks lost lives inside the episodes the env reports
    # (EnvPool's ``episodic_life``): count episodes where ``done_length > 0`` instead.
    lives: bool = struct.field(pytree_node=False, default=False)


def collect(
    env: Env,
    env_state: VecEnvState,
    norm: Normalizers,
    act: ActFn,
    key: jax.Array,
    steps: int,
    spec: NormalizeOptions,
    gamma: jax.Array | float = 0.99,
    memory: Any = None,
) -> tuple[VecEnvState, Normalizers, Transition] | tuple[VecEnvState, Normalizers, Any, Transition]:
    """Run ``steps`` env steps with ``act``; returns the new env state, normalisers and
    the :class:`Transition` ``[steps, N]``. ``gamma`` discounts the running return whose
    standard deviation scales rewards (``normalize_reward``).

    A recurrent policy passes its ``memory = (carry, first)``: the cell's carry ``[N, ...]``
    and ``first [N]``, whether the current observation starts an episode. ``act`` is then
    a :data:`MemoryActFn`; after each step the memory becomes ``(act's carry, done)``, and
    the final memory is returned before the transitions.
    """

    lives = bool(getattr(env, "episodic_life", False))

    def step(carry: tuple, k: jax.Array) -> tuple:
        env_state, norm, mem = carry
        k_act, k_env = jax.random.split(k)
        obs = env_state.obs
        stats, ret_stats, ret_acc = norm.obs, norm.ret, norm.ret_acc
        if spec.normalize_obs:
            stats = stats.update(obs)
            obs = stats.normalize(obs, spec.clip_obs)
        if memory is None:
            action, extra = act(obs, k_act)
        else:
            action, extra, cell_carry = act(obs, k_act, mem)
        env_state, out = env.step(k_env, env_state, action)
        next_obs = out.final_obs
        if spec.normalize_obs:
            next_obs = stats.normalize(next_obs, spec.clip_obs)
        reward = out.reward
        done = out.terminated | out.truncated
        if spec.normalize_reward:
            ret_acc = ret_acc * gamma + reward
            ret_stats = ret_stats.update(ret_acc)
            reward = ret_stats.scale(reward, spec.clip_reward)
            ret_acc = jnp.where(done, 0.0, ret_acc)
        row = Transition(obs, action, reward, out.terminated, done, next_obs,
                         out.done_return, out.done_length, extra, lives)  # fmt: skip
        mem = None if memory is None else (cell_carry, done)
        return (env_state, Normalizers(stats, ret_stats, ret_acc), mem), row

    with jax.named_scope("rollout"):  # the phase's name in a profile (jaxlab.tools.profiling)
        keys = jax.random.split(key, steps)
        (env_state, norm, memory_out), rollout = jax.lax.scan(step, (env_state, norm, memory), keys)
    if memory is None:
        return env_state, norm, rollout
    return env_state, norm, memory_out, rollout


def next_values(
    value: jax.Array,
    tr: Transition,
    critic: Callable[[Any], jax.Array],
    max_truncated: int,
    next_inputs: Any = None,
) -> jax.Array:
    """``V(s'_t)`` for every step of a rollout, ``[T, N]``, for bootstrapping.

    ``value`` ``[T, N]`` is ``V(s_t)`` as the rollout computed it. Where step t did not end
    its episode, ``s'_t = s_{t+1}``, so ``V(s'_t) = value[t+1]``; the last step's successor
    is ``next_obs[-1]`` (one critic pass over ``[N]``). Where the episode terminated the
    bootstrap is multiplied by zero, so any value serves. Where it was truncated, the
    critic evaluates the true final observation: the truncated steps (at most
    ``max_truncated``, see :func:`jaxlab.envs.max_truncations`) are gathered with a
    static size, evaluated in one pass and scattered in. So the critic sees
    ``N + max_truncated`` rows instead of ``T * N``; with no useful bound it sees all.

    ``next_inputs`` (default ``tr.next_obs``) is what ``critic`` reads per step, a pytree of
    ``[T, N, ...]`` leaves: a recurrent critic reads ``(next_obs, carry after the step)``.
    """
    steps, envs = value.shape
    size = steps * envs
    inputs = tr.next_obs if next_inputs is None else next_inputs
    if max_truncated >= size:
        return critic(inputs)
    last = critic(jax.tree.map(lambda x: x[-1], inputs))
    shifted = jnp.concatenate([value[1:], last[None]], axis=0).reshape(size)
    truncated = (tr.done & ~tr.terminated).reshape(size)
    (idx,) = jnp.nonzero(truncated, size=max_truncated, fill_value=size)
    rows = jnp.minimum(idx, size - 1)
    final = critic(jax.tree.map(lambda x: x.reshape((size,) + x.shape[2:])[rows], inputs))
    return shifted.at[idx].set(final, mode="drop").reshape(steps, envs)


def replay_items(tr: Transition) -> dict[str, jax.Array]:
    """A rollout's transitions as replay items ``[T*N, ...]``: obs, action, reward,
    terminated (float32) and the true next observation."""
    items = {"obs": tr.obs, "action": tr.action, "reward": tr.reward,
             "terminated": tr.terminated.astype(jnp.float32), "next_obs": tr.next_obs}  # fmt: skip
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), items)


def episode_metrics(tr: Transition) -> dict[str, Any]:
    """The episode sums every update reports, plus env 0's actions for a histogram.
    Episodes are counted where the env reports one: at the learner's ``done``, or, with
    lives (``tr.lives``: EnvPool's ``episodic_life``, where a lost life is ``terminated``
    for the learner while the game, and the episode reported, goes on), where
    ``done_length > 0``. (The same count either way elsewhere; kept as ``done`` there, as
    any change to the compiled program may move XLA's rounding.)"""
    ended = tr.done_length > 0 if tr.lives else tr.done
    return {
        "actions": tr.action[:, 0].astype(jnp.float32),
        "ep_return_sum": tr.done_return.sum(),
        "ep_length_sum": tr.done_length.sum().astype(jnp.float32),
        "ep_count": ended.sum().astype(jnp.float32),
    }


__all__ = [
    "ActFn",
    "MemoryActFn",
    "NormalizeOptions",
    "Normalizers",
    "Transition",
    "collect",
    "episode_metrics",
    "next_values",
    "replay_items",
]
