"""The env protocol: what every algorithm, evaluation, ``enjoy`` and test sees of an env.

An env here is ``num_envs`` copies of one environment, stepped together, pure and
jittable. Observations are flattened to ``[N, obs_dim]``, float32 or, for pixels, uint8
(:attr:`ObservationSpec.dtype`). ``step`` auto-resets
ended episodes and returns, beside the reset observation, the *true* pre-reset successor
``final_obs``, ``terminated`` and ``truncated`` apart, and the return and length of every
episode that ended, so learners bootstrap through truncation and cut only on termination:

    target_t = r_t + gamma * (1 - terminated_t) * V(final_obs_t)

A suite adapter (:mod:`jaxlab.envs.gymnax_suite`, ...) implements :class:`Env`;
:func:`jaxlab.envs.make_env` is the only place that knows which suite an id belongs to.
Envs are immutable: :meth:`Env.with_params` returns a new env whose params (a pytree) may
be traced arrays, so one compiled program can run many param settings (the probe tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@dataclass(frozen=True)
class ObservationSpec:
    """``shape``: the env's own observation shape (``[H, W, C]`` for MinAtar); learners
    see it flattened to ``dim`` values. ``mask_dim``: where the env gives an
    action mask, its ``A`` entries (1 = allowed) follow the observation's, so
    ``dim = prod(shape) + mask_dim``; the torso reads the observation part, the policy and
    Q heads the mask (:func:`jaxlab.networks.mask_actions`). ``dtype``: ``float32``, or
    ``uint8`` for pixels 0-255 (Atari): kept as bytes in observations, rollouts and
    replay memories (a quarter of float32's memory), scaled to ``[0, 1]`` by the torso
    (:func:`jaxlab.networks.mlp.pixels_to_float`)."""

    shape: tuple[int, ...]
    mask_dim: int = 0
    dtype: str = "float32"

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape)) + self.mask_dim


@dataclass(frozen=True, eq=False)
class ActionSpec:
    """Discrete actions ``0..dim-1`` (``shape == ()``), or a continuous vector of ``dim``
    values in ``[low, high]`` (arrays of ``shape``; actions are clipped to them before the
    env step, learners keep the unclipped sample)."""

    discrete: bool
    dim: int
    shape: tuple[int, ...] = ()
    low: np.ndarray | None = None
    high: np.ndarray | None = None


@struct.dataclass
class VecEnvState:
    """Batched env state. ``episode_return``/``episode_length``: running, per env ``[N]``."""

    env_state: Any  # the suite's own state pytree, leading dim N
    obs: jax.Array  # [N, obs_dim] (ObservationSpec.dtype), current (post-reset) observation
    episode_return: jax.Array  # [N] float32
    episode_length: jax.Array  # [N] int32


@struct.dataclass
class StepOut:
    """What one vectorized step returns besides the new state (all leading dim ``N``)."""

    obs: jax.Array  # next observation, already reset where the episode ended
    final_obs: jax.Array  # true next observation (pre-reset)
    reward: jax.Array  # float32
    terminated: jax.Array  # bool
    truncated: jax.Array  # bool
    done_return: jax.Array  # episode return where an episode ended this step, else 0
    done_length: jax.Array  # episode length where an episode ended this step, else 0


class HostBound:
    """A mixin for env-state pytrees whose values name live host resources (an EnvPool
    pool's token): meaningless to another process, so checkpoints store them as zeros
    (:func:`portable`), which the env reads as "not one of mine" and restarts from."""


def portable(tree: Any) -> Any:
    """``tree`` (host or device arrays) with every :class:`HostBound` subtree zeroed (as
    host arrays)."""

    def zeroed(x: Any) -> Any:
        return jax.tree.map(np.zeros_like, x) if isinstance(x, HostBound) else x

    return jax.tree.map(zeroed, tree, is_leaf=lambda x: isinstance(x, HostBound))


class CannotRender(Exception):
    """The env cannot draw its states (no GIF is written)."""


class Env(Protocol):
    """``num_envs`` copies of one environment; see the module docstring.

    ``time_limit``: the episode step limit when truncation is a plain time limit (so at
    most one truncation per env in any ``time_limit`` steps), else None.
    ``max_episode_steps``: an upper bound on an episode's length (evaluation scans it).
    """

    name: str
    num_envs: int
    params: Any
    observation_spec: ObservationSpec
    action_spec: ActionSpec
    time_limit: int | None
    max_episode_steps: int

    def reset(self, key: jax.Array) -> VecEnvState: ...

    def step(
        self, key: jax.Array, state: VecEnvState, action: jax.Array
    ) -> tuple[VecEnvState, StepOut]: ...

    def with_params(self, params: Any) -> Env: ...

    def write_gif(self, states: Any, path: Path) -> None:
        """Draw one env's recorded states (leaves ``[T, ...]``) to an animated GIF, or
        raise :class:`CannotRender`."""
        ...


def end_step(
    state: VecEnvState, env_state: Any, obs: jax.Array, final_obs: jax.Array,
    reward: jax.Array, terminated: jax.Array, truncated: jax.Array,
) -> tuple[VecEnvState, StepOut]:  # fmt: skip
    """The new :class:`VecEnvState` and the :class:`StepOut` of one batched step, from the
    suite's new state, the (reset where ended) ``obs`` and the pre-reset ``final_obs``:
    running episode returns and lengths restart where ``terminated | truncated``."""
    done = terminated | truncated
    ep_ret = state.episode_return + reward
    ep_len = state.episode_length + 1
    out = StepOut(
        obs=obs,
        final_obs=final_obs,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        done_return=jnp.where(done, ep_ret, 0.0),
        done_length=jnp.where(done, ep_len, 0),
    )
    new = VecEnvState(
        env_state=env_state,
        obs=obs,
        episode_return=jnp.where(done, 0.0, ep_ret),
        episode_length=jnp.where(done, 0, ep_len),
    )
    return new, out


def max_truncations(env: Env, steps: int) -> int:
    """At most how many of ``steps`` consecutive steps of all envs can be truncated.

    A time limit of ``L`` truncates each env at most once in any ``L`` consecutive steps,
    so ``N * ceil(steps / L)``; without a known limit, every step (``N * steps``).
    """
    if env.time_limit is None:
        return env.num_envs * steps
    return min(env.num_envs * -(-steps // env.time_limit), env.num_envs * steps)


__all__ = [
    "ActionSpec",
    "CannotRender",
    "Env",
    "HostBound",
    "ObservationSpec",
    "StepOut",
    "VecEnvState",
    "end_step",
    "max_truncations",
    "portable",
]
