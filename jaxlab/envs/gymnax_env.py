"""A vectorized gymnax adapter with flat observations and in-scan episode statistics.

All functions are pure and batched over ``num_envs`` (``N``). Observations are
flattened to ``[N, obs_dim]`` float32. gymnax >= 1.0 auto-resets inside ``step`` and
reports ``terminated`` and ``truncated`` separately, with the pre-reset observation in
``info["final_observation"]``; we pass all three on so learners can bootstrap on
truncation and cut the return only on termination.
"""

from __future__ import annotations

from typing import Any

import chex
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment


@struct.dataclass
class VecEnvState:
    """Batched env state. ``episode_return``/``episode_length``: running, per env ``[N]``."""

    env_state: Any
    obs: jax.Array  # [N, obs_dim] float32, current (post-reset) observation
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


def _flat(obs: jax.Array, n_lead: int) -> jax.Array:
    obs = jnp.asarray(obs, jnp.float32)
    return obs.reshape(obs.shape[:n_lead] + (-1,))


class VecEnv:
    """``num_envs`` copies of one gymnax environment, stepped together.

    Attributes:
        obs_shape: the env's own observation shape (``[H, W, C]`` for MinAtar).
        obs_dim: flattened observation size.
        discrete: whether actions are categorical.
        action_dim: number of actions (discrete) or action vector size (continuous).
        action_low/action_high: bounds for continuous actions (actions are clipped to
            them before the env step; learners keep the unclipped sample).
        time_limit: ``max_steps_in_episode`` when truncation is gymnax's time limit and
            nothing else (the base ``is_truncated``), else None.
    """

    def __init__(self, name: str, num_envs: int, params: dict[str, Any] | None = None) -> None:
        self.name = name
        self.num_envs = num_envs
        self.env, default = gymnax.make(name)
        self.params = default.replace(**(params or {}))
        obs_space = self.env.observation_space(self.params)
        self.obs_shape = tuple(int(d) for d in obs_space.shape)
        self.obs_dim = int(np.prod(obs_space.shape))
        own_limit = type(self.env).is_truncated is Environment.is_truncated
        limit = getattr(self.params, "max_steps_in_episode", None)
        self.time_limit = int(limit) if own_limit and limit is not None and limit >= 1 else None
        space = self.env.action_space(self.params)
        self.discrete = isinstance(space, spaces.Discrete)
        if self.discrete:
            self.action_dim = int(space.n)
            self.action_shape: tuple[int, ...] = ()
        elif isinstance(space, spaces.Box):
            self.action_shape = tuple(space.shape)
            self.action_dim = int(np.prod(space.shape))
            self.action_low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape)
            self.action_high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape)
        else:
            raise ValueError(f"{name}: action space {type(space).__name__} is not supported")

    def max_truncations(self, steps: int) -> int:
        """At most how many of ``steps`` consecutive steps of all envs can be truncated.

        A time limit of ``L`` truncates each env at most once in any ``L`` consecutive
        steps, so ``N * ceil(steps / L)``; without a known limit, every step (``N * steps``).
        """
        if self.time_limit is None:
            return self.num_envs * steps
        return min(self.num_envs * -(-steps // self.time_limit), self.num_envs * steps)

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
        if self.discrete:
            return action
        low = jnp.broadcast_to(self.action_low.reshape(-1), action.shape)
        high = jnp.broadcast_to(self.action_high.reshape(-1), action.shape)
        action = jnp.clip(action, low, high)
        return action.reshape((action.shape[0],) + self.action_shape)

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
        done = terminated | truncated
        ep_ret = state.episode_return + reward
        ep_len = state.episode_length + 1
        out = StepOut(
            obs=_flat(obs, 1),
            final_obs=_flat(info["final_observation"], 1),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            done_return=jnp.where(done, ep_ret, 0.0),
            done_length=jnp.where(done, ep_len, 0),
        )
        new_state = VecEnvState(
            env_state=env_state,
            obs=out.obs,
            episode_return=jnp.where(done, 0.0, ep_ret),
            episode_length=jnp.where(done, 0, ep_len),
        )
        return new_state, out
