"""The ``search`` block: a hyperparameter space over spec keys, parsed and checked once.

Each entry is ``<key path>__<distribution>: [args]``; the key path may be dotted or the
entry nested under mappings (the two forms mix)::

    search:
      agent.net.optim.lr__loguniform: [1.0e-4, 1.0e-3]
      agent:
        algorithm:
          gamma__choice: [0.95, 0.99]

Distributions and their arguments (Ray Tune's, which samples them):

=============  ====================  =============================================
grid_search    [v1, v2, ...]         every value (a cross product over grid keys)
choice         [v1, v2, ...]         one value, uniformly
uniform        [lo, hi]              float in [lo, hi)
quniform       [lo, hi, q]           uniform, rounded to a multiple of q
loguniform     [lo, hi]              log-uniform float, 0 < lo < hi
qloguniform    [lo, hi, q]           log-uniform, rounded to a multiple of q
randint        [lo, hi]              integer in [lo, hi)  (hi excluded)
qrandint       [lo, hi, q]           integer multiple of q in [lo, hi]  (hi included)
normal         [mean, sd]            Gaussian, sd > 0  (``randn`` is an alias)
=============  ====================  =============================================

A random/grid search runs, for each point of the grid keys' cross product,
``meta.max_trial`` settings of the sampled keys (with no sampled key, the grid alone).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxlab.config.parse import SpecError, apply_overrides, did_you_mean, flatten, join

DISTRIBUTIONS = (
    "grid_search",
    "choice",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "randint",
    "qrandint",
    "normal",
    "randn",
)
_ARITY = {
    "uniform": 2, "quniform": 3, "loguniform": 2, "qloguniform": 3,
    "randint": 2, "qrandint": 3, "normal": 2, "randn": 2,
}  # fmt: skip


@dataclass(frozen=True)
class Dimension:
    """One searched spec key: ``key`` (dotted path), ``dist`` and its ``args``."""

    name: str  # as written in the spec (for error messages), e.g. 'search.agent.gamma__choice'
    key: str
    dist: str
    args: tuple

    @property
    def is_grid(self) -> bool:
        return self.dist == "grid_search"

    def to_tune(self) -> Any:
        """The Ray Tune domain (``tune.loguniform(lo, hi)``, ``tune.grid_search([...])``...)."""
        from ray import tune

        if self.dist == "grid_search":
            return tune.grid_search(list(self.args))
        if self.dist == "choice":
            return tune.choice(list(self.args))
        fn = tune.randn if self.dist in ("normal", "randn") else getattr(tune, self.dist)
        return fn(*self.args)

    def sample(self, rng: np.random.Generator) -> Any:
        """One draw (Tune's sampler on ``rng``); grid keys are not sampled."""
        value = self.to_tune().sample(random_state=rng)
        return value.item() if isinstance(value, np.generic) else value

    def probe_values(self) -> list[Any]:
        """Values that bound the space, for checking it before any trial runs."""
        a = self.args
        if self.dist in ("grid_search", "choice"):
            return list(a)
        if self.dist == "randint":
            return [a[0], a[1] - 1]
        if self.dist in ("normal", "randn"):
            return [a[0]]
        return [a[0], a[1]]


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _check_args(name: str, dist: str, args: Any) -> tuple:
    if not isinstance(args, list) or not args:
        raise SpecError(name, f"must be a non-empty list, got {args!r}")
    if dist in ("grid_search", "choice"):
        return tuple(tuple(a) if isinstance(a, list) else a for a in args)
    n = _ARITY[dist]
    usage = (
        {2: "[lo, hi]", 3: "[lo, hi, q]"}[n] if dist not in ("normal", "randn") else "[mean, sd]"
    )
    if len(args) != n or not all(_number(a) for a in args):
        raise SpecError(name, f"{dist} takes {usage} (numbers), got {args!r}")
    if dist in ("normal", "randn"):
        if args[1] <= 0:
            raise SpecError(name, f"sd must be > 0, got {args[1]!r}")
        return tuple(float(a) for a in args)
    lo, hi = args[0], args[1]
    if not lo < hi:
        raise SpecError(name, f"needs lo < hi, got {args!r}")
    if n == 3 and args[2] <= 0:
        raise SpecError(name, f"q must be > 0, got {args[2]!r}")
    if "log" in dist and lo <= 0:
        raise SpecError(name, f"needs 0 < lo for a log scale, got {args!r}")
    if dist in ("randint", "qrandint"):
        if not all(float(a).is_integer() for a in args):
            raise SpecError(name, f"{dist} takes integers, got {args!r}")
        return tuple(int(a) for a in args)
    return tuple(float(a) for a in args)


def parse_search(search: Any, path: str = "search") -> list[Dimension]:
    """The dimensions of a ``search`` block (nested and dotted keys), arguments checked.

    Raises SpecError naming the entry for an unknown distribution, a malformed key or
    bad arguments; key paths are checked against the spec by :func:`check_search`.
    """
    if search is None:
        return []
    if not isinstance(search, Mapping):
        raise SpecError(path, f"must be a mapping, got {search!r}")
    dims: list[Dimension] = []
    for raw_key, value in search.items():
        key = str(raw_key)
        name = join(path, key)
        keypath, sep, dist = key.rpartition("__")
        if not sep:
            if isinstance(value, Mapping):  # a nested level: recurse with the longer path
                dims += parse_search(value, name)
                continue
            raise SpecError(
                name, "must look like 'a.b.param__dist', e.g. 'agent.net.optim.lr__loguniform'"
            )
        if dist not in DISTRIBUTIONS:
            raise SpecError(
                name, f"unknown distribution '{dist}'" + did_you_mean(dist, DISTRIBUTIONS)
            )
        if not keypath:
            raise SpecError(name, "names no spec key before '__'")
        prefix = path.removeprefix("search").lstrip(".")
        dims.append(Dimension(name, join(prefix, keypath), dist, _check_args(name, dist, value)))
    seen: dict[str, str] = {}
    for d in dims:
        if d.key in seen:
            raise SpecError(d.name, f"searches '{d.key}' again (also {seen[d.key]})")
        seen[d.key] = d.name
    return dims


def apply_setting(resolved: dict[str, Any], setting: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's raw spec: ``resolved`` (a ``Spec.to_dict()``) with each dotted key of
    ``setting`` set and the ``search`` block dropped."""
    raw = {k: v for k, v in resolved.items() if k != "search"}
    return apply_overrides(
        raw, {k: list(v) if isinstance(v, tuple) else v for k, v in setting.items()}
    )


def check_search(
    dims: list[Dimension], resolved: dict[str, Any], parse_spec: Callable[[Any], Any]
) -> None:
    """Check every key names a spec key and the space's bounding values make valid specs
    (``parse_spec`` validates a raw spec; the schema passes its own).

    ``env.params`` is free-form (its own check runs when a value is tried), so keys under
    it are accepted when the value validates.
    """
    keys = flatten({k: v for k, v in resolved.items() if k != "search"})
    for d in dims:
        if d.key not in keys and not d.key.startswith("env.params."):
            close = did_you_mean(d.key, keys)
            raise SpecError(d.name, f"'{d.key}' is not a key of the spec{close}")
        for value in d.probe_values():
            try:
                parse_spec(apply_setting(resolved, {d.key: value}))
            except SpecError as err:
                raise SpecError(d.name, f"value {value!r} gives a bad spec: {err}") from None


def sample_settings(dims: list[Dimension], max_trial: int, seed: int) -> list[dict[str, Any]]:
    """Random/grid settings (dotted key -> value), reproducible from ``seed``.

    For each point of the grid keys' cross product, ``max_trial`` draws of the other keys
    (one draw when every key is a grid key).
    """
    rng = np.random.default_rng(seed)
    grid = [d for d in dims if d.is_grid]
    sampled = [d for d in dims if not d.is_grid]
    repeats = max_trial if sampled else 1
    settings = []
    for point in itertools.product(*(d.args for d in grid)):
        for _ in range(repeats):
            setting = {d.key: v for d, v in zip(grid, point, strict=True)}
            setting.update({d.key: d.sample(rng) for d in sampled})
            settings.append(setting)
    return settings
