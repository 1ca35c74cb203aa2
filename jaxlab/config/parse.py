"""Typed parsing of plain mappings into frozen dataclasses.

Every spec section is a frozen dataclass. :func:`build` walks a mapping against the
dataclass's type hints and rejects unknown keys (with a did-you-mean), wrong types and
missing required keys, always naming the full key path (``agent.net.optim.lr``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")
# Spec integers are counts, sizes and seeds: beyond int64 nothing downstream can hold them.
MAX_INT = 2**63 - 1


class SpecError(ValueError):
    """A spec problem, reported as one line naming the key path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def join(path: str, key: str) -> str:
    """Join key paths: ``join("agent", "net") == "agent.net"``."""
    return f"{path}.{key}" if path else key


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix, or '' when nothing is close."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    close = close or sorted(c for c in choices if len(word) >= 3 and c.startswith(word))[:1]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(tp: Any) -> str:
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    origin = get_origin(tp)
    if origin is tuple:
        return f"a list of {_type_name(get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against type ``tp`` and convert it (lists -> tuples, int -> float)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg, path)
            except SpecError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        if value not in get_args(tp):
            hint = did_you_mean(str(value), [str(a) for a in get_args(tp)])
            raise SpecError(path, f"must be {_type_name(tp)}, got {value!r}{hint}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpecError(path, f"must be {_type_name(tp)}, got {value!r}")
        (item_tp, *_rest) = get_args(tp)
        return tuple(convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise SpecError(path, f"must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and hasattr(tp, "from_number"):  # e.g. a schedule given as a constant
            return tp.from_number(float(value))
        return build(tp, value, path)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(path, f"must be true or false, got {value!r}")
        return value
    if tp in (int, float):
        return _number(value, tp, path)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported spec type {tp!r} at {path}")  # programming error


def _number(value: Any, tp: type, path: str) -> int | float:
    """An int within int64 (5.0e5-style whole floats accepted) or a finite float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if tp is int else "a number"
        raise SpecError(path, f"must be {kind}, got {value!r}")
    if tp is int:
        if isinstance(value, float) and not value.is_integer():
            raise SpecError(path, f"must be an integer, got {value!r}")
        if not -MAX_INT <= value <= MAX_INT:
            raise SpecError(path, f"must be an integer within +-{MAX_INT:,}, got {value:.3g}")
        return int(value)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise SpecError(path, f"must be a finite number, got {value!r}")
    return number


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from mapping ``data``; unknown keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(path, f"must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise SpecError(join(path, str(key)), "unknown key" + did_you_mean(str(key), fields))
    kwargs = {}
    for name, field in fields.items():
        sub = join(path, name)
        if name in data:
            kwargs[name] = convert(data[name], hints[name], sub)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SpecError(sub, "is required")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(path)
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclasses -> plain dicts/lists (YAML-ready), recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b.c": leaf}`` (the dotted key paths ``-s`` overrides use)."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def varied_keys(specs: list[Mapping[str, Any]], ignore: tuple[str, ...] = ("name",)) -> list[str]:
    """Dotted keys whose values differ between the spec mappings ``specs`` (sorted), the
    top-level sections in ``ignore`` left out."""
    flats = [flatten({k: v for k, v in s.items() if k not in ignore}) for s in specs]
    keys = sorted(set().union(*flats))
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


def require_positive(obj: Any, path: str, *names: str) -> None:
    """Raise SpecError unless each named numeric field of ``obj`` is > 0."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and value <= 0:
            raise SpecError(join(path, name), f"must be positive, got {value!r}")


def require_range(obj: Any, path: str, name: str, lo: float, hi: float) -> None:
    """Raise SpecError unless ``lo <= obj.name <= hi``."""
    value = getattr(obj, name)
    if not lo <= value <= hi:
        raise SpecError(join(path, name), f"must lie in [{lo}, {hi}], got {value!r}")


def apply_overrides(raw: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each dotted key path set to its value."""
    raw = copy.deepcopy(raw)
    for keypath, value in paths.items():
        node = raw
        parts = keypath.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise SpecError(f"-s {keypath}", f"'{where}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return raw
