"""Load a spec from YAML: ``-s`` overrides, ``${var}`` placeholders, then validation.

Resolution order:

1. the YAML file is read (``name`` defaults to the file stem);
2. ``-s a.b.c=VALUE`` overrides set key paths (VALUE is parsed as YAML: ``3``, ``1e-3``,
   ``[64, 64]``, ``true``); ``-s name=...``/``-s search=...`` set top-level keys;
3. ``${var}`` placeholders are filled from ``-s var=VALUE`` (no dot), then from the spec's
   optional top-level ``vars:`` mapping. A placeholder that is the whole value takes the
   variable's type; one inside a longer string is substituted as text;
4. the result is validated into a frozen :class:`~jaxlab.spec.schema.Spec`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from jaxlab.config.parse import SpecError, apply_overrides, join
from jaxlab.spec.schema import SECTIONS, Spec, parse_spec
from jaxlab.spec.smoke import shrunk

Overrides = Mapping[str, Any] | Sequence[str] | None

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3``/``5e5`` as numbers (YAML 1.2 floats).

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-3``), so ``lr: 3e-4`` would
    silently be the string "3e-4".
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# What a spec or suite file may grow to once its aliases are expanded: real ones hold a
# few hundred values; an alias "bomb" (each level 9 aliases of the one before) expands to
# billions, which every later step (overrides, validation, spec.yaml) would walk.
MAX_VALUES = 100_000
MAX_DEPTH = 64


def yaml_load(text: str) -> Any:
    """Parse YAML text; a key repeated in one mapping is a SpecError naming its path (YAML
    would silently keep the last one), and so are an alias inside itself, nesting deeper
    than :data:`MAX_DEPTH` and more than :data:`MAX_VALUES` values after aliases expand."""
    try:
        root = yaml.compose(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise SpecError("", f"YAML nested deeper than {MAX_DEPTH} levels") from None
    if _count_values(root, "", {}, set()) > MAX_VALUES:
        raise SpecError("", f"YAML expands to more than {MAX_VALUES:,} values (through aliases)")
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _count_values(node: yaml.Node | None, path: str, counted: dict, inside: set) -> int:
    """How many values ``node`` expands to, aliases counted at each use (``counted``: by
    node id, so each node is walked once; ``inside``: the ids on the path from the root).
    SpecError at a key repeated in one mapping, an alias that contains itself, or nesting
    deeper than :data:`MAX_DEPTH`."""
    if id(node) in counted:
        return counted[id(node)]
    if id(node) in inside:
        raise SpecError(path, "a YAML alias used inside its own anchor")
    if path.count(".") + path.count("[") > MAX_DEPTH:
        raise SpecError("", f"YAML nested deeper than {MAX_DEPTH} levels")
    inside.add(id(node))
    if isinstance(node, yaml.MappingNode):
        children = _mapping_children(node, path)
    elif isinstance(node, yaml.SequenceNode):
        children = [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
    else:
        children = []
    total = 1 + sum(_count_values(child, where, counted, inside) for child, where in children)
    inside.discard(id(node))
    counted[id(node)] = total
    return total


def _mapping_children(node: yaml.MappingNode, path: str) -> list[tuple[yaml.Node, str]]:
    """A mapping's values with their key paths; SpecError at a key that appears twice."""
    seen: dict[str, int] = {}
    children = []
    for key, value in node.value:
        name = str(key.value)
        here = join(path, name)
        if name in seen:
            raise SpecError(
                here, f"duplicate key (lines {seen[name]} and {key.start_mark.line + 1})"
            )
        seen[name] = key.start_mark.line + 1
        children.append((value, here))
    return children


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning I/O and syntax problems into one-line SpecErrors."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError("", f"cannot read spec file {str(path)!r}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError("", f"{path}: not a text (UTF-8) spec file") from None
    try:
        return yaml_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError("", f"{path}: invalid YAML{where}: {problem}") from None


def parse_overrides(overrides: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``KEY=VALUE`` strings into (key-path overrides, variables)."""
    paths: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"-s {item}", "must look like key.path=value")
        try:
            value = yaml_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if "." in key or key in SECTIONS:
            paths[key] = value
        else:
            variables[key] = value
    return paths, variables


def resolve_vars(node: Any, variables: dict[str, Any], used: set[str], path: str = "") -> Any:
    """Replace ``${var}`` placeholders in every string of ``node``."""
    if isinstance(node, dict):
        return {
            k: resolve_vars(v, variables, used, f"{path}.{k}" if path else str(k))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [resolve_vars(v, variables, used, f"{path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def lookup(name: str) -> Any:
        if name not in variables:
            raise SpecError(path, f"undefined variable ${{{name}}}: set it with -s {name}=VALUE")
        used.add(name)
        return variables[name]

    whole = _VAR.fullmatch(node)
    if whole:
        return lookup(whole.group(1))
    return _VAR.sub(lambda m: str(lookup(m.group(1))), node)


def resolve_raw(raw: Any, overrides: list[str] | None = None, name: str | None = None) -> Any:
    """Apply overrides and variables to a raw spec mapping (no validation of sections)."""
    if not isinstance(raw, dict):
        raise SpecError("", f"a spec must be a mapping of sections, got {type(raw).__name__}")
    paths, cli_vars = parse_overrides(overrides or [])
    raw = dict(raw)
    spec_vars = raw.pop("vars", None) or {}
    if not isinstance(spec_vars, dict):
        raise SpecError("vars", f"must be a mapping, got {spec_vars!r}")
    if name is not None:
        raw.setdefault("name", name)
    raw = apply_overrides(raw, paths)
    variables = {**spec_vars, **cli_vars}
    used: set[str] = set()
    raw = resolve_vars(raw, variables, used)
    for var in cli_vars:
        if var not in used:
            raise SpecError(
                f"-s {var}", f"no ${{{var}}} placeholder in the spec and not a key path"
            )
    return raw


def load_spec(path: str | Path, overrides: Overrides = None, *, shrink: bool = False) -> Spec:
    """Read, resolve and validate the spec at ``path``; raises SpecError on any problem.

    ``overrides``: ``-s`` style strings or a ``{key: value}`` dict (:func:`override_strings`);
    ``shrink``: the ``--shrink`` smoke-test scale (:func:`shrunk`).
    """
    sets = override_strings(overrides)
    spec = parse_spec(resolve_raw(read_yaml(path), sets, name=Path(path).stem))
    return shrunk(spec, sets) if shrink else spec


def spec_from_dict(raw: dict[str, Any], overrides: list[str] | None = None) -> Spec:
    """Validate a spec given as a mapping (tests, search trials)."""
    return parse_spec(resolve_raw(raw, overrides))


def override_strings(overrides: Overrides) -> list[str]:
    """``-s`` style ``KEY=VALUE`` strings from a list of them or a ``{key: value}`` dict.

    A dict's string values are YAML text, exactly as after ``-s key=`` on the command line
    (``"1e-3"`` is a number); other values (numbers, lists, booleans...) are taken as they
    are. Keys are dotted key paths (``agent.net.optim.lr``) or ``${var}`` names.
    """
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise TypeError("overrides must be a dict or a list of 'key=value' strings, not a str")
    if not isinstance(overrides, Mapping):
        return [str(item) for item in overrides]
    return [f"{key}={_yaml_text(value)}" for key, value in overrides.items()]


def _yaml_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"))
    return text.removesuffix("\n...\n").strip()  # a bare scalar ends its document with ...
