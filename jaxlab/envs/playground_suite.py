"""The MuJoCo Playground suite (``mujoco_playground.registry``) behind the env protocol:
``playground/<id>``, e.g. ``playground/CartpoleBalance``, ``playground/CheetahRun``.

``env.params``:

- ``episode_length`` and ``action_repeat``: default to the task's own config (what
  Playground's ``wrap_for_brax_training`` uses); ``reset`` (default ``cached``): see
  :mod:`jaxlab.envs.adapter`;
- ``obs_key``: for tasks whose observation is a dict (``state``, ``privileged_state``...),
  the entry learners see (default ``state``);
- ``impl``: MJX's implementation, ``jax`` or ``warp`` (the task's config default; ``warp``
  builds its kernels on first use, reported at over a minute on a CPU, and steps
  far slower there than ``jax``);
- ``config``: other overrides of the task's config (e.g. ``{ctrl_dt: 0.02}``), checked
  against its keys.

Actions are continuous in the actuators' control range. This module is the only one that
imports Playground. Locomotion and manipulation tasks built on MuJoCo Menagerie robots
need the Menagerie (Playground clones it on first use).
"""

from __future__ import annotations

from typing import Any

from mujoco_playground import registry

from jaxlab.config.parse import did_you_mean
from jaxlab.envs.adapter import check_count, check_names
from jaxlab.envs.mjx_state import SHRINK as SHRINK
from jaxlab.envs.mjx_state import MjxStateEnv, reset_observation

OWN = ("episode_length", "action_repeat")  # options read from the task's config
FIELDS = (*OWN, "obs_key", "impl", "config")
IMPLS = ("jax", "warp")


def ids() -> tuple[str, ...]:
    """Every registered Playground task."""
    return tuple(sorted(registry.ALL_ENVS))


def param_fields(name: str) -> tuple[str, ...]:
    return FIELDS


def check_param(name: str, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be ``key`` of task ``name``, or None."""
    if key in OWN:
        return check_count(value)
    if key == "impl":
        return check_names(value, IMPLS) if isinstance(value, str) else f"must be one of {IMPLS}"
    if key == "obs_key":
        obs = reset_observation(registry.load(name), "playground", name, {})
        if not isinstance(obs, dict):
            return f"{name}'s observation is one array, so it takes no obs_key"
        return (
            check_names(value, obs) if isinstance(value, str) else f"must be one of {sorted(obs)}"
        )
    if not isinstance(value, dict):
        return f"must be a mapping of config keys, got {value!r}"
    known = registry.get_default_config(name).keys()
    wrong = [k for k in value if k not in known]
    return f"unknown config key {wrong[0]!r}{did_you_mean(wrong[0], known)}" if wrong else None


def make(name: str, num_envs: int, params: dict[str, Any]) -> MjxStateEnv:
    """``num_envs`` copies of Playground task ``name`` with ``params`` over its config."""
    overrides = dict(params.get("config", {}))
    overrides.update({k: params[k] for k in ("impl",) if k in params})
    config = registry.get_default_config(name)
    env = registry.load(name, config=config, config_overrides=overrides or None)
    options = {
        "episode_length": params.get("episode_length", int(config.episode_length)),
        "action_repeat": params.get("action_repeat", int(config.get("action_repeat", 1))),
    }
    obs = reset_observation(env, "playground", name, overrides)
    obs_key = params.get("obs_key", "state") if isinstance(obs, dict) else None
    bounds = env.mj_model.actuator_ctrlrange
    model = (env.mj_model, lambda state: state.data.qpos)
    return MjxStateEnv(f"playground/{name}", num_envs, env, bounds, options, model, obs, obs_key)
