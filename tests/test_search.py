"""The search space, trial batching, and ``search`` end to end under embedded Ray."""

from __future__ import annotations

import copy
import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from jaxlab.cli import main
from jaxlab.experiment.driver import plan_groups, require_optuna
from jaxlab.experiment.plan import PLAN, ExperimentPlan
from jaxlab.lab.batching import NotBatchable
from jaxlab.logging.table import read_rows
from jaxlab.runtime.lock import LOCK_NAME
from jaxlab.runtime.run import train, train_batch
from jaxlab.spec import SpecError, spec_from_dict
from jaxlab.spec.search import parse_search, sample_settings
from tests.conftest import REPO

EVERY = {
    "agent.net.optim.lr__loguniform": [1.0e-4, 1.0e-2],
    "agent": {
        "algorithm": {
            "gamma__choice": [0.9, 0.99],
            "lam__uniform": [0.8, 0.99],
            "clip_eps__quniform": [0.1, 0.3, 0.05],
            "training_epoch__randint": [1, 4],
            "time_horizon__qrandint": [8, 32, 8],
            "entropy_coef__normal": [0.01, 0.001],
        },
        "net.clip_grad_val__qloguniform": [0.1, 10.0, 0.1],
    },
    "agent.algorithm.val_loss_coef__grid_search": [0.5, 1.0],
}


def test_every_distribution_parses_from_nested_and_dotted_keys(tiny_raw):
    tiny_raw["search"] = EVERY
    spec = spec_from_dict(tiny_raw)
    dims = {d.key: d for d in parse_search(spec.search)}
    assert {k: (d.dist, d.args) for k, d in dims.items()} == {
        "agent.net.optim.lr": ("loguniform", (1e-4, 1e-2)),
        "agent.algorithm.gamma": ("choice", (0.9, 0.99)),
        "agent.algorithm.lam": ("uniform", (0.8, 0.99)),
        "agent.algorithm.clip_eps": ("quniform", (0.1, 0.3, 0.05)),
        "agent.algorithm.training_epoch": ("randint", (1, 4)),
        "agent.algorithm.time_horizon": ("qrandint", (8, 32, 8)),
        "agent.algorithm.entropy_coef": ("normal", (0.01, 0.001)),
        "agent.net.clip_grad_val": ("qloguniform", (0.1, 10.0, 0.1)),
        "agent.algorithm.val_loss_coef": ("grid_search", (0.5, 1.0)),
    }
    settings = sample_settings(list(dims.values()), 200, seed=0)
    assert len(settings) == 400  # 2 grid points x 200 draws
    assert settings == sample_settings(list(dims.values()), 200, seed=0)  # reproducible
    col = {k: np.array([s[k] for s in settings]) for k in dims}
    assert set(col["agent.algorithm.val_loss_coef"]) == {0.5, 1.0}
    assert set(col["agent.algorithm.gamma"]) == {0.9, 0.99}
    lr = col["agent.net.optim.lr"]
    assert lr.min() >= 1e-4 and lr.max() <= 1e-2 and np.mean(lr < 1e-3) > 0.3  # log scale
    assert set(col["agent.algorithm.training_epoch"]) == {1, 2, 3}  # hi excluded
    assert set(col["agent.algorithm.time_horizon"]) <= {8, 16, 24, 32}
    assert 32 in col["agent.algorithm.time_horizon"]  # qrandint includes hi
    assert np.allclose(
        np.round(col["agent.algorithm.clip_eps"] / 0.05) * 0.05, col["agent.algorithm.clip_eps"]
    )
    assert 0.008 < col["agent.algorithm.entropy_coef"].mean() < 0.012


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"agent.net.optim.lr__logunifrom": [1e-4, 1e-3]}, "unknown distribution 'logunifrom' (did you mean 'loguniform'?)"),
        ({"agent.net.optim.lr__uniform": [1e-3]}, "uniform takes [lo, hi] (numbers), got [0.001]"),
        ({"agent.net.optim.lr__uniform": [1e-3, 1e-4]}, "needs lo < hi, got [0.001, 0.0001]"),
        ({"agent.net.optim.lr__loguniform": [0, 1e-3]}, "needs 0 < lo for a log scale"),
        ({"agent.algorithm.training_epoch__randint": [1, 2.5]}, "randint takes integers"),
        ({"agent.algorithm.time_horizon__qrandint": [8, 32, 0]}, "q must be > 0"),
        ({"agent.algorithm.gamma__normal": [0.9, -1]}, "sd must be > 0"),
        ({"agent.algorithm.gamma__choice": []}, "must be a non-empty list"),
        ({"agent.algorithm.gamma": 0.9}, "must look like 'a.b.param__dist'"),
        ({"agent.algorithm.gama__choice": [0.9]}, "'agent.algorithm.gama' is not a key of the spec (did you mean 'agent.algorithm.gamma'?)"),
        ({"agent.algorithm.gamma__uniform": [0.5, 1.5]}, "value 1.5 gives a bad spec: agent.algorithm.gamma: must lie in [0.0, 1.0]"),
        ({"agent.algorithm.minibatch_count__grid_search": [2, 3]}, "value 3 gives a bad spec"),
        ({"agent.algorithm.gamma__choice": [0.9], "agent": {"algorithm": {"gamma__uniform": [0.9, 0.99]}}}, "searches 'agent.algorithm.gamma' again"),
    ],
)  # fmt: skip
def test_bad_search_entries_are_one_line_errors(tiny_raw, search, expected):
    tiny_raw["search"] = search
    with pytest.raises(SpecError) as err:
        spec_from_dict(tiny_raw)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("search.")


def test_grid_keys_expand_and_max_trial_draws_per_grid_point(tiny_raw):
    tiny_raw["search"] = {
        "agent.algorithm.gamma__grid_search": [0.9, 0.95, 0.99],
        "agent.algorithm.lam__grid_search": [0.9, 0.95],
    }
    tiny_raw["meta"]["max_trial"] = 5
    dims = parse_search(spec_from_dict(tiny_raw).search)
    assert len(sample_settings(dims, 5, 0)) == 6  # grid only: max_trial does not repeat it
    dims = parse_search({**tiny_raw["search"], "agent.net.optim.lr__uniform": [1e-4, 1e-3]})
    assert len(sample_settings(dims, 5, 0)) == 30


def test_batching_plan_needs_hyper_keys_and_no_scheduler(tiny_raw):
    tiny_raw["search"] = {"agent.net.optim.lr__uniform": [1e-4, 1e-3]}
    spec = spec_from_dict(tiny_raw)
    dims = parse_search(spec.search)
    assert plan_groups(spec, dims, 10, slots=3) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    batch3 = spec_from_dict(tiny_raw, ["meta.search_batch=3"])
    assert plan_groups(batch3, dims, 5, slots=1) == [[0, 1, 2], [3, 4]]
    one = spec_from_dict(tiny_raw, ["meta.search_batch=1"])
    assert plan_groups(one, dims, 3, slots=1) == [[0], [1], [2]]
    asha = spec_from_dict(tiny_raw, ["meta.search_scheduler={name: asha}"])
    assert plan_groups(asha, dims, 3, slots=1) == [[0], [1], [2]]
    tiny_raw["search"] = {"env.num_envs__choice": [2, 4]}  # changes shapes: never batched
    spec = spec_from_dict(tiny_raw)
    assert plan_groups(spec, parse_search(spec.search), 3, slots=1) == [[0], [1], [2]]


def test_the_plan_keeps_experiment_json_keys_and_pickles(tmp_path):
    raw = {
        "spec_name": "tiny", "search_alg": "random", "resources": {"cpu": 1.0, "gpu": 0.0},
        "planned": 3, "settings": {"trial_000": {"a.b": 1}, "trial_001": {"a.b": 2}},
        "groups": [["trial_000", "trial_001"]], "status": {}, "spec": {"name": "tiny"},
        "git_sha": None, "git_dirty": None, "versions": {"jax": "0"}, "started": "now",
    }  # fmt: skip
    (tmp_path / PLAN).write_text(json.dumps(raw, indent=2))
    plan = ExperimentPlan.load(tmp_path)
    # a search plan has no per-Trial specs (a benchmark's has); plans saved before the
    # field existed load with it empty
    assert plan.specs == {}
    assert plan.to_dict() == {**raw, "specs": {}} and list(plan.to_dict()) == [*raw, "specs"]
    assert pickle.loads(pickle.dumps(plan)) == plan  # Ray hands it to the workers
    assert plan.pending() == plan.pending_planned() == ["trial_000", "trial_001"]
    plan.record_status("trial_000", "complete")
    plan.add_setting("trial_002", {"a.b": 3})
    plan.add_setting("trial_001", {"a.b": 9})  # a planned setting keeps its values
    assert plan.pending() == ["trial_001", "trial_002"] and plan.pending_planned() == ["trial_001"]
    plan.add_group(["trial_002"])
    plan.save(tmp_path)
    saved = json.loads((tmp_path / PLAN).read_text())
    assert saved["status"] == {"trial_000": "complete"}
    assert saved["settings"]["trial_001"] == {"a.b": 2} and saved["groups"][1] == ["trial_002"]
    assert ExperimentPlan.load(tmp_path) == plan


def test_a_trial_that_stopped_because_the_search_stopped_is_left_to_resume(tiny_raw, tmp_path):
    """Tune ends the running trials gracefully when a search stops, so their summaries say
    "stopped", as an ASHA stop does. Without a scheduler, or after a SIGTERM, that is an
    interruption: the trial stays unfinished (the resumed search continues it)."""
    from jaxlab.experiment.driver import Experiment

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_raw))
    plan = ExperimentPlan(
        spec_name="tiny", search_alg="random", resources={"cpu": 1.0, "gpu": 0.0}, planned=1,
        settings={"trial_000": {}}, groups=[["trial_000"]], status={}, spec=tiny_raw,
        git_sha=None, git_dirty=None, versions={}, started="now",
    )  # fmt: skip
    (tmp_path / "trial_000").mkdir()
    summary = {
        "status": "stopped",
        "sessions": 2,
        "diverged_sessions": [],
        "final_return_mean": None,
    }
    (tmp_path / "trial_000" / "trial_summary.json").write_text(json.dumps(summary))
    exp = Experiment(tmp_path, plan)
    exp.mark("trial_000")
    assert plan.status == {}  # no scheduler: interrupted
    asha = Experiment(tmp_path, plan)
    asha.spec = spec_from_dict(tiny_raw, ["meta.search_scheduler={name: asha}"])
    asha.mark("trial_000")
    assert plan.status == {"trial_000": "stopped"}  # ASHA's own stop is final
    plan.status.clear()
    asha.stops.append("SIGTERM")
    asha.mark("trial_000")
    assert plan.status == {}


def test_optuna_missing_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)
    with pytest.raises(SpecError, match="optuna is not installed: pip install"):
        require_optuna()


def csv_rows(run, k):
    return read_rows(run)[k]


def files(run):
    """The run's files, except TensorBoard event files and Orbax's internals (their names
    hold times, hosts or random ids); checkpoint steps are compared by frame."""
    out = []
    for p in run.rglob("*"):
        rel = p.relative_to(run).parts
        if rel[0].startswith("tb") or (len(rel) > 1 and rel[-2] == "tb"):
            continue
        if rel[0] in ("checkpoints", "best"):
            out.append("/".join(rel[:2]))
        elif p.is_file():
            out.append("/".join(rel))
    return sorted(set(out))


def test_batched_trials_write_what_unbatched_trials_write(tiny_raw, tmp_path):
    raws = [
        ["agent.net.optim.lr=0.003", "agent.algorithm.gamma=0.9"],
        ["agent.net.optim.lr=0.0003"],
    ]
    specs = [spec_from_dict(tiny_raw, o) for o in raws]
    dirs = [tmp_path / "batched" / f"trial_{k}" for k in range(2)]
    batched = train_batch(specs, run_dirs=dirs, progress=False, report=False)
    for k, spec in enumerate(specs):
        alone = train(spec, run_dir=tmp_path / f"alone_{k}", progress=False, report=False)
        got = batched[k]
        assert files(got.run_dir) == files(alone.run_dir)
        assert (
            got.run_dir.joinpath("spec.yaml").read_text()
            == alone.run_dir.joinpath("spec.yaml").read_text()
        )
        assert np.allclose(got.state.hyper.gamma, [0.9, 0.9] if k == 0 else [0.99, 0.99])
        for x, y in zip(jax.tree.leaves(got.state), jax.tree.leaves(alone.state), strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
        for s in range(spec.meta.max_session):
            a, b = csv_rows(got.run_dir, s), csv_rows(alone.run_dir, s)
            assert [r["frame"] for r in a] == [r["frame"] for r in b]
            for col in ("return", "episodes", "policy_loss", "value_loss", "entropy", "lr"):
                x = np.array([float(r[col]) for r in a])
                y = np.array([float(r[col]) for r in b])
                np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6, err_msg=col)
        keep = ("final_return_per_session", "status", "frames_per_session", "diverged_sessions")
        assert {k: got.summary[k] for k in keep} == {k: alone.summary[k] for k in keep}
        assert got.summary["batch"] == {"settings": 2, "index": k}
    # the two settings really trained differently inside the one program
    p0, p1 = jax.tree.leaves(batched[0].state.params), jax.tree.leaves(batched[1].state.params)
    assert not all(np.allclose(x, y) for x, y in zip(p0, p1, strict=True))
    with pytest.raises(NotBatchable, match="env.num_envs"):
        train_batch([specs[0], spec_from_dict(tiny_raw, ["env.num_envs=2"])], root=tmp_path)


SEARCH = {
    # lr 1e38 is finite (a spec refuses .nan) but overflows the parameters at once
    "agent.net.optim.lr__grid_search": [1.0e-3, 1.0e38],
    "agent.algorithm.gamma__choice": [0.9, 0.99],
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A 4-trial search (2 batched Ray trials of 2 settings): the huge-lr ones diverge."""
    root = tmp_path_factory.mktemp("search")
    from tests.conftest import TINY

    raw = copy.deepcopy(TINY)
    raw["search"] = SEARCH
    raw["meta"].update(max_trial=2, search_batch=2, checkpoint_frequency=128, eval_frequency=0)
    spec_path = root / "tiny_search.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    code = main(["search", str(spec_path), "--data", str(root)])
    (exp,) = [p for p in root.iterdir() if p.is_dir()]
    return code, exp


@pytest.mark.slow
def test_search_end_to_end_under_embedded_ray(experiment, capsys):
    code, exp = experiment
    assert code == 0
    plan = json.loads((exp / "experiment.json").read_text())
    assert plan["groups"] == [["trial_000", "trial_001"], ["trial_002", "trial_003"]]
    assert plan["status"] == {
        "trial_000": "complete", "trial_001": "complete",
        "trial_002": "diverged", "trial_003": "diverged",
    }  # fmt: skip
    for name, setting in plan["settings"].items():
        trial_spec = yaml.safe_load((exp / name / "spec.yaml").read_text())
        assert not trial_spec.get("search")  # ready to train: no search block
        assert trial_spec["agent"]["algorithm"]["gamma"] == setting["agent.algorithm.gamma"]
        summary = json.loads((exp / name / "trial_summary.json").read_text())
        assert summary["batch"]["settings"] == 2 and summary["frames_per_session"] == 320
        assert (exp / name / "checkpoints").is_dir()
        # a search trial draws its trial graph; its session graphs are `report` away
        assert [p.name for p in (exp / name / "graphs").iterdir()] == ["trial.png"]
    with open(exp / "experiment_table.csv") as f:
        table = list(csv.DictReader(f))
    assert {r["trial"] for r in table[:2]} == {"trial_000", "trial_001"}  # diverged last
    scores = [float(r["score"]) for r in table if r["score"]]
    assert scores == sorted(scores, reverse=True)
    assert {"agent.net.optim.lr", "agent.algorithm.gamma"} <= set(table[0])
    best = spec_from_dict(yaml.safe_load((exp / "best_spec.yaml").read_text()))
    assert not best.search and best.agent.net.optim.lr == 1e-3
    assert (exp / "experiment_graph.png").stat().st_size > 1000
    summary = json.loads((exp / "experiment_summary.json").read_text())
    assert summary["status_counts"] == {"complete": 2, "diverged": 2}
    assert summary["best_trial"] == table[0]["trial"]


@pytest.mark.slow
def test_interrupted_search_resumes_keeping_finished_trials_and_a_failing_trial_is_reported(
    experiment, tmp_path, capsys
):
    _, done = experiment
    exp = tmp_path / done.name
    shutil.copytree(done, exp)
    plan = json.loads((exp / "experiment.json").read_text())
    # As if the driver died mid-run: trial_001 unfinished (checkpoints kept, no summary),
    # trial_002 never started, trial_003 started but its folder now fails to load.
    for name in ("trial_001", "trial_002", "trial_003"):
        del plan["status"][name]
    (exp / "experiment.json").write_text(json.dumps(plan))
    (exp / "trial_001" / "trial_summary.json").unlink()
    shutil.rmtree(exp / "trial_001" / "checkpoints" / "320")  # it had reached frame 256
    shutil.rmtree(exp / "trial_002")
    (exp / "trial_003" / "trial_summary.json").unlink()
    (exp / "trial_003" / "spec.yaml").write_text("agent: [unclosed")
    kept = {p: p.read_bytes() for p in (exp / "trial_000").rglob("*") if p.is_file()}
    kept = {p: b for p, b in kept.items() if "tb" not in str(p) and "graphs" not in str(p)}
    kept = {p: b for p, b in kept.items() if p.name != LOCK_NAME}  # its holder's PID changes

    assert main(["search", str(exp)]) == 0
    err = capsys.readouterr().err
    assert "resuming search" in err and "1 trials finished, 3 to run" in err
    assert "trial_003 error: " in err and "invalid YAML" in err
    assert all(p.read_bytes() == b for p, b in kept.items())  # finished: kept as they were
    plan = json.loads((exp / "experiment.json").read_text())
    assert plan["status"] == {
        "trial_000": "complete", "trial_001": "complete",
        "trial_002": "diverged", "trial_003": "error",
    }  # fmt: skip
    frames = [int(r["frame"]) for r in csv_rows(exp / "trial_001", 0)]
    assert frames == [64, 128, 192, 256, 320]  # resumed from 256: no row lost or repeated
    for a, b in zip(csv_rows(exp / "trial_001", 1), csv_rows(done / "trial_001", 1), strict=True):
        for col in ("return", "policy_loss"):  # the resumed part ran unbatched: float rounding
            assert float(a[col]) == pytest.approx(float(b[col]), rel=1e-4, abs=1e-6)
    assert (exp / "trial_002" / "trial_summary.json").is_file()
    assert (exp / "trial_003" / "error.txt").read_text().startswith("SpecError")
    with open(exp / "experiment_table.csv") as f:
        assert "trial_003" not in {r["trial"] for r in csv.DictReader(f)}


def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it (Ray's daemons and workers)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        kids = {p for p, pp in parents.items() if pp == parent} - found
        found |= kids
        todo.extend(kids)
    return found


def listening_hosts(pids: set[int]) -> list[str]:
    """The local address (hex, as /proc/net/tcp{,6} writes it) of every listening TCP
    socket the processes hold."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    hosts = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                hosts.append(cols[1].split(":")[0])
    return hosts


LOOPBACK = ("0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


@pytest.mark.slow
def test_a_search_listens_on_loopback_only_and_sigterm_stops_it_like_ctrl_c(tiny_raw, tmp_path):
    """The embedded Ray must not expose a cluster to the network (an exposed Ray is a
    remote-code-execution risk); SIGTERM (a scheduler, ``kill``) ends the search with its
    resume command, as SIGINT does, never with Ray's native stack dump."""
    tiny_raw["search"] = {"agent.net.optim.lr__choice": [1e-3]}
    tiny_raw["env"]["max_frame"] = 32 * 100_000  # runs until stopped
    tiny_raw["meta"].update(log_frequency=32 * 25, checkpoint_frequency=32 * 200, eval_frequency=0)
    spec = tmp_path / "long_search.yaml"
    spec.write_text(yaml.safe_dump(tiny_raw))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "jaxlab", "search", str(spec), "--data", str(tmp_path / "d")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob("d/*/trial_000/metrics.csv")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.5)
        time.sleep(2)  # past the first rows: the trial is training
        hosts = listening_hosts(descendants(proc.pid))
        assert hosts and all(h in LOOPBACK for h in hosts), hosts
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "resume with: python -m jaxlab search" in out, (out, err)
    (exp,) = (tmp_path / "d").iterdir()
    assert json.loads((exp / "experiment.json").read_text())["status"] == {}  # to resume
