"""Figures of a run: each plot writes a PNG of paper size and survives degenerate curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from jaxlab.analysis.plots import (
    common_windows,
    moving_average,
    plot_comparison,
    plot_experiment,
    plot_session,
    plot_trial,
)

SINGLE = (960, 600)  # 6.4 x 4 in at 150 dpi


def curves(n: int = 60, seed: int = 0, nan_start: int = 0, every: int = 2048) -> dict:
    """A CartPole-like session: return rising 20 -> 500 with noise, eval every 10th log."""
    rng = np.random.default_rng(seed)
    frame = np.arange(1, n + 1, dtype=float) * every
    ret = np.clip(20 + 480 * np.linspace(0, 1, n) + rng.normal(0, 20, n), 0, 500)
    ret[:nan_start] = np.nan
    ev = np.full(n, np.nan)
    ev[9::10] = ret[9::10]
    return {
        "frame": frame,
        "return": ret,
        "eval_return_mean": ev,
        "eval_return_std": np.where(np.isfinite(ev), 15.0, np.nan),
        "policy_loss": rng.normal(-0.01, 0.005, n),
        "value_loss": np.linspace(50, 5, n),
        "entropy": np.linspace(0.69, 0.3, n),
        "approx_kl": np.abs(rng.normal(0.006, 0.003, n)),
        "clip_frac": np.abs(rng.normal(0.1, 0.03, n)),
        "lr": np.linspace(2.5e-4, 0, n),
        "q_loss": np.full(n, np.nan),  # a column another algorithm fills: not drawn
    }


@pytest.fixture
def trial() -> list[dict]:
    sessions = [curves(seed=k, nan_start=5 if k == 1 else 0) for k in range(4)]
    sessions[3] = {k: v[:35] for k, v in sessions[3].items()}  # interrupted: shorter
    return sessions


def size(path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def small(n: int) -> dict:
    """Return and eval plus one metric panel: the degenerate cases stay quick to draw."""
    c = curves(n)
    return {k: c[k] for k in ("frame", "return", "eval_return_mean", "eval_return_std", "entropy")}


def all_nan(n: int = 20) -> dict:
    c = small(n)
    for key in ("return", "eval_return_mean", "eval_return_std"):
        c[key] = np.full(n, np.nan)
    return c


def flat(n: int = 30) -> dict:
    return {k: (v if k == "frame" else np.full(n, 7.0)) for k, v in small(n).items()}


EDGES = {
    "all_nan": all_nan,
    "one_point": lambda: small(1),
    "flat": flat,
    "bare": lambda: {"frame": np.arange(5.0) * 100, "return": np.arange(5.0)},
}


def test_moving_average_by_hand():
    y = np.array([1.0, np.nan, 3.0, np.nan, np.nan, np.nan, 8.0])
    expected = [1.0, 1.0, 2.0, 3.0, 3.0, math.nan, 8.0]
    np.testing.assert_allclose(moving_average(y, 3), expected)
    np.testing.assert_allclose(moving_average(y, 1), y)
    np.testing.assert_allclose(moving_average(y, 100), [1, 1, 2, 2, 2, 2, 4])
    assert moving_average(np.full(4, np.nan), 2).shape == (4,)
    assert np.isnan(moving_average(np.full(4, np.nan), 2)).all()
    assert moving_average(np.empty(0), 3).size == 0
    with pytest.raises(ValueError):
        moving_average(y, 0)


def test_session_figure_has_one_panel_row_per_two_metric_columns(trial, tmp_path):
    full = plot_session(trial[1], tmp_path / "a" / "session.png", title="t", baseline=22.0)
    assert full == tmp_path / "a" / "session.png"
    assert size(full) == (960, 1440)  # 3 rows of 2 metric panels (q_loss all NaN: none)
    bare = {"frame": trial[0]["frame"], "return": trial[0]["return"]}
    bare = plot_session(bare, tmp_path / "bare.png", title="t")
    assert size(bare) == SINGLE


def test_trial_comparison_and_experiment_figures(trial, tmp_path):
    assert size(plot_trial(trial, tmp_path / "trial.png", title="t", baseline=22.0)) == SINGLE
    runs = [("lr=1e-3", trial), ("lr=1e-4", trial[:2])]
    assert size(plot_comparison(runs, tmp_path / "cmp.png", title="t")) == SINGLE
    rows = [
        {"lr": float(lr), "gamma": g, "act": act, "score": float(-np.log10(lr) * g)}
        for lr, g, act in zip(
            np.logspace(-4, -2, 6), np.linspace(0.9, 0.999, 6), "abcabc", strict=True
        )
    ]
    rows.append({"lr": 1e-3, "gamma": 0.95, "act": "a", "score": None})  # unscored: skipped
    varied = ["lr", "gamma", "act"]
    for k in (1, 2, 3):
        path = plot_experiment(rows, varied[:k], tmp_path / f"exp{k}.png", title="t")
        assert size(path)[0] >= SINGLE[0]


def test_compared_runs_are_averaged_over_the_same_frames():
    """Logged every 1,000 and every 4,000 frames: 10 and 2-3 points, 10,000 frames each;
    a run of one log point keeps the window it was given."""
    fine = [{"frame": np.arange(1, 21) * 1000.0, "return": np.zeros(20)}]
    coarse = [{"frame": np.arange(1, 6) * 4000.0, "return": np.zeros(5)}]
    lone = [{"frame": np.array([500.0]), "return": np.zeros(1)}]
    assert common_windows([fine, coarse, lone], 10) == [10, 2, 10]
    assert common_windows([coarse], 10) == [10]
    # The coarse run's last point averages its last 8,000 frames, not the whole run.
    steps = np.array([-1000.0, -800.0, -600.0, -200.0, -180.0])
    runs = [fine, [{"frame": coarse[0]["frame"], "return": steps}]]
    window = common_windows(runs, 10)[1]
    assert moving_average(steps, window)[-1] == -190.0


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_degenerate_curves_still_draw(edge, tmp_path):
    c = EDGES[edge]()
    assert size(plot_session(c, tmp_path / "s.png", title=edge, baseline=1.0))[0] == SINGLE[0]
    assert size(plot_trial([c], tmp_path / "t.png", title=edge)) == SINGLE
    assert size(plot_trial([c, curves()], tmp_path / "t2.png", title=edge)) == SINGLE
    assert size(plot_comparison([(edge, [c])], tmp_path / "c.png", title=edge)) == SINGLE


def test_experiment_edge_cases(tmp_path):
    one = [{"lr": 1e-3, "score": 1.0}]
    assert size(plot_experiment(one, ["lr"], tmp_path / "one.png", title="t")) == SINGLE
    flat = [{"lr": lr, "score": 2.0} for lr in (1e-4, 1e-3, 1e-2)]
    assert size(plot_experiment(flat, ["lr"], tmp_path / "flat.png", title="t")) == SINGLE
    assert size(plot_experiment([], ["lr"], tmp_path / "none.png", title="t")) == SINGLE
    assert size(plot_experiment(one, [], tmp_path / "nothing.png", title="t")) == SINGLE
    odd = [{"hid": [16, 16], "on": True, "score": 1.0}, {"hid": [64], "on": False, "score": 0.5}]
    assert size(plot_experiment(odd, ["hid", "on"], tmp_path / "odd.png", title="t")) == SINGLE


def test_no_pyplot_figures_leak(trial, tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    plot_trial(trial, tmp_path / "t.png", title="t")
    assert len(plt.get_fignums()) == before


def test_sessions_are_one_faint_collection_and_a_lone_point_gets_a_marker():
    """Thousands of sessions are one artist (8192 separate lines took 15 s to draw)."""
    from matplotlib.figure import Figure

    from jaxlab.analysis.plots import _faint_sessions

    x = np.arange(4.0)
    smooth = [(x, x), (x, -x), (x, np.array([np.nan, 2.0, np.nan, np.nan])), (x, x * np.nan)]
    ax = Figure().add_subplot()
    _faint_sessions(ax, smooth, "sessions")
    (collection,) = ax.collections
    assert collection.get_label() == "sessions" and len(collection.get_paths()) == 2
    (lone,) = ax.lines
    assert lone.get_marker() == "o" and list(lone.get_xdata()) == [1.0]
    assert lone.get_label().startswith("_")  # the collection carries the legend entry
    only_lone = Figure().add_subplot()
    _faint_sessions(only_lone, smooth[2:], "sessions")
    assert not only_lone.collections and only_lone.lines[0].get_label() == "sessions"
