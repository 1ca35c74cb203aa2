"""The shared core of the suite adapters other than gymnax: one env's pure functions in,
a batched :class:`~jaxlab.envs.protocol.Env` out.

A suite adapter subclasses :class:`SuiteEnv` and gives two unbatched functions:

    reset_one(key)                    -> (suite_state, obs [obs_dim] float32)
    step_one(key, suite_state, action) -> (suite_state, obs, reward, terminated, truncated)

where ``obs`` is already flat (:func:`flatten`), with the action mask appended where the
suite has one (``ObservationSpec.mask_dim``). ``terminated`` and ``truncated`` are the
suite's own (e.g. Jumanji's discount-0 LAST step and its other LAST steps). This core adds
what every suite needs the same way:

- ``action_repeat``: the suite steps ``k`` times per agent step, rewards summed, stopping
  at the first end of episode (the later repeats are masked out, not run past the end);
- a time limit: ``truncated |= episode_length + 1 >= time_limit`` (agent steps);
- the auto-reset, keeping the true pre-reset successor in ``final_obs``, in one of three
  modes (``env.params.reset`` of any suite but gymnax):

  - ``full``: fresh initial states for the ended envs (a batched reset of all ``N``);
  - ``pool``: ``ceil(N / 16)`` fresh initial states, handed to the ended envs in turn
    (envs ending on the same step may share one when more than the pool end):
    Craftax's "optimistic reset", 1/16 of the reset work;
  - ``cached``: an ended env restarts from the initial state it drew at :meth:`reset`,
    as Brax's and Playground's training wrappers do: no reset work at all.

  The restart (resets and the per-env select of the states) runs, on CPU, only on steps
  where some episode ended (``lax.cond``); once sessions are vmapped the cond is a select
  and it runs every step, which ``pool`` and ``cached`` keep cheap. A suite whose reset
  costs many steps (Jumanji: generating a maze) sets ``restart_ended_only``: in ``full``
  mode on CPU it resets only the ended envs, ``ceil(N / 16)`` per round of a
  ``while_loop`` (no round when none ended), the same states as the batched reset. Where
  the reset is cheap the loop costs more than it saves: the loop carries the whole state
  (navix's render cache included) and copies it. On an accelerator the restart of all
  ``N`` always runs (a cond or a loop test there is a host round trip per step:
  :func:`jaxlab.rl.branching.cheap_conds`);
- episode returns and lengths, and continuous actions clipped to the suite's bounds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from PIL import Image

from jaxlab.envs.protocol import (
    ActionSpec,
    CannotRender,
    ObservationSpec,
    StepOut,
    VecEnvState,
    end_step,
)
from jaxlab.rl.branching import branch, cheap_conds

RESETS = ("full", "pool", "cached")
POOL_RATIO = 16  # reset="pool": one fresh state per this many envs (and one restart round)


def check_reset(value: Any) -> str | None:
    """Why ``value`` is not a reset mode, or None."""
    if value in RESETS:
        return None
    return f"must be one of {', '.join(RESETS)}, got {value!r}"


def check_count(value: Any) -> str | None:
    """Why ``value`` is not an integer >= 1 (a step count, a repeat), or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"must be an integer >= 1, got {value!r}"
    return None


def check_like(default: Any, value: Any) -> str | None:
    """Why ``value`` cannot replace a param whose default is ``default`` (a flag, an
    integer, or else a number: an int serves for a float), or None. ``default`` may be a
    value or its type."""
    kind = default if isinstance(default, type) else type(default)
    number = not isinstance(value, bool)
    if issubclass(kind, bool):
        ok, wanted = isinstance(value, bool), "true or false"
    elif issubclass(kind, int):
        ok, wanted = number and isinstance(value, int), "an integer"
    else:  # floats, and array-valued params whose values are numbers
        ok, wanted = number and isinstance(value, int | float), "a number"
    return None if ok else f"must be {wanted}, got {value!r}"


def check_names(value: Any, known: Any) -> str | None:
    """Why ``value`` is not one of ``known`` names, or a non-empty list of them, or None."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return f"must be a name or a list of names from {sorted(known)}, got {value!r}"
    wrong = [n for n in names if n not in known]
    return f"unknown {wrong[0]!r}; known: {', '.join(sorted(known))}" if wrong else None


@struct.dataclass
class SuiteState:
    """``current``: the suite's state per env ``[N, ...]``; ``first``: the initial states
    and observations drawn at reset (``reset="cached"`` restarts from them; else None)."""

    current: Any
    first: Any = None


def env_action(spec: ActionSpec, action: jax.Array) -> jax.Array:
    """Learner action ``[N]`` or ``[N, A]`` -> the suite's: int32, or clipped to the
    bounds and shaped ``[N, *spec.shape]``."""
    if spec.discrete:
        return action.astype(jnp.int32)
    low, high = (jnp.asarray(b.reshape(1, -1)) for b in (spec.low, spec.high))
    action = jnp.clip(action, low, high)
    return action.reshape((action.shape[0],) + spec.shape)


def flatten(leaves: list[jax.Array]) -> jax.Array:
    """Unbatched arrays -> one flat float32 vector, in order."""
    return jnp.concatenate([jnp.asarray(x, jnp.float32).reshape(-1) for x in leaves])


def frame_steps(states: Any, max_frames: int = 300) -> np.ndarray:
    """At most ``max_frames`` evenly spaced step indices of a recording (leaves ``[T, ...]``)."""
    steps = jax.tree.leaves(states)[0].shape[0]
    return np.unique(np.linspace(0, steps - 1, min(steps, max_frames)).round().astype(int))


def save_gif(frames: list[np.ndarray], path: Any, fps: int = 30) -> None:
    """RGB frames ``[H, W, 3]`` uint8 -> an animated GIF at ``path``."""
    images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=max(1, 1000 // fps), loop=0
    )


def suite_code() -> Any:
    """A context for tracing a suite's own code, which may broadcast ranks implicitly
    (Brax does): jaxlab's tests forbid that everywhere else."""
    return jax.numpy_rank_promotion("allow")


def where_done(done: jax.Array, new: Any, old: Any) -> Any:
    """Per env: ``new`` where ``done [N]`` else ``old`` (pytrees with leading dim N)."""

    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        if a.ndim == 0 or a.shape[0] != done.shape[0]:  # MJX-warp keeps unbatched buffers
            return b
        return jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


def _set_rows(old: jax.Array, rows: jax.Array, new: jax.Array, n: int) -> jax.Array:
    """``old [n, ...]`` with ``old[rows[j]] = new[j]`` (rows ``>= n`` dropped); a leaf
    that is not per env (MJX-warp's buffers) stays ``old``, as in :func:`where_done`."""
    if old.ndim == 0 or old.shape[0] != n:
        return old
    return old.at[rows].set(new, mode="drop")


def _one_more(out: tuple, nxt: tuple) -> tuple:
    """One more action repeat: ``nxt`` unless ``out`` already ended its episode (then
    ``out`` stays); rewards are summed."""
    ended = out[3] | out[4]
    kept = jax.tree.map(lambda old, new: jnp.where(ended, old, new), out, nxt)
    return (*kept[:2], out[2] + jnp.where(ended, 0.0, nxt[2]), *kept[3:])


class SuiteEnv:
    """``num_envs`` copies of one suite env; subclasses set the specs and the two hooks."""

    name: str
    num_envs: int
    observation_spec: ObservationSpec
    action_spec: ActionSpec
    time_limit: int | None = None
    max_episode_steps: int = 1000
    action_repeat: int = 1
    reset_mode: str = "full"
    restart_ended_only: bool = False  # full mode on CPU: reset only the ended envs
    params: Any = None  # nothing traced: suite options are fixed when the env is built

    # ------------------------------------------------------------------ suite hooks

    def reset_one(self, key: jax.Array) -> tuple[Any, jax.Array]:
        raise NotImplementedError

    def step_one(self, key: jax.Array, state: Any, action: jax.Array) -> tuple:
        raise NotImplementedError

    def restart_one(self, key: jax.Array, state: Any) -> tuple[Any, jax.Array]:
        """A fresh initial ``(state, obs)`` to replace the ended ``state``: ``reset_one``
        unless a suite can reuse parts of the old state (navix, its render cache)."""
        return self.reset_one(key)

    def write_gif(self, states: Any, path: Any) -> None:
        raise CannotRender(f"{self.name} cannot be drawn")

    # ------------------------------------------------------------------ the protocol

    def with_reset(self, mode: str) -> SuiteEnv:
        """The same env with another reset mode (before :meth:`reset` is called)."""
        env = copy.copy(self)
        env.reset_mode = mode
        return env

    def with_params(self, params: Any) -> SuiteEnv:
        env = copy.copy(self)
        env.params = params
        return env

    def reset(self, key: jax.Array) -> VecEnvState:
        with suite_code():
            current, obs = jax.vmap(self.reset_one)(jax.random.split(key, self.num_envs))
        n = self.num_envs
        return VecEnvState(
            env_state=SuiteState(current, (current, obs) if self.reset_mode == "cached" else None),
            obs=obs,
            episode_return=jnp.zeros((n,), jnp.float32),
            episode_length=jnp.zeros((n,), jnp.int32),
        )

    def env_action(self, action: jax.Array) -> jax.Array:
        return env_action(self.action_spec, action)

    def _repeat_one(self, key: jax.Array, state: Any, action: jax.Array) -> tuple:
        """``action_repeat`` suite steps of one env, stopping at the first episode end."""
        out = self.step_one(key, state, action)
        for i in range(1, self.action_repeat):
            out = _one_more(out, self.step_one(jax.random.fold_in(key, i), out[0], action))
        return out

    def _restart(self, key: jax.Array, done: jax.Array, state: SuiteState) -> tuple:
        """Initial states and observations ``[N, ...]``; row ``i`` is used where env ``i``
        ended (the others are never read)."""
        if self.reset_mode == "cached":
            return state.first
        count = -(-self.num_envs // POOL_RATIO) if self.reset_mode == "pool" else self.num_envs
        keys = jax.random.split(key, count)
        if self.reset_mode == "full":
            return jax.vmap(self.restart_one)(keys, state.current)
        fresh = jax.vmap(self.reset_one)(keys)  # the pool's states go to other envs
        turn = (jnp.cumsum(done) - 1) % count  # the ended envs take the pool in turn
        return jax.tree.map(lambda x: x[turn], fresh)

    def _reset_ended(self, key: jax.Array, done: jax.Array, state: SuiteState, after: tuple):
        """``after = (states, obs)`` of the step, with the ended envs restarted: on CPU
        only on steps where some episode ended (a ``lax.cond``, which under ``vmap`` over
        sessions becomes a select and runs every step; or only the ended envs, with
        ``restart_ended_only``: :meth:`_restart_ended`), elsewhere on every step."""
        cpu = cheap_conds(jax.default_backend())
        if self.reset_mode == "full" and self.restart_ended_only and cpu:
            return self._restart_ended(key, done, state.current, after)

        def restart(after: tuple) -> tuple:
            return where_done(done, self._restart(key, done, state), after)

        return branch(done.any(), restart, lambda after: after, after)

    def _restart_ended(self, key: jax.Array, done: jax.Array, current: Any, after: tuple):
        """``restart_one(keys[i], current[i])`` for each ended env ``i`` only,
        ``ceil(N / POOL_RATIO)`` of them per round of a ``while_loop`` (no round when none
        ended), written over its row of ``after``: the rows the batched reset of all ``N``
        envs (:meth:`_restart`) would give, at the cost of the envs that ended."""
        n = self.num_envs
        keys, size = jax.random.split(key, n), -(-n // POOL_RATIO)

        def one_round(carry: tuple) -> tuple:
            left, after = carry
            rows = jnp.nonzero(left, size=size, fill_value=n)[0]  # n: no env (dropped)
            take = jnp.minimum(rows, n - 1)
            ended = jax.tree.map(lambda x: x[take], current)
            fresh = jax.vmap(self.restart_one)(keys[take], ended)
            after = jax.tree.map(lambda a, f: _set_rows(a, rows, f, n), after, fresh)
            return left.at[rows].set(False, mode="drop"), after

        return jax.lax.while_loop(lambda carry: carry[0].any(), one_round, (done, after))[1]

    def step(
        self, key: jax.Array, state: VecEnvState, action: jax.Array
    ) -> tuple[VecEnvState, StepOut]:
        with suite_code():
            return self._step(key, state, action)

    def _step(
        self, key: jax.Array, state: VecEnvState, action: jax.Array
    ) -> tuple[VecEnvState, StepOut]:
        k_step, k_reset = jax.random.split(key)
        keys = jax.random.split(k_step, self.num_envs)
        current, final_obs, reward, term, trunc = jax.vmap(self._repeat_one)(
            keys, state.env_state.current, self.env_action(action)
        )
        reward = jnp.asarray(reward, jnp.float32)
        term = jnp.asarray(term, bool)
        trunc = jnp.asarray(trunc, bool)
        if self.time_limit is not None:
            trunc = trunc | (state.episode_length + 1 >= self.time_limit)
        trunc = trunc & ~term
        done = term | trunc
        current, obs = self._reset_ended(k_reset, done, state.env_state, (current, final_obs))
        env_state = SuiteState(current, state.env_state.first)
        return end_step(state, env_state, obs, final_obs, reward, term, trunc)


__all__ = [
    "POOL_RATIO",
    "RESETS",
    "SuiteEnv",
    "SuiteState",
    "check_count",
    "check_like",
    "check_names",
    "check_reset",
    "env_action",
    "flatten",
    "frame_steps",
    "save_gif",
    "suite_code",
    "where_done",
]
