"""End to end through the CLI: every shipped spec in shrink mode, dev mode, run outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import yaml

from jaxlab.api import shrunk, use_compile_cache
from jaxlab.cli import main
from jaxlab.logging import COLUMNS
from jaxlab.logging.table import read_rows
from jaxlab.runtime.loop import DevCheckError, _dev_checks
from jaxlab.spec import load_spec, parse_spec, shrink
from tests import golden
from tests.conftest import GYMNAX_SPECS, REPO, SPECS


def test_shrink_compiles_fast_unless_compile_is_set_on_the_command_line():
    path = SPECS[0]
    assert shrunk(load_spec(path)).meta.compile == "fast"
    assert shrunk(load_spec(path), ["meta.max_session=1"]) == shrink(load_spec(path))
    sets = ["meta.compile=optimized", "meta.max_session=1"]
    kept = shrunk(load_spec(path, sets), sets)
    assert kept.meta.compile == "optimized"
    fast = kept.replace(meta=dataclasses.replace(kept.meta, compile="fast"))
    assert fast == shrink(load_spec(path, sets))  # nothing else differs
    conv = REPO / "specs" / "ppo" / "ppo_breakout_minatar.yaml"  # XLA's O0 convolutions crawl
    assert (
        load_spec(conv).agent.net.type == "Conv"
        and shrunk(load_spec(conv)).meta.compile == "optimized"
    )


def only_run(data):
    runs = list(data.iterdir())
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("path", GYMNAX_SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_trains_in_shrink_mode(path, tmp_path, capsys):
    check_shrink_run(path, tmp_path, capsys)


def check_shrink_run(path, tmp_path, capsys):
    """A shipped spec trains at the ``--shrink`` scale through the CLI, writes every output
    and reproduces its golden record (the other suites' specs: ``test_cli_suites.py``)."""
    data = tmp_path / "data"
    assert main(["train", str(path), "--shrink", "--data", str(data), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "final return" in out and "run saved to" in out
    run = only_run(data)
    assert run.name.startswith(path.stem + "_")
    spec = parse_spec(yaml.safe_load((run / "spec.yaml").read_text()))
    assert spec == shrink(load_spec(path))  # the saved spec is the resolved, shrunk one
    prov = json.loads((run / "provenance.json").read_text())
    for key in ("git_sha", "git_dirty", "versions", "device", "random_seed", "session_keys"):
        assert key in prov
    assert {"python", "jax", "flax", "optax", "gymnax"} <= set(prov["versions"])
    assert len(prov["session_keys"]) == spec.meta.max_session == 2
    for k in range(2):
        rows = read_rows(run)[k]
        header = tuple(rows[0])  # the common columns, then the algorithm's own metrics
        assert len(rows) == 3 and header[: len(COLUMNS)] == COLUMNS and len(header) > len(COLUMNS)
        learner = [c for c in header[len(COLUMNS) :] if c != "lr"]
        assert learner and all(r[c] != "" for r in rows for c in learner), learner
        assert [int(r["frame"]) for r in rows] == [
            spec.derived.frames_per_update * i for i in (1, 2, 3)
        ]
        assert all(float(r["fps"]) > 0 for r in rows)
        assert list((run / f"session_{k}" / "tb").glob("events.out.tfevents.*"))
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    summary = json.loads((run / "trial_summary.json").read_text())
    assert summary["sessions"] == 2 and summary["frames_per_session"] == spec.derived.total_frames
    assert 0 < summary["init_s"] < summary["compile_s"]  # init's run, within the start-up
    metrics = json.loads((run / "trial_metrics.json").read_text())  # the end-of-run report
    assert metrics["env"] == spec.env.name and metrics["random_baseline"] is not None
    assert {p.name for p in (run / "graphs").iterdir()} == {
        "trial.png",
        "session_0.png",
        "session_1.png",
    }
    # Bit-identical to its golden record: every metrics row and checkpoint fingerprint.
    assert golden.differences(golden.load(path.stem), golden.record(run)) == []


def test_a_rerun_loads_its_compiled_programs_from_the_cache(tmp_path, tiny_raw):
    """``train`` keeps compiled programs in ``JAXLAB_XLA_CACHE``; the same spec again
    loads them (no new entries) and reproduces the first run's metrics exactly."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["JAXLAB_XLA_CACHE"] = str(cache)

    def run(data):
        cmd = [sys.executable, "-m", "jaxlab", "train", str(path), "--data", str(data)]
        subprocess.run([*cmd, "--no-progress", "--no-report"], env=env, cwd=REPO, check=True)
        rows = read_rows(only_run(data))[0]
        return [{k: v for k, v in r.items() if k not in ("wall_time", "fps")} for r in rows]

    first = run(tmp_path / "a")
    entries = sorted(p.name for p in cache.iterdir())
    assert any(name.endswith("-cache") for name in entries), entries
    assert run(tmp_path / "b") == first
    assert sorted(p.name for p in cache.iterdir()) == entries


def test_compile_cache_leaves_a_users_jax_cache_alone_and_can_be_turned_off(tmp_path):
    assert use_compile_cache({"JAX_COMPILATION_CACHE_DIR": str(tmp_path)}) is None
    for off in ("off", "0", "NO"):
        assert use_compile_cache({"JAXLAB_XLA_CACHE": off}) is None
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    names += ("jax_compilation_cache_max_size",)
    old = {name: getattr(jax.config, name) for name in names}
    try:
        default = use_compile_cache({"XDG_CACHE_HOME": str(tmp_path)})
        assert default == tmp_path / "jaxlab" / "xla"
        assert jax.config.jax_compilation_cache_dir == str(default)
    finally:
        for name, value in old.items():
            jax.config.update(name, value)


def test_dev_mode_runs_checks(tmp_path, capsys):
    spec = REPO / "specs" / "ppo" / "ppo_cartpole.yaml"
    assert main(["dev", str(spec), "--data", str(tmp_path), "--no-progress"]) == 0
    run = only_run(tmp_path)
    assert yaml.safe_load((run / "spec.yaml").read_text())["meta"]["max_session"] == 2


def test_dev_mode_fails_on_non_finite_losses(tmp_path, capsys, tiny_raw):
    tiny_raw["agent"]["net"]["optim"] = {"name": "sgd", "lr": 1.0e30}
    path = tmp_path / "exploding.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    code = main(["dev", str(path), "--data", str(tmp_path / "d"), "--no-progress"])
    assert code == 1
    assert "is not finite" in capsys.readouterr().err


def test_dev_check_catches_parameters_that_do_not_move():
    before = {"w": np.ones((2, 3)), "b": np.zeros((2,))}
    both_moved = {"w": np.ones((2, 3)), "b": np.array([0.1, -0.1])}
    one_stuck = {"w": np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 1.0]]), "b": np.zeros((2,))}
    finite = {"loss": np.zeros(2)}
    _dev_checks(finite, before, both_moved, 0)
    with pytest.raises(DevCheckError, match=r"sessions \[0\] did not change"):
        _dev_checks(finite, before, one_stuck, 0)
    with pytest.raises(DevCheckError, match="metric 'loss' is not finite"):
        _dev_checks({"loss": np.array([0.0, np.nan])}, before, both_moved, 3)


def test_help_lists_modes():
    out = subprocess.run(
        [sys.executable, "-m", "jaxlab", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0
    assert "train" in out.stdout and "dev" in out.stdout
    sub = subprocess.run(
        [sys.executable, "-m", "jaxlab", "train", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert "--set" in sub.stdout and "--shrink" in sub.stdout


def test_console_script_installed():
    exe = REPO / ".venv" / "bin" / "jaxlab"
    path = exe if exe.exists() else "jaxlab"
    out = subprocess.run([str(path), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "jaxlab" in out.stdout
