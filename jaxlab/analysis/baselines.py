"""Random-policy return baselines for every gymnax environment, measured by jaxlab.

The numbers live in ``random_baselines.json`` next to this module, written by
``scripts/random_baselines.py`` (uniformly random actions, ``E`` episodes per env, fixed
seed; each episode's return counted up to its first ``terminated | truncated``). Each env
maps to ``{"mean", "std", "min", "max", "episodes", "mean_length", "max_steps", "capped"}``;
the ``"_meta"`` entry records how the file was made (git SHA, gymnax/jax versions, episodes,
seed, date, and envs ``skipped`` with the reason).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

BASELINES_FILE = Path(__file__).resolve().parent / "random_baselines.json"
META_KEY = "_meta"


@functools.cache
def _load() -> dict[str, dict[str, Any]]:
    return json.loads(BASELINES_FILE.read_text())


def load_baselines() -> dict[str, dict[str, Any]]:
    """The whole shipped file: env id -> record, plus the ``"_meta"`` entry.

    Read once and cached; each call returns a fresh copy, so callers may mutate it.
    """
    return copy.deepcopy(_load())


def baseline_record(env_name: str) -> dict[str, Any] | None:
    """The full random-policy record of ``env_name``, or None if the file does not have it."""
    if env_name.startswith("_"):
        return None
    record = _load().get(env_name)
    return dict(record) if record is not None else None


def random_baseline(env_name: str) -> float | None:
    """Mean random-policy episode return of ``env_name``, or None if the file does not have it."""
    record = baseline_record(env_name)
    return float(record["mean"]) if record is not None else None


__all__ = ["BASELINES_FILE", "baseline_record", "load_baselines", "random_baseline"]
