"""Lab metrics against hand-computed values, and retro reports of real runs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from jaxlab.analysis.metrics import (
    consistency,
    experiment_table,
    session_metrics,
    stability,
    trial_metrics,
)
from jaxlab.cli import main
from jaxlab.runtime.run import train
from jaxlab.spec import spec_from_dict

NAN = float("nan")


def test_session_metrics_of_a_rising_curve():
    m = session_metrics(
        [100, 200, 300, 400], [10, 20, 40, 40], baseline=10, grad_steps_per_frame=0.5
    )
    # s = [0, 10, 30, 30]
    assert m["strength"] == 17.5 and m["max_strength"] == 30 and m["final_strength"] == 30
    assert m["sample_efficiency"] == pytest.approx((0 + 10 / 200 + 30 / 300 + 30 / 400) / 4)
    assert m["training_efficiency"] == pytest.approx((0 + 10 / 100 + 30 / 150 + 30 / 200) / 4)
    assert m["stability"] == 1.0 and m["final_return"] == 40


def test_flat_curve():
    m = session_metrics([10, 20, 30], [25, 25, 25], baseline=10)
    assert m["strength"] == m["max_strength"] == m["final_strength"] == 15
    assert m["sample_efficiency"] == pytest.approx((15 / 10 + 15 / 20 + 15 / 30) / 3)
    assert m["stability"] == 1.0 and m["training_efficiency"] is None


def test_a_curve_that_drops_loses_stability():
    # drops 40 -> 20 and 40 -> 0: 60 lost over 4 intervals of max strength 40
    assert stability(np.array([0.0, 40, 20, 40, 0])) == pytest.approx(1 - 60 / (4 * 40))
    m = session_metrics([1, 2, 3, 4, 5], [0, 40, 20, 40, 0], baseline=0)
    assert m["stability"] == pytest.approx(0.625) and m["final_strength"] == 0
    assert stability(np.array([5.0])) == 1.0 and stability(np.zeros(3)) == 1.0


def test_missing_returns_are_dropped_and_no_episodes_gives_none():
    m = session_metrics([1, 2, 3], [NAN, 5, NAN], baseline=None)
    assert m["strength"] == 5 and m["final_return"] == 5 and m["stability"] == 1.0
    assert all(v is None for v in session_metrics([1, 2], [NAN, NAN]).values())


def test_sessions_of_different_lengths():
    long, short = ([1, 2, 3], [10, 20, 30]), ([1, 2], [10, 30])
    # shared frames 1, 2: per-frame std [0, 5], per-frame mean [10, 25]
    assert consistency([long, short]) == pytest.approx(1 - 2.5 / 17.5)
    t = trial_metrics([long, short])
    assert t["strength"] == 20 and t["final_return_mean"] == 30 and t["final_return_std"] == 0
    assert [s["final_return"] for s in t["sessions"]] == [30, 30]
    assert consistency([long]) == 1.0 and consistency([long, long]) == 1.0


def test_iqm_trims_a_quarter_from_each_end_and_diverged_sessions_are_left_out():
    curves = [([1], [r]) for r in (1.0, 2.0, 3.0, 100.0)]
    t = trial_metrics(curves)
    assert t["final_return_iqm"] == 2.5 and t["final_return_mean"] == 26.5
    t = trial_metrics([*curves, ([1], [1e9])], diverged=[False] * 4 + [True])
    assert t["final_return_mean"] == 26.5 and t["diverged"][-1] is True
    assert t["score"] == t["strength"] == 26.5


def test_a_trials_iqm_ci_is_rliables_stratified_bootstrap_over_its_sessions():
    from rliable import library as rly
    from rliable import metrics as rly_metrics

    finals = [5.0, 7.0, 1.0, 9.0, 4.0, 8.0, 3.0, 6.0]
    t = trial_metrics([([1, 2], [0.0, r]) for r in finals])
    np.random.seed(0)  # rliable 1.2 draws its resamples from numpy's global RNG
    point, interval = rly.get_interval_estimates(
        {"x": np.array(finals)[:, None]},
        lambda s: np.array([rly_metrics.aggregate_iqm(s)]),
        reps=2000,
    )
    assert t["final_return_iqm"] == point["x"][0] == 5.5
    assert t["final_return_iqm_ci"] == list(interval["x"][:, 0])
    assert t["final_return_iqm_ci"][0] < 5.5 < t["final_return_iqm_ci"][1]
    assert trial_metrics([([1], [NAN])])["final_return_iqm_ci"] is None  # no episode ended


def test_experiment_table_sorts_best_first_and_unscored_last():
    rows = experiment_table(
        [({"lr": 1}, {"score": 1.0}), ({"lr": 2}, {"score": None}), ({"lr": 3}, {"score": 5.0})]
    )
    assert [r["lr"] for r in rows] == [3, 1, 2]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from tests.conftest import TINY

    spec = spec_from_dict(TINY, ["meta.eval_frequency=128"])
    return train(spec, root=tmp_path_factory.mktemp("report"), progress=False).run_dir


def test_every_run_writes_metrics_graphs_and_trial_tensorboard(finished):
    metrics = json.loads((finished / "trial_metrics.json").read_text())
    assert metrics["env"] == "CartPole-v1" and 15 < metrics["random_baseline"] < 30
    assert len(metrics["sessions"]) == 2 and metrics["frames_per_session"] == [320, 320]
    for name in ("trial.png", "session_0.png", "session_1.png"):
        assert (finished / "graphs" / name).stat().st_size > 10_000
    (tb,) = (finished / "tb_trial").glob("events.out.tfevents.*")
    assert (
        b"trial/return_mean" in tb.read_bytes() and b"trial/eval_return_mean_std" in tb.read_bytes()
    )
    events = b"".join(p.read_bytes() for p in (finished / "session_0" / "tb").glob("events*"))
    assert b"params/params/actor_torso/MLP_0/Dense_0/kernel" in events  # histograms
    assert b"actions" in events


def test_report_rebuilds_identical_metrics_from_the_csvs(finished, capsys):
    before = (finished / "trial_metrics.json").read_text()
    (finished / "trial_metrics.json").unlink()
    for png in (finished / "graphs").iterdir():
        png.unlink()
    assert main(["report", str(finished)]) == 0
    assert (finished / "trial_metrics.json").read_text() == before
    assert (finished / "graphs" / "trial.png").is_file()
    out = capsys.readouterr().out
    assert "session" in out and "stability" in out and "IQM" in out


def test_a_large_trial_draws_its_first_sessions_and_a_trial_graph_of_all(finished, tmp_path):
    """Session graphs stop at ``session_graphs`` (``SESSION_GRAPHS`` by default: a
    4096-seed Trial would spend hours on them); the metrics and the trial graph still
    cover every session."""
    import shutil

    from jaxlab.analysis.report import write_report

    run = tmp_path / "many"
    shutil.copytree(finished, run, ignore=shutil.ignore_patterns("graphs"))
    metrics = write_report(run, session_graphs=1)
    assert sorted(p.name for p in (run / "graphs").iterdir()) == ["session_0.png", "trial.png"]
    assert len(metrics["sessions"]) == 2


def test_report_of_an_interrupted_run_with_uneven_sessions(finished, tmp_path, capsys):
    import shutil

    run = tmp_path / "cut"
    shutil.copytree(finished, run)
    (run / "trial_summary.json").unlink()
    header, *lines = (run / "metrics.csv").read_text().splitlines()
    ones = [line for line in lines if line.startswith("1,")]  # session 1's rows: keep two
    kept = [line for line in lines if not line.startswith("1,") or line in ones[:2]]
    (run / "metrics.csv").write_text("\n".join([header, *kept]) + "\n")
    assert main(["report", str(run), "--no-plots"]) == 0
    metrics = json.loads((run / "trial_metrics.json").read_text())
    assert metrics["status"] == "running or killed" and metrics["frames_per_session"] == [320, 128]
    assert main(["report", str(run)]) == 0 and (run / "graphs" / "session_1.png").is_file()


def test_experiment_report_table_graph_and_best_spec(tiny_raw, tmp_path, capsys):
    exp = tmp_path / "exp"
    for lr in (1e-4, 3e-3):
        spec = spec_from_dict(tiny_raw, [f"agent.net.optim.lr={lr}"])
        train(spec, root=exp, progress=False, report=False)  # the experiment report makes them
    assert main(["report", str(exp)]) == 0
    rows = list(csv.DictReader((exp / "experiment_table.csv").open()))
    assert len(rows) == 2 and {float(r["agent.net.optim.lr"]) for r in rows} == {1e-4, 3e-3}
    assert float(rows[0]["score"]) >= float(rows[1]["score"])
    best = yaml.safe_load((exp / "best_spec.yaml").read_text())
    assert best["agent"]["net"]["optim"]["lr"] == float(rows[0]["agent.net.optim.lr"])
    assert (exp / "experiment_graph.png").stat().st_size > 10_000


def test_plot_overlays_runs_and_bad_paths_fail_in_one_line(finished, tmp_path, capsys):
    out = tmp_path / "cmp.png"
    assert main(["plot", str(finished), str(finished), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert main(["plot", str(tmp_path / "nope")]) == 2
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("nope" in line for line in err)
