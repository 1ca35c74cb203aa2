"""Tunable numbers, declared once on the config field that holds them.

A config dataclass marks a number as tunable with :func:`tunable` instead of a plain
default. Tunable numbers do not fix a shape or a loop length: the algorithm reads them
into its state's ``hyper`` array leaves (never as static Python values), so a Trial can
vmap them and a search can batch settings that differ only in them into one compiled
program. :func:`tunable_paths` derives the dotted spec keys from the marks; the algorithm
registry builds each algorithm's batchable keys from it, and the conformance suite checks,
for every key, that changing its value changes the ``hyper`` leaves and leaves the
compiled program's HLO text unchanged.

A tunable field whose value is itself a config dataclass (a schedule) contributes its own
tunable fields (``agent.algorithm.entropy_coef.start_val``, ...).
"""

from __future__ import annotations

import dataclasses
from typing import Any

TUNABLE = "jaxlab_tunable"


def tunable(
    default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING
) -> Any:
    """A dataclass field holding a tunable number (or a config of them); see the module
    docstring. Use it as ``gamma: float = tunable(0.99)``."""
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={TUNABLE: True}
    )


def tunable_paths(config: Any, prefix: str) -> tuple[str, ...]:
    """The dotted keys of every tunable number in ``config`` (a dataclass instance or class
    with defaults for its tunable fields), each under ``prefix``."""
    out: list[str] = []
    for f in dataclasses.fields(config):
        if not f.metadata.get(TUNABLE):
            continue
        value = _value(config, f)
        path = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(value):
            out.extend(tunable_paths(value, path))
        else:
            out.append(path)
    return tuple(out)


def _value(config: Any, f: dataclasses.Field) -> Any:
    if not isinstance(config, type):
        return getattr(config, f.name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


__all__ = ["TUNABLE", "tunable", "tunable_paths"]
