"""The Jumanji suite behind the env protocol, on the shared core :class:`SuiteEnv`.

Observations (namedtuples) are flattened field by field; ``env.params.obs_keys`` picks
the fields (a name or a list, in that order; default every field but ``action_mask``, in
field order). One array field keeps its own shape as the observation shape (a grid can go
to a conv torso). An ``action_mask`` is appended as 1/0 floats (``mask_dim`` = actions).
The other params are the env's constructor arguments that are plain ints, floats or bools.

Jumanji ends episodes on its time limit with discount 0, as if they terminated; here an
env with a ``time_limit`` is built with that limit out of reach and the core truncates at
it, so a LAST step with discount 0 is a termination, one with discount > 0 a truncation.
Envs without a time limit get ``max_episode_steps = DEFAULT_EPISODE_STEPS``: their
episodes end within their problem size (TSP, Knapsack, BinPack, Sudoku, ...) except
Game2048's, which a strong policy can stretch past it (evaluation cuts them there).

A MultiDiscrete action whose mask covers every combination (BinPack, FlatPack,
Minesweeper, RubiksCube, Sudoku, Tetris) is one Discrete action of ``prod(n)`` values,
unravelled in C order, its mask flattened the same way. :data:`EXCLUDED` envs act per
agent, which no single categorical or Box fits. Sokoban-v0's default generator downloads
its levels from Hugging Face the first time it is made. This is the only jumanji importer.
"""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jumanji
import numpy as np
from jumanji import specs

from jaxlab.envs.adapter import SuiteEnv, check_count, check_like, check_names, flatten, frame_steps
from jaxlab.envs.protocol import ActionSpec, ObservationSpec

DEFAULT_EPISODE_STEPS = 1000  # the episode bound of an env without a time limit
SHRINK = {"time_limit": 50}  # --shrink: short episodes (evaluation scans one)
NEVER = 2**31 - 1  # jumanji's own time limit, out of reach: the core truncates instead
MAX_FRAMES = 300  # a GIF's frames, evenly subsampled from longer episodes
EXCLUDED = {
    **dict.fromkeys(
        ("Cleaner-v0", "Connector-v3", "LevelBasedForaging-v0", "MMST-v0", "RobotWarehouse-v0"),
        "multi-agent: one discrete action per agent",
    ),
    "JobShop-v0": "one action per machine (21^10 joint actions, masked per machine)",
    "MultiCVRP-v0": "multi-agent: one integer node per vehicle",
    "SearchAndRescue-v0": "multi-agent: one continuous action and reward per searcher",
}


@functools.cache
def _default(env_id: str) -> Any:
    return jumanji.make(env_id)


def _kinds(env_id: str) -> dict[str, type]:
    """Constructor arguments that are plain ints, floats or bools (Optional ones too)."""
    init = type(_default(env_id)).__init__
    hints = typing.get_type_hints(init)
    kinds = {}
    for name, p in inspect.signature(init).parameters.items():
        if type(p.default) in (int, float, bool):
            kinds[name] = type(p.default)
        elif p.default is None and hints.get(name) in (int | None, float | None):
            kinds[name] = typing.get_args(hints[name])[0]
    return kinds


def _action_spec(spec: Any, mask: tuple[int, ...] | None) -> tuple[ActionSpec, Any]:
    """The learner's action spec and the MultiDiscrete sizes to unravel (or None)."""
    if isinstance(spec, specs.DiscreteArray):
        return ActionSpec(True, int(spec.num_values)), None
    if isinstance(spec, specs.MultiDiscreteArray):
        nvec = tuple(int(n) for n in spec.num_values)
        if mask not in (None, nvec):
            raise ValueError(f"per-part action mask {mask} of actions {nvec}")
        return ActionSpec(True, int(np.prod(nvec))), nvec
    if isinstance(spec, specs.BoundedArray) and jnp.issubdtype(spec.dtype, jnp.floating):
        shape = tuple(spec.shape)
        low = np.broadcast_to(np.asarray(spec.minimum, np.float32), shape)
        high = np.broadcast_to(np.asarray(spec.maximum, np.float32), shape)
        return ActionSpec(False, int(np.prod(shape)), shape, low, high), None
    raise ValueError(f"action spec {spec!r} is not supported")


class JumanjiEnv(SuiteEnv):
    """``num_envs`` copies of one Jumanji env (see the module docstring)."""

    # Jumanji's resets generate problems (a maze, a snake and its fruit): restarting all
    # envs on every step an episode ended made PPO on Maze 5x slower (benchmarks/RESULTS.md).
    restart_ended_only = True

    def __init__(self, env_id: str, num_envs: int, params: dict[str, Any]) -> None:
        kwargs = dict(params)
        keys = kwargs.pop("obs_keys", None)
        env = jumanji.make(env_id, **kwargs) if kwargs else _default(env_id)
        limit = getattr(env, "time_limit", None)
        if limit is not None and "time_limit" in _kinds(env_id):
            env = jumanji.make(env_id, **{**kwargs, "time_limit": NEVER})
            self.time_limit = int(limit)
        self.max_episode_steps = int(limit) if limit is not None else DEFAULT_EPISODE_STEPS
        self.env, self.name, self.num_envs = env, f"jumanji/{env_id}", num_envs
        example = env.observation_spec.generate_value()._asdict()
        mask = example.pop("action_mask", None)
        self.keys = [keys] if isinstance(keys, str) else list(keys or example)
        leaves = jax.tree.leaves([example[k] for k in self.keys])
        shape = (leaves[0].shape or (1,)) if len(leaves) == 1 else (sum(x.size for x in leaves),)
        if jnp.shape(env.reward_spec.generate_value()) != ():
            raise ValueError(f"{self.name}: rewards per agent are not supported")
        mask_shape = None if mask is None else tuple(mask.shape)
        self.action_spec, self.nvec = _action_spec(env.action_spec, mask_shape)
        dim = 0 if mask is None else self.action_spec.dim
        self.observation_spec = ObservationSpec(shape, dim)

    def _obs(self, observation: Any) -> jax.Array:
        fields = observation._asdict()
        mask = [fields["action_mask"]] if "action_mask" in fields else []
        return flatten(jax.tree.leaves([fields[k] for k in self.keys]) + mask)

    def reset_one(self, key: jax.Array) -> tuple[Any, jax.Array]:
        state, timestep = self.env.reset(key)
        return state, self._obs(timestep.observation)

    def step_one(self, key: jax.Array, state: Any, action: jax.Array) -> tuple:
        if self.nvec is not None:
            action = jnp.stack(jnp.unravel_index(action, self.nvec))
        state, ts = self.env.step(state, action.astype(self.env.action_spec.dtype))
        last, ended = ts.last(), ts.discount == 0
        reward = jnp.asarray(ts.reward, jnp.float32)
        return state, self._obs(ts.observation), reward, last & ended, last & ~ended

    def write_gif(self, states: Any, path: Path) -> None:
        """One env's recorded jumanji states (leaves ``[T, ...]``) drawn by jumanji's own
        viewer (matplotlib, Agg), at most :data:`MAX_FRAMES` frames."""
        import matplotlib

        matplotlib.use("Agg")
        current = getattr(states, "current", states)
        picks = frame_steps(current, MAX_FRAMES)
        frames = [jax.tree.map(lambda x, t=t: x[t], current) for t in picks]
        self.env.animate(frames).save(str(path), writer="pillow")
        self.env.close()


def ids() -> tuple[str, ...]:
    """Every registered jumanji id but the :data:`EXCLUDED` ones."""
    return tuple(sorted(set(jumanji.registered_environments()) - set(EXCLUDED)))


def param_fields(env_id: str) -> tuple[str, ...]:
    """``obs_keys`` and the env's plain constructor arguments."""
    return ("obs_keys", *_kinds(env_id))


def check_param(env_id: str, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be jumanji env ``env_id``'s param ``key`` (None when it can)."""
    if key == "obs_keys":
        fields = _default(env_id).observation_spec.generate_value()._asdict()
        return check_names(value, set(fields) - {"action_mask"})
    if key == "time_limit":
        return check_count(value)
    return check_like(_kinds(env_id)[key], value)


def make(env_id: str, num_envs: int, params: dict[str, Any]) -> JumanjiEnv:
    """``num_envs`` copies of jumanji env ``env_id`` with ``params`` over its defaults."""
    if env_id in EXCLUDED:
        raise ValueError(f"jumanji/{env_id} is not supported: {EXCLUDED[env_id]}")
    return JumanjiEnv(env_id, num_envs, params)
