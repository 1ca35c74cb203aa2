"""The gymnax suite behind the env protocol (:mod:`jaxlab.envs.protocol`).

All functions are pure and batched over ``num_envs`` (``N``). gymnax >= 1.0 auto-resets
inside ``step`` and reports ``terminated`` and ``truncated`` separately, with the
pre-reset observation in ``info["final_observation"]``; all three are passed on so
learners can bootstrap on truncation and cut the return only on termination. This module
and :mod:`jaxlab.envs.gymnax_render` are the only ones that import gymnax.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import chex
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from jaxlab.envs.adapter import check_like
from jaxlab.envs.gymnax_render import write_gif
from jaxlab.envs.protocol import ActionSpec, ObservationSpec, StepOut, VecEnvState, end_step

# Evaluation's episode bound for an env whose params name no ``max_steps_in_episode``.
DEFAULT_EPISODE_STEPS = 1000


def _flat(obs: jax.Array, n_lead: int) -> jax.Array:
    obs = jnp.asarray(obs, jnp.float32)
    return obs.reshape(obs.shape[:n_lead] + (-1,))


class GymnaxEnv:
    """``num_envs`` copies of one gymnax environment, stepped together (an :class:`Env`).

    ``params``: gymnax ``EnvParams`` (a pytree). ``time_limit`` is
    ``max_steps_in_episode`` when truncation is gymnax's time limit and nothing else (the
    base ``is_truncated``), else None.
    """

    def __init__(self, name: str, num_envs: int, params: Any = None) -> None:
        self.name = name
        self.num_envs = num_envs
        self.env, default = gymnax.make(name)
        self.params = default if params is None else params
        obs_space = self.env.observation_space(self.params)
        self.observation_spec = ObservationSpec(tuple(int(d) for d in obs_space.shape))
        self.action_spec = _action_spec(name, self.env.action_space(self.params))
        own_limit = type(self.env).is_truncated is Environment.is_truncated
        limit = getattr(self.params, "max_steps_in_episode", None)
        self.time_limit = int(limit) if own_limit and limit is not None and limit >= 1 else None
        self.max_episode_steps = int(limit) if limit is not None else DEFAULT_EPISODE_STEPS

    def with_params(self, params: Any) -> GymnaxEnv:
        """The same env with other ``params`` (may be traced); specs and limits are kept."""
        env = copy.copy(self)
        env.params = params
        return env

    def reset(self, key: chex.PRNGKey) -> VecEnvState:
        keys = jax.random.split(key, self.num_envs)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        n = self.num_envs
        return VecEnvState(
            env_state=env_state,
            obs=_flat(obs, 1),
            episode_return=jnp.zeros((n,), jnp.float32),
            episode_length=jnp.zeros((n,), jnp.int32),
        )

    def env_action(self, action: jax.Array) -> jax.Array:
        """Learner action ``[N, action_dim]`` or ``[N]`` -> what gymnax's step expects."""
        spec = self.action_spec
        if spec.discrete:
            return action
        low = jnp.broadcast_to(spec.low.reshape(-1), action.shape)
        high = jnp.broadcast_to(spec.high.reshape(-1), action.shape)
        action = jnp.clip(action, low, high)
        return action.reshape((action.shape[0],) + spec.shape)

    def step(
        self, key: chex.PRNGKey, state: VecEnvState, action: jax.Array
    ) -> tuple[VecEnvState, StepOut]:
        keys = jax.random.split(key, self.num_envs)
        obs, env_state, reward, terminated, truncated, info = jax.vmap(
            self.env.step, in_axes=(0, 0, 0, None)
        )(keys, state.env_state, self.env_action(action), self.params)
        reward = jnp.asarray(reward, jnp.float32).reshape(self.num_envs)
        terminated = jnp.asarray(terminated, bool).reshape(self.num_envs)
        truncated = jnp.asarray(truncated, bool).reshape(self.num_envs)
        obs = _flat(obs, 1)
        final_obs = _flat(info["final_observation"], 1)
        return end_step(state, env_state, obs, final_obs, reward, terminated, truncated)

    def write_gif(self, states: Any, path: Path) -> None:
        """An animated GIF of one env's recorded gymnax states (leaves ``[T, ...]``)."""
        write_gif(self.name, self.params, states, path)


def _action_spec(name: str, space: Any) -> ActionSpec:
    if isinstance(space, spaces.Discrete):
        return ActionSpec(discrete=True, dim=int(space.n))
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return ActionSpec(False, int(np.prod(shape)), shape, low, high)
    raise ValueError(f"{name}: action space {type(space).__name__} is not supported")


def ids() -> tuple[str, ...]:
    """Every registered gymnax id."""
    return tuple(gymnax.registered_envs)


def param_fields(name: str) -> tuple[str, ...]:
    """The ``EnvParams`` fields of gymnax env ``name`` (what ``env.params`` may set)."""
    _, default = gymnax.make(name)
    return tuple(default.__dataclass_fields__)


def check_param(name: str, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be gymnax env ``name``'s param ``key`` (None when it can): it
    must have the default's type (an int serves for a float), and episode limits are >= 1."""
    _, default = gymnax.make(name)
    problem = check_like(getattr(default, key), value)
    if problem:
        return problem
    if key == "max_steps_in_episode" and value < 1:
        return f"must be >= 1, got {value!r}"
    return None


def make(name: str, num_envs: int, params: dict[str, Any]) -> GymnaxEnv:
    """``num_envs`` copies of gymnax env ``name`` with ``params`` over its defaults."""
    _, default = gymnax.make(name)
    return GymnaxEnv(name, num_envs, default.replace(**params))
