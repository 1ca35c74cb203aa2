"""Schedules for exploration and coefficients, evaluated in-graph at a frame count.

A schedule is set in the spec as ``{name, start_val, end_val, start_step, end_step}``
(steps in frames per session), or as a plain number for a constant, and maps the session's frame count ``t`` to a value. With
``p = clip((t - start_step) / (end_step - start_step), 0, 1)``:

    no_decay        v = start_val
    linear_decay    v = start_val + (end_val - start_val) * p
    rate_decay      v = max(end_val, start_val * decay_rate ** (p * frequency))
                    (``frequency`` decays by ``decay_rate`` spread over the window)
    periodic_decay  v = end_val + (start_val - end_val) * (1 - p) * (1 + cos(2 pi frequency p)) / 2
                    (a linear envelope with ``frequency`` restarts; ends at end_val)

``start_val``/``end_val`` are array leaves (:class:`ScheduleHyper`) so a Trial can vmap
them and a search can batch them; the name and the window are static.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.config.parse import SpecError, join
from jaxlab.config.tunable import tunable

SCHEDULES = ("no_decay", "linear_decay", "rate_decay", "periodic_decay")


@struct.dataclass
class ScheduleHyper:
    """A schedule's tunable end points, float32 scalars (``[S]`` once vmapped)."""

    start_val: jax.Array
    end_val: jax.Array


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule over frames; see the module docstring for the formulas."""

    name: Literal["no_decay", "linear_decay", "rate_decay", "periodic_decay"] = "no_decay"
    start_val: float = tunable(1.0)
    end_val: float = tunable(1.0)
    start_step: int = 0
    end_step: int = 1
    decay_rate: float = 0.9
    frequency: float = 20.0

    def validate(self, path: str) -> None:
        if self.start_step < 0:
            raise SpecError(join(path, "start_step"), f"must be >= 0, got {self.start_step}")
        if self.name != "no_decay" and self.end_step <= self.start_step:
            raise SpecError(
                join(path, "end_step"),
                f"must be greater than start_step ({self.start_step}), got {self.end_step}",
            )
        if self.name == "rate_decay" and not 0.0 < self.decay_rate < 1.0:
            raise SpecError(join(path, "decay_rate"), f"must lie in (0, 1), got {self.decay_rate}")
        if self.name in ("rate_decay", "periodic_decay") and self.frequency <= 0:
            raise SpecError(join(path, "frequency"), f"must be positive, got {self.frequency}")

    @classmethod
    def from_number(cls, value: float) -> ScheduleSpec:
        """A plain number in the spec (``entropy_coef: 0.01``) is a constant schedule."""
        return cls("no_decay", value, value)

    def hyper(self) -> ScheduleHyper:
        return ScheduleHyper(jnp.float32(self.start_val), jnp.float32(self.end_val))

    def value(self, h: ScheduleHyper, step: jax.Array) -> jax.Array:
        """The scheduled value at frame ``step`` (a scalar; traced arrays welcome)."""
        if self.name == "no_decay":
            return h.start_val
        span = float(self.end_step - self.start_step)
        p = jnp.clip((jnp.asarray(step, jnp.float32) - self.start_step) / span, 0.0, 1.0)
        if self.name == "linear_decay":
            return h.start_val + (h.end_val - h.start_val) * p
        if self.name == "rate_decay":
            return jnp.maximum(h.end_val, h.start_val * self.decay_rate ** (p * self.frequency))
        wave = 0.5 * (1.0 + jnp.cos(2.0 * jnp.pi * self.frequency * p))
        return h.end_val + (h.start_val - h.end_val) * (1.0 - p) * wave


def constant(value: float) -> ScheduleSpec:
    """A schedule that is always ``value`` (the default for a coefficient)."""
    return ScheduleSpec("no_decay", value, value)


def schedule_keys(path: str) -> tuple[str, ...]:
    """The spec keys of a schedule at ``path`` that only set its hyper leaves."""
    return (f"{path}.start_val", f"{path}.end_val")


__all__ = ["SCHEDULES", "ScheduleHyper", "ScheduleSpec", "constant", "schedule_keys"]
