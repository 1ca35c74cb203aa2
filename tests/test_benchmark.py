"""``benchmark`` mode: a suite of specs x seeds into a table, with rliable's statistics.

One small suite (PPO and REINFORCE on CartPole, 2 seeds each, at the ``--shrink`` scale)
is run once per module; its table and aggregates are checked against rliable called
directly on the Trials' own saved scores. Failure, kill-and-resume and bad suites are
checked on their own small suites.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from rliable import library as rly
from rliable import metrics as rly_metrics

import jaxlab
from jaxlab import cli
from jaxlab.analysis.baselines import random_baseline
from jaxlab.analysis.stats import REPS
from jaxlab.spec.suite import load_suite
from tests.conftest import REPO

SUITE = {
    "name": "small",
    "random_seeds": [1, 2],
    "overrides": {"meta.eval_frequency": 0},
    "specs": [str(REPO / "specs/ppo/ppo_cartpole.yaml")],
    "grids": [
        {
            "algorithms": {"REINFORCE": str(REPO / "specs/reinforce/reinforce_cartpole.yaml")},
            "envs": {"CartPole-v1": {}},
        }
    ],
    "reference": {"CartPole-v1": {"score": 500, "source": "the episode cap"}},
    "published": [
        {"env": "CartPole-v1", "algorithm": "PPO", "return": 498.9, "source": "SLM Lab v5"}
    ],
}


def write_suite(folder, suite):
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


# A band each row's 3-update IQM is in (PPO) and out of (REINFORCE: above the cap).
BANDS = [
    {"algorithm": "PPO", "env": "CartPole-v1", "low": 0.0, "high": 500.0},
    {"algorithm": "REINFORCE", "env": "CartPole-v1", "low": 600.0},
]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    suite = write_suite(root, {**SUITE, "bands": BANDS})
    result = jaxlab.benchmark(suite, root / "data", shrink=True)
    return result.exp_dir, result.summary


def session_scores(exp_dir, label, key="final_return_per_session"):
    """``key`` (final returns, or last evaluations) of every session of a row's Trials,
    from their own summaries."""
    scores = []
    for seed in (1, 2):
        summary = json.loads(
            (exp_dir / f"{label}__CartPole-v1__seed{seed}" / "trial_summary.json").read_text()
        )
        scores += summary[key]
    return np.array(scores, float)


def rliable_iqm(scores):
    np.random.seed(0)
    point, interval = rly.get_interval_estimates(
        {"x": scores[:, None]}, lambda s: np.array([rly_metrics.aggregate_iqm(s)]), reps=REPS
    )
    return point["x"][0], interval["x"][:, 0]


def test_a_benchmark_runs_every_row_and_seed_and_writes_its_table(bench):
    exp_dir, summary = bench
    assert summary["status_counts"] == {"complete": 4} and not summary["unfinished"]
    rows = {r["algorithm"]: r for r in summary["rows"]}
    assert sorted(rows) == ["PPO", "REINFORCE"]
    for label, row in rows.items():
        scores = session_scores(exp_dir, label)
        assert row["sessions"] == 4 and row["trials"] == 2  # 2 seeds x 2 sessions (shrunk)
        assert row["final_return_mean"] == pytest.approx(scores.mean())
        evals = session_scores(exp_dir, label, "eval_return_per_session")
        assert evals.shape == (4,) and np.isfinite(evals).all()  # the last chunk evaluates
        assert row["final_eval_mean"] == pytest.approx(evals.mean())
        assert row["final_eval_std"] == pytest.approx(evals.std())
        point, (low, high) = rliable_iqm(scores)
        assert (row["iqm"], row["iqm_ci_low"], row["iqm_ci_high"]) == (point, low, high)
    md = (exp_dir / "benchmark.md").read_text()
    assert "| PPO | CartPole-v1 |" in md and "| REINFORCE | CartPole-v1 |" in md
    assert "| final eval (mean ± std) |" in md
    ppo = rows["PPO"]

    def shown(v):  # the table's numbers: 3 decimals under 10, else 1
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"

    assert f"| {shown(ppo['final_eval_mean'])} ± {shown(ppo['final_eval_std'])} |" in md
    assert "498.9" in md and "SLM Lab v5" in md  # the published return beside ours
    csv_rows = (exp_dir / "benchmark.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 3 and csv_rows[0].startswith("algorithm,env,trials,sessions")
    for graph in (
        "curves_CartPole-v1",
        "aggregate",
        "performance_profile",
        "probability_of_improvement",
    ):
        assert (exp_dir / "graphs" / f"{graph}.png").stat().st_size > 10_000
    for trial in ("PPO__CartPole-v1__seed1", "REINFORCE__CartPole-v1__seed2"):
        assert [p.name for p in (exp_dir / trial / "graphs").iterdir()] == ["trial.png"]


def test_report_rebuilds_a_benchmarks_table_and_graphs(bench, capsys):
    exp_dir, summary = bench
    (exp_dir / "benchmark.md").unlink()
    for png in (exp_dir / "graphs").glob("*.png"):
        png.unlink()
    assert cli.main(["report", str(exp_dir)]) == 0
    out = capsys.readouterr().out
    assert "| PPO | CartPole-v1 |" in out and "benchmark.md" in out
    assert (exp_dir / "benchmark.md").is_file() and (exp_dir / "graphs" / "aggregate.png").is_file()
    rebuilt = json.loads((exp_dir / "benchmark.json").read_text())
    assert [r["iqm"] for r in rebuilt["rows"]] == [r["iqm"] for r in summary["rows"]]


def test_a_row_whose_trials_never_evaluated_shows_no_eval(bench, tmp_path, capsys):
    """A row without evaluations (``meta.eval_frequency`` 0) has no final eval: None in
    the JSON and CSV, ``n/a`` in the table; the other row keeps its own."""
    exp_dir, summary = bench
    copy = tmp_path / exp_dir.name
    shutil.copytree(exp_dir, copy)
    for path in copy.glob("REINFORCE__*/trial_summary.json"):
        trial = json.loads(path.read_text())
        path.write_text(json.dumps({**trial, "eval_return_per_session": [None, None]}))
    assert cli.main(["report", str(copy)]) == 0
    capsys.readouterr()
    rows = {r["algorithm"]: r for r in json.loads((copy / "benchmark.json").read_text())["rows"]}
    assert rows["REINFORCE"]["final_eval_mean"] is None is rows["REINFORCE"]["final_eval_std"]
    before = next(r for r in summary["rows"] if r["algorithm"] == "PPO")
    assert rows["PPO"]["final_eval_mean"] == before["final_eval_mean"] is not None
    line = next(x for x in (copy / "benchmark.md").read_text().splitlines() if "| REINFORCE |" in x)
    assert line.split(" | ")[4] == "n/a"


def test_a_row_outside_its_recorded_band_is_named(bench):
    exp_dir, summary = bench
    assert summary["out_of_band"] == ["REINFORCE on CartPole-v1"]
    rows = {r["algorithm"]: r for r in summary["rows"]}
    assert rows["PPO"]["in_band"] is True and rows["REINFORCE"]["in_band"] is False
    assert "**OUTSIDE** band [600.0, ∞]" in (exp_dir / "benchmark.md").read_text()


def test_the_aggregates_are_rliables_on_the_same_normalised_scores(bench):
    exp_dir, summary = bench
    random = random_baseline("CartPole-v1")
    normalised = {
        label: ((session_scores(exp_dir, label) - random) / (500 - random))[:, None]
        for label in ("PPO", "REINFORCE")
    }

    def aggregates(x):
        return np.array([
            rly_metrics.aggregate_iqm(x), rly_metrics.aggregate_median(x),
            rly_metrics.aggregate_mean(x), rly_metrics.aggregate_optimality_gap(x),
        ])  # fmt: skip

    np.random.seed(0)
    point, interval = rly.get_interval_estimates(normalised, aggregates, reps=REPS)
    estimates = summary["aggregate"]["estimates"]
    for label in normalised:
        for i, metric in enumerate(("IQM", "Median", "Mean", "Optimality Gap")):
            ours = estimates[label][metric]
            assert ours["point"] == pytest.approx(point[label][i], abs=1e-12)
            assert (ours["low"], ours["high"]) == pytest.approx(
                tuple(interval[label][:, i]), abs=1e-12
            )
    np.random.seed(0)
    pair = {"PPO,REINFORCE": (normalised["PPO"], normalised["REINFORCE"])}
    point, interval = rly.get_interval_estimates(
        pair, rly_metrics.probability_of_improvement, reps=500
    )
    ours = summary["aggregate"]["improvement"]["PPO,REINFORCE"]
    assert ours["point"] == pytest.approx(float(point["PPO,REINFORCE"]))
    assert (ours["low"], ours["high"]) == pytest.approx(tuple(np.ravel(interval["PPO,REINFORCE"])))


def test_a_trial_that_raises_is_reported_and_the_rest_finish(tmp_path, monkeypatch):
    from jaxlab.runtime import run as run_module

    real = run_module.train_batch

    def fail_one(specs, run_dirs=None, **kw):
        if run_dirs[0].name == "REINFORCE__CartPole-v1__seed1":
            raise RuntimeError("injected failure")
        return real(specs, run_dirs=run_dirs, **kw)

    monkeypatch.setattr(run_module, "train_batch", fail_one)
    result = jaxlab.benchmark(write_suite(tmp_path, SUITE), tmp_path / "data", shrink=True)
    assert result.summary["failed"] == ["REINFORCE__CartPole-v1__seed1"]
    assert result.summary["status_counts"] == {"complete": 3, "error": 1}
    error = result.exp_dir / "REINFORCE__CartPole-v1__seed1" / "error.txt"
    assert "injected failure" in error.read_text()
    row = next(r for r in result.summary["rows"] if r["algorithm"] == "REINFORCE")
    assert row["sessions"] == 2 and row["status"] == "1 complete, 1 error"


def run_cli(*args, **kw):
    env = {**os.environ, "JAXLAB_XLA_CACHE": "off"}
    cmd = [sys.executable, "-m", "jaxlab", "benchmark", *map(str, args), "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=400, **kw)


def test_a_killed_benchmark_resumes_without_redoing_finished_trials(tmp_path):
    suite = write_suite(tmp_path, SUITE)
    env = {**os.environ, "JAXLAB_XLA_CACHE": "off"}
    cmd = [sys.executable, "-m", "jaxlab", "benchmark", str(suite), "--shrink", "--no-progress",
           "--data", str(tmp_path / "data")]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    first = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((tmp_path / "data").glob("benchmark_small_*/experiment.json"))
        if found and json.loads(found[0].read_text())["status"]:
            first = found[0].parent
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first is not None, "no Trial finished before the deadline"
    done = json.loads((first / "experiment.json").read_text())["status"]
    stamps = {n: (first / n / "trial_summary.json").stat().st_mtime_ns for n in done}
    result = run_cli(first)
    assert result.returncode == 0, result.stderr
    assert f"{len(done)} Trials finished" in result.stderr
    plan = json.loads((first / "experiment.json").read_text())
    assert set(plan["status"].values()) == {"complete"} and len(plan["status"]) == 4
    for name, stamp in stamps.items():  # finished before the kill: not trained again
        assert (first / name / "trial_summary.json").stat().st_mtime_ns == stamp
    assert "| PPO | CartPole-v1 |" in result.stdout


BAD_SUITES = [
    (
        {"specs": ["specs/ppo/no_such_spec.yaml"]},
        "specs[0]: no spec file 'specs/ppo/no_such_spec.yaml'",
    ),
    (
        {
            "specs": [
                {
                    "spec": "specs/ppo/ppo_cartpole.yaml",
                    "overrides": {"agent.algorithm.name": "PPOX"},
                }
            ]
        },
        "specs[0]: ",
    ),
    (
        {
            "grids": [
                {"algorithms": {"PPO": "specs/ppo/ppo_cartpole.yaml"}, "envs": {"CartPoleX-v1": {}}}
            ]
        },
        "grids[0].envs.CartPoleX-v1: specs/ppo/ppo_cartpole.yaml: env.name: unknown gymnax environment",
    ),
    ({"name": "empty"}, "an empty suite"),
    (
        {"random_seeds": [1, 1], "specs": ["specs/ppo/ppo_cartpole.yaml"]},
        "random_seeds: lists a seed twice: [1, 1]",
    ),
    (
        {
            "specs": [
                "specs/ppo/ppo_cartpole.yaml",
                {"spec": "specs/ppo/ppo_cartpole.yaml", "label": "PPO "},
            ]
        },
        "specs[1]: its Trial folder 'PPO__CartPole-v1__seed42' is another row's too",
    ),
    (
        {
            "specs": ["specs/ppo/ppo_cartpole.yaml"],
            "bands": [{"algorithm": "DQN", "env": "CartPole-v1", "low": 1}],
        },
        "bands[0]: no row ('DQN', 'CartPole-v1') in the suite",
    ),
    ({"specs": [], "grids": []}, "an empty suite"),
    (
        {"random_seed": [1], "specs": ["specs/ppo/ppo_cartpole.yaml"]},
        "random_seed: unknown key (did you mean 'random_seeds'?)",
    ),
    (
        {"specs": ["specs/ppo/ppo_cartpole.yaml", "specs/ppo/ppo_cartpole.yaml"]},
        "specs[1]: row ('PPO', 'CartPole-v1') is also specs[0]: give one a label",
    ),
]


@pytest.mark.parametrize(("suite", "message"), BAD_SUITES, ids=[m[:30] for _, m in BAD_SUITES])
def test_a_bad_suite_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, suite, message):
    monkeypatch.chdir(REPO)  # spec paths are relative to the suite's folder, then here
    path = write_suite(tmp_path, suite)
    code = cli.main(["benchmark", str(path), "--data", str(tmp_path / "data"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    if "PPOX" in json.dumps(suite):
        assert "unknown algorithm 'PPOX'" in lines[0]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "path", sorted((REPO / "benchmarks/suites").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_shipped_suite_resolves_with_robust_seeds_and_references(path):
    suite = load_suite(path)
    assert suite.trials
    envs = {t.env for t in suite.trials}
    assert set(suite.reference) <= envs  # no reference to an env the suite does not run
    if suite.reference:  # a suite with an aggregate normalises every env it runs
        assert envs <= set(suite.reference), envs - set(suite.reference)
    for trial in suite.trials:  # every Trial judged over at least 3 seeds x 4 sessions
        assert trial.spec.meta.max_session >= 4
    if not suite.bands:  # (the bands suite checks one seed against bands set over five)
        assert len({t.random_seed for t in suite.trials}) >= 3


def test_a_benchmark_on_ray_runs_its_trials_as_tune_trials(tmp_path):
    """``--address`` (here ``local``: a new loopback-only Ray) sends each Trial to a Ray
    worker, which trains the Trial's own resolved spec from the plan."""
    suite = {**SUITE, "grids": []}  # PPO only: two Trials
    result = jaxlab.benchmark(
        write_suite(tmp_path, suite), tmp_path / "data", shrink=True, address="local"
    )
    assert result.summary["status_counts"] == {"complete": 2}
    assert (result.exp_dir / "tune").is_dir()  # Tune's own records: it ran them
    plan = json.loads((result.exp_dir / "experiment.json").read_text())
    for name in ("PPO__CartPole-v1__seed1", "PPO__CartPole-v1__seed2"):
        saved = yaml.safe_load((result.exp_dir / name / "spec.yaml").read_text())
        assert saved == plan["specs"][name]  # the worker trained the plan's spec as it is
    (row,) = result.summary["rows"]
    assert row["sessions"] == 4 and row["iqm"] is not None


def test_a_trial_failing_outside_its_training_is_recorded_too(tmp_path, monkeypatch):
    """An error that escapes before training records anything still fails only its Trial."""
    from jaxlab.experiment import worker

    real = worker.run_group

    def broken(exp_dir, names, *args, **kw):
        if names == ["PPO__CartPole-v1__seed1"]:
            raise OSError("injected: disk gone")
        return real(exp_dir, names, *args, **kw)

    monkeypatch.setattr(worker, "run_group", broken)
    suite = {**SUITE, "grids": []}
    result = jaxlab.benchmark(write_suite(tmp_path, suite), tmp_path / "data", shrink=True)
    assert result.summary["status_counts"] == {"error": 1, "complete": 1}
    error = result.exp_dir / "PPO__CartPole-v1__seed1" / "error.txt"
    assert "injected: disk gone" in error.read_text()
