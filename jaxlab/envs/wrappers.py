"""Observation wrappers the spec sets on any suite's env (:func:`jaxlab.envs.make_env`).

* ``env.obs_dims``: keep only these entries of the flat observation, in this order (a
  partially observable task: CartPole without its velocities is ``[0, 2]``);
* ``env.frame_stack: k``: the observation is the last ``k`` (kept) observations, oldest
  first, ``[k * d]`` (how a feed-forward policy sees motion). At an episode start the
  stack holds the first observation ``k`` times.

With ``o_t`` the kept observation, the stacked one is ``x_t = [o_{t-k+1}, ..., o_t]``.
The true successor of a step that ends an episode (``StepOut.final_obs``) is the stack
rolled on by the pre-reset observation, so learners bootstrap from what the policy would
have seen. Both need flat observations without an action mask (the spec refuses others).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.envs.protocol import ActionSpec, Env, ObservationSpec, StepOut, VecEnvState


@struct.dataclass
class StackState:
    inner: VecEnvState  # the wrapped env's state
    frames: jax.Array  # [N, k, d] the last k kept observations, oldest first


@dataclass(frozen=True)
class ObservationWrapper:
    """``env`` seen through ``keep`` (entries, or None: all) and a stack of ``stack``."""

    env: Env
    keep: tuple[int, ...] | None
    stack: int

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def num_envs(self) -> int:
        return self.env.num_envs

    @property
    def params(self) -> Any:
        return self.env.params

    @property
    def action_spec(self) -> ActionSpec:
        return self.env.action_spec

    @property
    def time_limit(self) -> int | None:
        return self.env.time_limit

    @property
    def episodic_life(self) -> bool:
        return bool(getattr(self.env, "episodic_life", False))

    @property
    def max_episode_steps(self) -> int:
        return self.env.max_episode_steps

    @property
    def observation_spec(self) -> ObservationSpec:
        inner = self.env.observation_spec
        width = len(self.keep) if self.keep is not None else inner.dim
        return ObservationSpec((self.stack * width,), dtype=inner.dtype)

    def _view(self, obs: jax.Array) -> jax.Array:
        """The kept entries ``[N, d]`` of observations ``[N, D]``."""
        return obs if self.keep is None else obs[:, jnp.asarray(self.keep)]

    def _fresh(self, obs: jax.Array) -> jax.Array:
        """A stack ``[N, k, d]`` holding ``obs``'s kept entries ``k`` times."""
        return jnp.repeat(self._view(obs)[:, None], self.stack, axis=1)

    def _state(self, inner: VecEnvState, frames: jax.Array) -> VecEnvState:
        flat = frames.reshape(frames.shape[0], -1)
        return VecEnvState(
            StackState(inner, frames), flat, inner.episode_return, inner.episode_length
        )

    def reset(self, key: jax.Array) -> VecEnvState:
        inner = self.env.reset(key)
        return self._state(inner, self._fresh(inner.obs))

    def step(
        self, key: jax.Array, state: VecEnvState, action: jax.Array
    ) -> tuple[VecEnvState, StepOut]:
        inner, out = self.env.step(key, state.env_state.inner, action)
        older = state.env_state.frames[:, 1:]
        final = jnp.concatenate([older, self._view(out.final_obs)[:, None]], axis=1)
        rolled = jnp.concatenate([older, self._view(out.obs)[:, None]], axis=1)
        done = (out.terminated | out.truncated)[:, None, None]
        frames = jnp.where(done, self._fresh(out.obs), rolled)
        new = self._state(inner, frames)
        return new, out.replace(obs=new.obs, final_obs=final.reshape(final.shape[0], -1))

    def with_params(self, params: Any) -> ObservationWrapper:
        return dataclasses.replace(self, env=self.env.with_params(params))

    def write_gif(self, states: Any, path: Path) -> None:
        """The wrapped env draws its own states (the observation is not drawn)."""
        self.env.write_gif(states.inner.env_state, path)


def problem(env: Env, keep: tuple[int, ...] | None, stack: int) -> tuple[str, str] | None:
    """(spec key, what is wrong) when ``env`` cannot take these wrappers, else None."""
    obs = env.observation_spec
    key = "env.obs_dims" if keep is not None else "env.frame_stack"
    if obs.mask_dim:
        return key, f"{env.name} appends an action mask to its observation; it cannot be cut"
    if len(obs.shape) > 1:
        return key, f"{env.name}'s observations are images {list(obs.shape)}, not flat vectors"
    if keep is not None:
        if not keep:
            return key, "must name at least one observation entry"
        bad = [i for i in keep if not 0 <= i < obs.dim]
        if bad:
            return key, f"entries {bad} are outside {env.name}'s observation (0..{obs.dim - 1})"
        if len(set(keep)) != len(keep):
            return key, f"repeats an entry: {list(keep)}"
    return None


__all__ = ["ObservationWrapper", "StackState", "problem"]
