"""The EnvPool suite (C++ Atari, MuJoCo v5, DM Control...) inside the compiled loop.

An EnvPool pool lives in C++ and steps inside ``jit`` through its XLA interface; it holds
its envs' state itself, so a :class:`~jaxlab.envs.protocol.VecEnvState` here carries only
``token [N]`` (which pool made it). Host-stateful, so:

- **Batched over sessions.** A pool cannot be vmapped: every call into it is a
  ``custom_vmap`` (:func:`over_pool`) whose batching rule folds the vmapped axes into
  the env axis, so a Trial of ``S`` sessions x ``N`` envs (and a batched search of ``K``
  settings on top) steps one pool of ``S * N`` (``K * S * N``) envs once per time step
  and slices the results back. Algorithms never know. One pool per size, made when a
  program is traced (``custom_vmap`` also traces the unbatched call: a pool of ``N``
  then stays idle); env ``j`` of a pool is seeded ``seed + j`` (EnvPool's rule), so
  session ``s``'s env ``i`` gets ``seed + s * N + i``: runs are deterministic, sessions
  differ. ``seed`` (``env.params.seed``) defaults to a hash of ``meta.random_seed``
  (:func:`jaxlab.envs.seeded_params`). Pools run in sync mode (``batch_size == num_envs``).
- **float64 actions without x64.** EnvPool's XLA step takes float64 actions (MuJoCo,
  DM Control) and gives float64 observations; only those calls are traced under
  ``jax.enable_x64(True)`` and cast to float32 at once, so the rest of the program keeps
  jax's 32-bit defaults (``tests/test_suite_envpool.py`` checks the lowered program).
- **Exact boundaries.** EnvPool returns the true final observation on the step an
  episode ends and would reset that env on its *next* step (a reward-0 transition the
  learner never chose). Instead, on steps where an episode ended, the ended envs are
  reset at once from the host (a callback under a ``lax.cond``), so the protocol's ``obs``
  is the new episode's first observation. The callback is a ``pure_callback``: jax
  refuses IO effects inside a vmapped ``cond``, and the lab runs chunks and evaluation
  behind ``cond``s; its operands include the pool's last outputs, so XLA can neither
  hoist nor merge it, and it is never vmapped (it sits inside :func:`over_pool`). Each
  call into a pool takes the previous call's observations through an
  ``optimization_barrier``, so calls run in program order even where the actions do not
  depend on the observations (a fixed action sequence). ``terminated``/``truncated`` are
  EnvPool's own (its time limit is ``max_episode_steps`` agent steps).
- **Checkpoints.** The C++ state cannot be saved: checkpoints store the ``token`` as 0
  (:class:`~jaxlab.envs.protocol.HostBound`), which no live pool has, so a restored state
  (like a state from another env object) restarts every episode on its first step
  instead of stepping: the cut episodes are reported truncated with reward 0
  (``final_obs`` = the last observation, so learners bootstrap from it) and count no
  episode return. The new episodes come from the resumed process's pools, seeded from
  the checkpointed RNG keys (:func:`jaxlab.envs.resumed_params`), so they are new ones.
  A resumed EnvPool run is therefore not bit-identical to an uninterrupted one;
  everything else in the state resumes exactly.

Atari observations ``[stack, H, W]`` uint8 become ``[H, W, stack]`` uint8 (channels last,
for the conv torso, which scales them to ``[0, 1]``; rollouts and replay memories keep the
bytes, a quarter of float32's size); dict observations (DM Control) are flattened in
key order. Atari ids default to ALE v5's sticky actions (``repeat_action_probability``
0.25, where EnvPool's own default is 0) and the minimal action set
(``full_action_space: false``). ``episodic_life`` and ``reward_clip`` are applied here,
not by EnvPool: the learner sees a lost life as ``terminated`` (the game goes on) and
rewards clipped to their sign, while the training episodes it reports are whole games
with unclipped scores, as published tables report; evaluation envs leave both out
(:data:`TRAINING_ONLY`), so evaluation plays and scores whole games too. This is the
only module importing envpool.
"""

from __future__ import annotations

import functools
import itertools
import secrets
import threading
from typing import Any

import envpool
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxlab.envs.adapter import check_like, env_action, frame_steps, save_gif
from jaxlab.envs.protocol import (
    ActionSpec,
    CannotRender,
    HostBound,
    ObservationSpec,
    VecEnvState,
    end_step,
)

# EnvPool config fields jaxlab sets itself (the pool's size and threads, where assets live)
MANAGED = (
    "num_envs", "batch_size", "num_threads", "max_num_players", "thread_affinity_offset",
    "base_path", "env_seed", "gym_reset_return_info",
)  # fmt: skip
ATARI_DEFAULTS = {"repeat_action_probability": 0.25, "full_action_space": False}
TRAINING_ONLY = ("episodic_life", "reward_clip")  # dropped from evaluation envs
SHRINK = {"max_episode_steps": 50}  # --shrink: short episodes (evaluation scans one)
_TOKENS = itertools.count(secrets.randbits(30))  # a live pool's token; unique per process


@struct.dataclass
class PoolState(HostBound):
    """Per env ``[N]``: ``token`` (int32) of the live pool whose envs this state describes
    (never 0; a checkpoint stores 0, so a restored state restarts); the running game's
    unclipped return and length across its lives (``game_return``, ``game_length``); its
    ``lives`` left (0 where the game has none)."""

    token: jax.Array
    game_return: jax.Array
    game_length: jax.Array
    lives: jax.Array


def over_pool(fn: Any) -> Any:
    """``fn(*args)`` (leaves ``[M, ...]``, one row per env of a pool of ``M``) made
    vmappable: under ``vmap`` the batched axis is folded into the env axis (unbatched
    arguments broadcast), ``fn`` runs once on ``[B * M, ...]`` and the results are split
    back to ``[B, M, ...]``. Nested vmaps fold in turn."""

    @jax.custom_batching.custom_vmap
    def call(*args: Any) -> Any:
        return fn(*args)

    @call.def_vmap
    def rule(axis_size: int, in_batched: Any, *args: Any) -> tuple[Any, Any]:
        def fold(x: jax.Array, batched: bool) -> jax.Array:
            x = x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
            return x.reshape((-1, *x.shape[2:]))

        out = call(*jax.tree.map(fold, args, tuple(in_batched)))
        split = jax.tree.map(lambda x: x.reshape((axis_size, -1, *x.shape[1:])), out)
        return split, jax.tree.map(lambda _: True, out)

    return call


class Pool:
    """One EnvPool pool of ``size`` envs (sync mode) and its XLA step."""

    def __init__(self, env_id: str, size: int, config: dict[str, Any]) -> None:
        self.pool = envpool.make(
            env_id, env_type="gymnasium", num_envs=size, batch_size=size, **config
        )
        with jax.enable_x64(True):  # EnvPool's XLA specs keep float64 only when made so
            self.handle, _, _, self.xla_step = self.pool.xla()
        self.size = size
        self.token = next(_TOKENS) % (2**31 - 1) + 1

    def reset(self, ended: np.ndarray) -> np.ndarray:
        """Reset the envs where ``ended [size]``: their first observations ``[size,
        obs_dim]`` (:func:`host_obs`), zeros elsewhere."""
        ids = np.flatnonzero(np.asarray(ended)).astype(np.int32)
        obs, info = self.pool.reset(ids)
        first = host_obs(obs)
        out = np.zeros((self.size, first.shape[1]), first.dtype)
        out[info["env_id"]] = first
        return out


def host_obs(obs: Any) -> np.ndarray:
    """EnvPool observations (an array or a dict of arrays, ``[B, ...]``) in the adapter's
    layout ``[B, obs_dim]``: uint8 pixels kept as uint8, images channels last, anything
    else float32, dicts in key order."""
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(v, np.float32).reshape(len(v), -1) for v in obs.values()], 1)  # fmt: skip
    obs = np.asarray(obs)
    obs = np.moveaxis(obs, 1, -1) if obs.ndim == 4 else obs
    return obs.reshape(len(obs), -1).astype(obs_dtype(obs.dtype))


def device_obs(obs: Any) -> jax.Array:
    """:func:`host_obs` inside the program (traced under x64, so casts come first)."""
    if isinstance(obs, dict):
        return jnp.concatenate([v.astype(jnp.float32).reshape(v.shape[0], -1) for v in obs.values()], 1)  # fmt: skip
    obs = jnp.moveaxis(obs, 1, -1) if obs.ndim == 4 else obs
    return obs.reshape(obs.shape[0], -1).astype(obs_dtype(obs.dtype))


def obs_dtype(raw: Any) -> str:
    """The adapter's observation dtype for EnvPool's ``raw`` one: uint8 stays (pixels),
    the rest is float32."""
    return "uint8" if np.dtype(raw) == np.uint8 else "float32"


def own_shape(space: Any) -> tuple[int, ...]:
    """The observation shape the adapter reports: images ``[H, W, C]``, dicts flat."""
    if hasattr(space, "spaces"):
        return (sum(int(np.prod(s.shape)) for s in space.spaces.values()),)
    shape = tuple(int(d) for d in space.shape)
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


class EnvPoolEnv:
    """``num_envs`` envs of EnvPool ``env_id`` (see the module docstring); ``config``:
    EnvPool's config fields over its defaults. Pools are made per size on first use."""

    params = None  # nothing traced: the config is fixed when the env is built

    def __init__(self, env_id: str, num_envs: int, config: dict[str, Any]) -> None:
        self.name = f"envpool/{env_id}"
        self.env_id, self.num_envs, self.config = env_id, num_envs, dict(config)
        # jaxlab applies these itself, so the learner sees them and the scores do not
        self.episodic_life = bool(self.config.pop("episodic_life", False))
        self.reward_clip = bool(self.config.pop("reward_clip", False))
        spec = envpool.make_spec(env_id, **self.config)
        space = spec.observation_space
        dtype = "float32" if hasattr(space, "spaces") else obs_dtype(space.dtype)
        self.observation_spec = ObservationSpec(own_shape(space), dtype=dtype)
        space = spec.action_space
        self.action_dtype = np.dtype(np.int32)  # what EnvPool's XLA step takes
        if hasattr(space, "n"):
            self.action_spec = ActionSpec(discrete=True, dim=int(space.n))
        else:
            low, high = (np.asarray(b, np.float32) for b in (space.low, space.high))
            self.action_spec = ActionSpec(False, int(low.size), tuple(space.shape), low, high)
            self.action_dtype = np.dtype(space.dtype)
        self.time_limit = self.max_episode_steps = int(spec.config.max_episode_steps)
        self._pools: dict[int, Pool] = {}
        self._lock = threading.Lock()
        self._reset = over_pool(self._reset_pool)
        self._step = over_pool(self._step_pool)

    def pool(self, size: int) -> Pool:
        """This env's pool of ``size`` envs (made on first use, also while tracing)."""
        with self._lock:
            if size not in self._pools:
                self._pools[size] = Pool(self.env_id, size, self.config)
            return self._pools[size]

    def with_params(self, params: Any) -> EnvPoolEnv:
        return self

    draws_observations = True  # enjoy hands write_gif the observations, not the states

    def write_gif(self, observations: Any, path: Any) -> None:
        """Atari: one env's recorded observations ``[T, H*W*stack]`` uint8 drawn as the
        newest frame of each stack, grey, at twice its size (at most 300 frames, evenly
        spaced). Other ids keep their states in C++ and have no frames to draw."""
        shape = self.observation_spec.shape
        obs = np.asarray(observations)
        if self.observation_spec.dtype != "uint8" or obs.ndim != 2:
            raise CannotRender(
                f"{self.name}: EnvPool keeps its states in C++; jaxlab draws only Atari frames"
            )
        frames = obs.reshape((-1, *shape))[..., -1]
        grey = [np.repeat(np.repeat(frames[t], 2, 0), 2, 1) for t in frame_steps(obs)]
        save_gif([np.stack([g] * 3, -1) for g in grey], path, fps=20)

    def reset(self, key: jax.Array) -> VecEnvState:
        """Every env restarted (EnvPool's seeds, not ``key``, decide its episodes: the key
        only carries the session axis into the pool)."""
        token, obs = self._reset(jax.random.split(key, self.num_envs))
        zeros = jnp.zeros((self.num_envs,), jnp.float32)
        counts = zeros.astype(jnp.int32)
        return VecEnvState(PoolState(token, zeros, counts, counts), obs, zeros, counts)

    def step(self, key: jax.Array, state: VecEnvState, action: jax.Array) -> tuple:
        """One step of every env; with ``episodic_life`` a lost life is ``terminated`` for
        the learner but the game goes on (``obs`` = ``final_obs``); with ``reward_clip``
        the learner's reward is ``sign(r)``. ``done_return``/``done_length`` are the whole
        game's, unclipped, reported when the game really ends (not after a restart)."""
        old = state.env_state
        token, obs, final_obs, reward, term, trunc, lives, stale = self._step(
            old.token, state.obs, env_action(self.action_spec, action)
        )
        over = term | trunc
        lost = (lives < old.lives) & ~over if self.episodic_life else jnp.zeros_like(over)
        game_return, game_length = old.game_return + reward, old.game_length + 1
        kept = PoolState(
            token,
            jnp.where(over, 0.0, game_return),
            jnp.where(over, 0, game_length),
            lives,
        )
        learned = jnp.sign(reward) if self.reward_clip else reward
        new, out = end_step(state, kept, obs, final_obs, learned, term | lost, trunc & ~term)
        counted = over & ~stale  # a game cut by a restart is no episode
        return new, out.replace(
            done_return=jnp.where(counted, game_return, 0.0),
            done_length=jnp.where(counted, game_length, 0),
        )

    # ------------------------------------------------- one pool of M envs, unbatched

    def _fresh(self, pool: Pool, ended: jax.Array, after: jax.Array) -> jax.Array:
        """First observations ``[M, obs_dim]`` of the envs where ``ended``, zeros elsewhere;
        the callback runs once ``after`` (the pool's last outputs) exists."""
        spec = self.observation_spec
        shape = jax.ShapeDtypeStruct((pool.size, spec.dim), spec.dtype)
        return jax.pure_callback(lambda ended, _: pool.reset(ended), shape, ended, after)

    def _reset_pool(self, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
        pool = self.pool(keys.shape[0])
        obs = self._fresh(pool, jnp.ones((pool.size,), bool), keys)
        return jnp.full((pool.size,), pool.token, jnp.int32), obs

    def _advance(self, pool: Pool, handle: jax.Array, action: jax.Array) -> tuple:
        """One EnvPool step of the pool, ended envs reset at once: ``(obs, final_obs,
        reward, terminated, truncated, lives)``."""
        with jax.enable_x64(True):
            _, (raw, reward, term, trunc, info) = pool.xla_step(
                handle, action.astype(self.action_dtype)
            )
            final_obs, reward = device_obs(raw), reward.astype(jnp.float32)
        lives = info.get("lives", jnp.zeros_like(term, jnp.int32)).astype(jnp.int32)
        done = term | trunc
        fresh = jax.lax.cond(
            done.any(),
            lambda d: self._fresh(pool, d, final_obs),
            lambda d: jnp.zeros_like(final_obs),
            done,
        )
        obs = jnp.where(done[:, None], fresh, final_obs)
        return obs, final_obs, reward, term, trunc, lives

    def _step_pool(self, token: jax.Array, obs: jax.Array, action: jax.Array) -> tuple:
        """Each call into the pool waits for the last one's outputs (``obs``: the barrier
        orders them where the actions do not depend on the observations)."""
        pool = self.pool(token.shape[0])
        handle, obs = jax.lax.optimization_barrier((jnp.asarray(pool.handle), obs))
        stale = token[0] != pool.token

        def restart(_: Any) -> tuple:
            no = jnp.zeros((pool.size,), bool)
            reward = jnp.zeros((pool.size,), jnp.float32)
            return self._fresh(pool, ~no, obs), obs, reward, no, ~no, token - token

        out = jax.lax.cond(stale, restart, lambda _: self._advance(pool, handle, action), None)
        return (jnp.full_like(token, pool.token), *out, jnp.broadcast_to(stale, token.shape))


@functools.cache
def _defaults(env_id: str) -> dict[str, Any]:
    config = envpool.make_spec(env_id).config
    return {k: getattr(config, k) for k in config._fields if k not in MANAGED}


def ids() -> tuple[str, ...]:
    """Every EnvPool task id (ALE v5, MuJoCo v4/v5, DM Control, ...)."""
    return tuple(envpool.list_all_envs())


def param_fields(env_id: str) -> tuple[str, ...]:
    """EnvPool's config fields of ``env_id`` but those jaxlab manages (:data:`MANAGED`)."""
    return tuple(_defaults(env_id))


def check_param(env_id: str, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be EnvPool config field ``key`` (None when it can)."""
    default = _defaults(env_id)[key]
    if isinstance(default, str):
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if isinstance(default, list | tuple):
        return f"is a list field jaxlab does not set (got {value!r})"
    return check_like(default, value)


def make(env_id: str, num_envs: int, params: dict[str, Any]) -> EnvPoolEnv:
    """``num_envs`` envs of EnvPool ``env_id``, ``params`` over EnvPool's defaults (and,
    for Atari, :data:`ATARI_DEFAULTS`)."""
    atari = "repeat_action_probability" in _defaults(env_id)
    return EnvPoolEnv(env_id, num_envs, {**(ATARI_DEFAULTS if atari else {}), **params})
