"""Environments behind one protocol (:mod:`jaxlab.envs.protocol`), built by :func:`make_env`.

``env.name`` is ``<suite>/<id>`` (e.g. ``gymnax/CartPole-v1``) or a bare id, which is
gymnax's. Each suite is one adapter module, imported when a spec first names it, so a
suite's package (and, on a GPU, whatever it allocates on import) is loaded only when used.
:func:`make_env` and :func:`check_env` are the only places that know which suite an id
belongs to.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from jaxlab.config.parse import SpecError, did_you_mean
from jaxlab.envs.protocol import (
    ActionSpec,
    CannotRender,
    Env,
    ObservationSpec,
    StepOut,
    VecEnvState,
    max_truncations,
)

DEFAULT_SUITE = "gymnax"


@dataclass(frozen=True)
class Suite:
    """An env suite: ``module`` defines ``ids() -> ids``, ``param_fields(id) -> names``,
    ``check_param(id, key, value) -> problem or None`` and ``make(id, num_envs, params) ->
    Env``."""

    name: str
    module: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


SUITES: dict[str, Suite] = {"gymnax": Suite("gymnax", "jaxlab.envs.gymnax_suite")}


class EnvSettings(Protocol):
    """What :func:`make_env` reads of a spec's ``env`` section."""

    name: str
    num_envs: int
    params: Mapping[str, Any]


def split_name(name: str) -> tuple[str, str]:
    """``'<suite>/<id>'`` -> ``(suite, id)``; a bare id is the default suite's."""
    suite, sep, env_id = name.partition("/")
    return (suite, env_id) if sep else (DEFAULT_SUITE, name)


def make_env(env: EnvSettings, num_envs: int | None = None) -> Env:
    """The spec's env, ``num_envs`` copies (default ``env.num_envs``)."""
    suite, env_id = split_name(env.name)
    count = env.num_envs if num_envs is None else num_envs
    return SUITES[suite].load().make(env_id, count, dict(env.params))


def check_env(name: str, params: Mapping[str, Any], name_path: str, params_path: str) -> None:
    """Raise SpecError unless ``name`` is a known env and ``params`` are fields it has."""
    suite_name, env_id = split_name(name)
    if suite_name not in SUITES:
        hint = did_you_mean(suite_name, SUITES) or f" (known: {', '.join(sorted(SUITES))})"
        raise SpecError(name_path, f"unknown env suite '{suite_name}'{hint}")
    suite = SUITES[suite_name].load()
    known = suite.ids()
    if env_id not in known:
        raise SpecError(
            name_path, f"unknown {suite_name} environment '{env_id}'" + did_you_mean(env_id, known)
        )
    fields = suite.param_fields(env_id) if params else ()
    for key, value in params.items():
        if key not in fields:
            raise SpecError(
                f"{params_path}.{key}", f"not a parameter of {name}" + did_you_mean(key, fields)
            )
        problem = suite.check_param(env_id, key, value)
        if problem:
            raise SpecError(f"{params_path}.{key}", problem)


__all__ = [
    "ActionSpec",
    "CannotRender",
    "Env",
    "EnvSettings",
    "ObservationSpec",
    "SUITES",
    "StepOut",
    "Suite",
    "VecEnvState",
    "check_env",
    "make_env",
    "max_truncations",
    "split_name",
]
