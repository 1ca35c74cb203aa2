"""The shipped random-policy baselines: complete, sane, and reproducible by the script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnax
import pytest

from jaxlab.analysis.baselines import (
    BASELINES_FILE,
    baseline_record,
    load_baselines,
    random_baseline,
)
from jaxlab.spec import load_spec
from tests.conftest import SPECS

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "random_baselines.py"
FIELDS = {"mean", "std", "min", "max", "episodes", "mean_length", "max_steps", "capped"}


def _script():
    spec = importlib.util.spec_from_file_location("random_baselines_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_file_covers_every_registered_env():
    data = load_baselines()
    meta = data.pop("_meta")
    assert {"git_sha", "gymnax", "jax", "episodes", "seed", "date", "skipped"} <= set(meta)
    skipped = set(meta["skipped"])
    # gymnax's own environments (tests register probe envs into the same registry).
    envs = {e for e in gymnax.registered_envs if not e.startswith("Probe-") and "probe" not in e}
    assert skipped <= envs
    assert {k for k in data if "/" not in k} == envs - skipped
    # Every shipped spec's suite env (``<suite>/<id>``), measured with the spec's params.
    suite_envs = {s.env.name for s in map(load_spec, SPECS) if "/" in s.env.name}
    assert {k for k in data if "/" in k} == suite_envs
    for name, record in data.items():
        assert set(record) == (FIELDS | {"params"} if "/" in name else FIELDS), name
        assert record["min"] <= record["mean"] <= record["max"], name
        assert record["std"] >= 0 and record["episodes"] > 0, name
        assert 0 < record["mean_length"] <= record["max_steps"], name


@pytest.mark.parametrize(
    ("env", "low", "high"),
    [("CartPole-v1", 15, 30), ("Pendulum-v1", -1500, -900), ("Acrobot-v1", -500, -450)],
)
def test_known_sanity_values(env, low, high):
    assert low <= random_baseline(env) <= high


def test_unknown_env_is_none():
    assert random_baseline("Nope-v0") is None
    assert baseline_record("Nope-v0") is None
    assert random_baseline("_meta") is None
    record = baseline_record("CartPole-v1")
    assert record is not None and record["mean"] == random_baseline("CartPole-v1")
    record["mean"] = 1e9  # callers get copies; the cache is untouched
    assert random_baseline("CartPole-v1") != 1e9
    assert BASELINES_FILE.is_file()


def test_script_reproduces_stored_cartpole():
    meta = load_baselines()["_meta"]
    stored = baseline_record("CartPole-v1")
    fresh = _script().measure_env("CartPole-v1", episodes=stored["episodes"], seed=meta["seed"])
    assert fresh["episodes"] == stored["episodes"]
    assert fresh["mean"] == pytest.approx(stored["mean"], abs=1e-6)
    assert fresh["mean_length"] == pytest.approx(stored["mean_length"], abs=1e-6)
    assert fresh["max_steps"] == stored["max_steps"] and fresh["capped"] == stored["capped"]
