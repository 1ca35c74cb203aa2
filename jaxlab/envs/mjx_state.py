"""The adapter core for Brax-style envs (Brax and MuJoCo Playground): both give
``reset(key) -> State`` and ``step(State, action) -> State`` with ``State.obs`` (an array,
or a dict of arrays for Playground), ``State.reward`` and ``State.done``.

The bare env's ``done`` is termination only: the time limit is the wrappers' (``EpisodeWrapper``
in Brax, ``wrap_for_brax_training`` in Playground), and here :class:`~jaxlab.envs.adapter.SuiteEnv`'s:
an episode of ``episode_length`` simulator steps is ``ceil(episode_length / action_repeat)``
agent steps, then truncated. The default reset mode is ``cached``, as both suites train
(:mod:`jaxlab.envs.adapter`).
This module imports neither suite.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.envs.adapter import (
    SuiteEnv,
    frame_steps,
    save_gif,
    suite_code,
)
from jaxlab.envs.protocol import ActionSpec, ObservationSpec

# The options every Brax-style env takes in ``env.params``, with their defaults.
OPTIONS: dict[str, Any] = {"episode_length": 1000, "action_repeat": 1}
SHRINK = {"episode_length": 50}  # --shrink: short episodes (evaluation scans one)


_RESET_OBS: dict[str, Any] = {}  # reset_observation's cache


def reset_observation(env: Any, *how: Any) -> Any:
    """The shapes of ``env``'s reset observation (one array's, or a dict of them),
    computing nothing. Traced once per process for each ``how`` (the suite, task and
    options that built ``env``): tracing an MJX reset takes 1-3 s, and a run builds its
    env several times (the spec's check, training, evaluation, the report)."""
    key = json.dumps(how, sort_keys=True, default=str)
    if key not in _RESET_OBS:
        with suite_code():
            _RESET_OBS[key] = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs
    return _RESET_OBS[key]


class MjxStateEnv(SuiteEnv):
    """``num_envs`` copies of a Brax-style ``env`` whose actions lie in ``[low, high]``.

    ``obs``: the shapes of its reset observation (:func:`reset_observation`); ``obs_key``:
    for dict observations, the key learners see (e.g. Playground's ``state``).
    ``model``: the task's ``mujoco.MjModel`` and ``qpos(state) -> [nq]`` for drawing it.
    """

    def __init__(
        self, name: str, num_envs: int, env: Any, bounds: np.ndarray, options: dict[str, Any],
        model: tuple[Any, Any], obs: Any, obs_key: str | None = None,
    ) -> None:  # fmt: skip
        self.name, self.num_envs, self.env, self.obs_key = name, num_envs, env, obs_key
        self.model = model
        self.action_repeat = options["action_repeat"]
        self.reset_mode = "cached"
        self.time_limit = math.ceil(options["episode_length"] / self.action_repeat)
        self.max_episode_steps = self.time_limit
        shape = (obs[obs_key] if obs_key is not None else obs).shape
        self.observation_spec = ObservationSpec(tuple(shape))
        low, high = (np.asarray(bounds[:, i], np.float32) for i in (0, 1))
        self.action_spec = ActionSpec(False, len(low), (len(low),), low, high)

    def write_gif(self, states: Any, path: Any) -> None:
        """One env's recorded states drawn by MuJoCo's own renderer (headless: EGL, see
        ``jaxlab/__init__.py``)."""
        import mujoco

        model, qpos = self.model
        data = mujoco.MjData(model)
        frames = []
        with mujoco.Renderer(model, 240, 320) as renderer:
            for t in frame_steps(states.current):
                data.qpos[:] = np.asarray(qpos(jax.tree.map(lambda x, t=t: x[t], states.current)))
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, camera=-1)
                frames.append(renderer.render())
        save_gif(frames, path)

    def _obs(self, state: Any) -> jax.Array:
        obs = state.obs[self.obs_key] if self.obs_key is not None else state.obs
        return jnp.asarray(obs, jnp.float32)

    def reset_one(self, key: jax.Array) -> tuple[Any, jax.Array]:
        state = self.env.reset(key)
        return state, self._obs(state).reshape(-1)

    def step_one(self, key: jax.Array, state: Any, action: jax.Array) -> tuple:
        del key  # Brax-style steps are deterministic given the state
        state = self.env.step(state, action)
        terminated = state.done > 0.5
        return state, self._obs(state).reshape(-1), state.reward, terminated, jnp.zeros((), bool)


__all__ = ["OPTIONS", "SHRINK", "MjxStateEnv", "reset_observation"]
