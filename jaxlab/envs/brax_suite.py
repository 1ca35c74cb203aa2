"""The Brax suite (``brax.envs``) behind the env protocol: ``brax/<id>``, e.g. ``brax/ant``.

``env.params``:

- ``backend``: Brax's physics pipeline, one of ``mjx`` (default), ``generalized``,
  ``positional``, ``spring``;
- ``episode_length`` (1000 simulator steps), ``action_repeat`` (1): see
  :mod:`jaxlab.envs.mjx_state`; ``reset`` (default ``cached``): :mod:`jaxlab.envs.adapter`;
- any keyword argument of the env's constructor whose default is a number or a flag
  (e.g. ``ctrl_cost_weight`` for ``ant``).

Observations are Brax's flat vectors; actions are continuous in ``[-1, 1]``, what Brax's
own PPO and SAC output for every env (MJX clips each actuator to its control range:
humanoid's is ``[-0.4, 0.4]``, so part of the box does nothing there; inverted_pendulum's
``[-3, 3]`` is reached only to ``[-1, 1]``). This module is the only one that imports Brax.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import brax.envs
import numpy as np

from jaxlab.envs.adapter import check_count, check_like
from jaxlab.envs.mjx_state import OPTIONS, MjxStateEnv, reset_observation
from jaxlab.envs.mjx_state import SHRINK as SHRINK

BACKENDS = ("mjx", "generalized", "positional", "spring")
# Brax warns on every env build that its own pipelines are unmaintained (MJX is the
# default backend here): noise on every run's stderr.
warnings.filterwarnings("ignore", message="Brax System, piplines and environments")
DEFAULTS: dict[str, Any] = {**OPTIONS, "backend": "mjx"}


def ids() -> tuple[str, ...]:
    """Every registered Brax env name."""
    return tuple(sorted(brax.envs._envs))  # noqa: SLF001 (Brax's registry; no public listing)


def _knobs(name: str) -> dict[str, Any]:
    """The env constructor's number and flag keyword arguments, with their defaults."""
    sig = inspect.signature(brax.envs._envs[name].__init__)  # noqa: SLF001
    return {
        k: p.default
        for k, p in sig.parameters.items()
        if k != "backend" and isinstance(p.default, bool | int | float)
    }


def param_fields(name: str) -> tuple[str, ...]:
    return (*DEFAULTS, *_knobs(name))


def check_param(name: str, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be ``key`` of Brax env ``name``, or None."""
    if key == "backend":
        return None if value in BACKENDS else f"must be one of {', '.join(BACKENDS)}, got {value!r}"
    if key in OPTIONS:
        return check_count(value)
    return check_like(_knobs(name)[key], value)


def make(name: str, num_envs: int, params: dict[str, Any]) -> MjxStateEnv:
    """``num_envs`` copies of Brax env ``name`` with ``params`` over the defaults."""
    options = {**DEFAULTS, **params}
    knobs = {k: v for k, v in params.items() if k not in DEFAULTS}
    env = brax.envs.get_environment(name, backend=options["backend"], **knobs)
    bounds = np.tile(np.array([[-1.0, 1.0]], np.float32), (env.action_size, 1))
    model = (env.sys.mj_model, lambda state: state.pipeline_state.q)
    obs = reset_observation(env, "brax", name, options)
    return MjxStateEnv(f"brax/{name}", num_envs, env, bounds, options, model, obs)
