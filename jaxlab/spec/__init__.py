"""Specs: YAML -> frozen, typed, validated dataclasses."""

from jaxlab.config.parse import SpecError
from jaxlab.spec.load import load_spec, read_yaml, resolve_raw, spec_from_dict
from jaxlab.spec.schema import (
    AgentSpec,
    Derived,
    EnvSpec,
    LrScheduleSpec,
    MemorySpec,
    MetaSpec,
    NetSpec,
    OptimSpec,
    Spec,
    parse_spec,
)
from jaxlab.spec.smoke import shrink

__all__ = [
    "AgentSpec",
    "Derived",
    "EnvSpec",
    "LrScheduleSpec",
    "MemorySpec",
    "MetaSpec",
    "NetSpec",
    "OptimSpec",
    "Spec",
    "SpecError",
    "load_spec",
    "parse_spec",
    "read_yaml",
    "resolve_raw",
    "shrink",
    "spec_from_dict",
]
