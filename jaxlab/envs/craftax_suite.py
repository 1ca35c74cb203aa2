"""The Craftax suite (Craftax and Craftax-Classic) behind the env protocol.

Envs are built with ``make_craftax_env_from_name(id, auto_reset=False)``, so craftax
never resets on its own: :class:`~jaxlab.envs.adapter.SuiteEnv` resets and keeps the true
final observation. World generation costs many steps, so the default reset mode is
``pool`` (a fresh world for one env in 16 each step, as Craftax's own optimistic reset). Craftax's ``is_terminal``
ORs the end of the game (death, lava in Classic, the beaten boss in Craftax) with
``timestep >= max_timesteps``; the adapter splits them: ``terminated`` is the end of the
game, ``truncated`` the step limit reached without it. Observations: Symbolic ids give a
flat vector ``[D]``, Pixels ids an image ``[H, W, 3]`` in ``[0, 1]`` (both flattened to
``[obs_dim]`` float32). This module is the only one that imports craftax.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from craftax.craftax_env import make_craftax_env_from_name

from jaxlab.envs.adapter import SuiteEnv, check_count, check_like, flatten, frame_steps, save_gif
from jaxlab.envs.protocol import ActionSpec, ObservationSpec

IDS = (
    "Craftax-Symbolic-v1",
    "Craftax-Pixels-v1",
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
)
SHRINK = {"max_timesteps": 50}  # --shrink: short episodes (evaluation scans one)
# --shrink: restart from the first world; world generation compiled into the step (the
# pool reset) made ppo_craftax_symbolic's smoke run 147 s instead of 99 s. The pool reset
# has its own test (tests/test_suite_grids.py).
SHRINK_SET = {"reset": "cached"}
NEVER = 2**31 - 1  # a step limit no int32 timestep reaches: only the game's own end


class CraftaxEnv(SuiteEnv):
    """``num_envs`` copies of one Craftax env; ``env_params`` is craftax's ``EnvParams``
    (fixed when the env is built). The step limit ``max_timesteps`` is both
    ``time_limit`` and ``max_episode_steps``."""

    def __init__(self, env_id: str, num_envs: int, env: Any, env_params: Any) -> None:
        self.name = f"craftax/{env_id}"
        self.num_envs = num_envs
        self.env, self.env_params = env, env_params
        self.endless = env_params.replace(max_timesteps=NEVER)
        shape = env.observation_space(env_params).shape
        self.observation_spec = ObservationSpec(tuple(int(d) for d in shape))
        self.action_spec = ActionSpec(discrete=True, dim=int(env.action_space(env_params).n))
        self.time_limit = self.max_episode_steps = int(env_params.max_timesteps)
        self.reset_mode = "pool"

    def write_gif(self, states: Any, path: Any) -> None:
        """One env's recorded states (leaves ``[T, ...]``) drawn by Craftax's own pixel
        renderer, 16 pixels a block."""
        if "Classic" in self.name:
            from craftax.craftax_classic.renderer import make_craftax_pixel_renderer
        else:
            from craftax.craftax.renderer import make_craftax_pixel_renderer
        render = jax.jit(make_craftax_pixel_renderer(16))
        frames = [
            np.clip(np.asarray(render(jax.tree.map(lambda x, t=t: x[t], states.current))), 0, 255)
            for t in frame_steps(states.current)
        ]
        save_gif(frames, path)

    def reset_one(self, key: jax.Array) -> tuple[Any, jax.Array]:
        """One env: ``key -> (craftax state, obs [obs_dim])``."""
        obs, state = self.env.reset(key, self.env_params)
        return state, flatten([obs])

    def step_one(self, key: jax.Array, state: Any, action: jax.Array) -> tuple:
        """One env, no reset: ``-> (state, obs [obs_dim], reward, terminated, truncated)``."""
        obs, state, reward, done, _ = self.env.step(key, state, action, self.env_params)
        game_over = jnp.asarray(self.env.is_terminal(state, self.endless), bool)
        done = jnp.asarray(done, bool)
        return state, flatten([obs]), jnp.asarray(reward, jnp.float32), game_over, done & ~game_over


def ids() -> tuple[str, ...]:
    """The four craftax ids (the AutoReset variants are left out: jaxlab resets)."""
    return IDS


def _default(env_id: str) -> Any:
    return make_craftax_env_from_name(env_id, auto_reset=False).default_params


def param_fields(env_id: str) -> tuple[str, ...]:
    """craftax ``EnvParams`` fields holding a number or a bool (what ``env.params`` sets;
    ``fractal_noise_angles`` is left out)."""
    default = _default(env_id)
    return tuple(
        k for k in default.__dataclass_fields__ if isinstance(getattr(default, k), int | float)
    )


def check_param(env_id: str, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be craftax ``env_id``'s param ``key`` (None when it can): the
    default's type (an int serves for a float); ``max_timesteps`` an integer >= 1."""
    if key == "max_timesteps":
        return check_count(value)
    return check_like(getattr(_default(env_id), key), value)


def make(env_id: str, num_envs: int, params: dict[str, Any]) -> CraftaxEnv:
    """``num_envs`` copies of craftax ``env_id`` with ``params`` over its defaults."""
    env = make_craftax_env_from_name(env_id, auto_reset=False)
    return CraftaxEnv(env_id, num_envs, env, env.default_params.replace(**params))
