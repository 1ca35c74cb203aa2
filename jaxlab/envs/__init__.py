"""Environments: the gymnax adapter and spec-time checks."""

from __future__ import annotations

from typing import Any

import gymnax

from jaxlab.config.parse import SpecError, did_you_mean
from jaxlab.envs.gymnax_env import StepOut, VecEnv, VecEnvState


def check_env(name: str, params: dict[str, Any], name_path: str, params_path: str) -> None:
    """Raise SpecError unless ``name`` is a gymnax id and ``params`` are its EnvParams fields."""
    if name not in gymnax.registered_envs:
        raise SpecError(
            name_path,
            f"unknown gymnax environment '{name}'" + did_you_mean(name, gymnax.registered_envs),
        )
    if params:
        _, default = gymnax.make(name)
        fields = set(default.__dataclass_fields__)
        for key in params:
            if key not in fields:
                raise SpecError(
                    f"{params_path}.{key}", f"not a parameter of {name}" + did_you_mean(key, fields)
                )


__all__ = ["StepOut", "VecEnv", "VecEnvState", "check_env"]
