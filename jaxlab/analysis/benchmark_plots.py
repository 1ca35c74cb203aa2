"""Benchmark graphs: per-env learning curves with bootstrap bands, and rliable's aggregate
views (interval estimates, performance profiles, probability of improvement).

Every statistic drawn here comes from :mod:`jaxlab.analysis.stats` (rliable); these
functions only draw what they are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from jaxlab.analysis.plots import (
    HEIGHT,
    WIDTH,
    Curves,
    _aligned,
    _figure,
    _line,
    _return_axes,
    _save,
    _smoothed,
)
from jaxlab.analysis.stats import AGGREGATES, curve_band


def palette(n: int) -> list[Any]:
    """``n`` distinct colours: matplotlib's 10-colour cycle, or tab20 beyond 10."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    from matplotlib import colormaps

    return [colormaps["tab20"](i % 20) for i in range(n)]


def plot_env_curves(
    rows: Mapping[str, Sequence[Curves]],
    path: str | Path,
    *,
    title: str,
    baseline: float | None = None,
    window: int = 5,
) -> Path:
    """One env: each algorithm's mean training return over all its sessions (moving
    average of ``window`` log points) with the 95% bootstrap band of that mean."""
    with _figure(WIDTH, HEIGHT) as fig:
        ax = fig.add_subplot()
        drawn, frames, colors = False, [], palette(len(rows))
        for i, (label, sessions) in enumerate(rows.items()):
            x, values = _aligned(_smoothed(sessions, window))
            frames.extend(s["frame"] for s in sessions)
            if not x.size:
                continue
            mean, low, high = curve_band(values)
            ok = np.isfinite(low) & np.isfinite(high)
            ax.fill_between(x[ok], low[ok], high[ok], color=colors[i], alpha=0.2, lw=0)
            n = len(sessions)
            drawn |= _line(ax, x, mean, color=colors[i], lw=1.8, label=f"{label} ({n} sessions)")
        _return_axes(ax, frames, baseline, empty=not drawn)
        ax.set_title(title)
        return _save(fig, path)


def plot_aggregates(
    estimates: Mapping[str, Mapping[str, Mapping[str, float]]], path: str | Path, *, title: str
) -> Path:
    """IQM, median, mean and optimality gap of normalised scores, a point and its 95% CI
    per algorithm (``estimates`` from :func:`jaxlab.analysis.stats.aggregate_estimates`)."""
    algos = list(estimates)
    colors = palette(len(algos))
    with _figure(WIDTH * 1.5, 0.6 + 0.35 * len(algos) + 0.6) as fig:
        axes = fig.subplots(1, len(AGGREGATES), sharey=True)
        for ax, metric in zip(axes, AGGREGATES, strict=True):
            for y, algo in enumerate(algos):
                e = estimates[algo][metric]
                ax.barh(
                    y, e["high"] - e["low"], left=e["low"], height=0.6, color=colors[y], alpha=0.75
                )
                ax.vlines(e["point"], y - 0.3, y + 0.3, color="k", lw=1.2)
            ax.set_title(metric)
            ax.set_xlabel("normalised score")
        axes[0].set_yticks(range(len(algos)), algos)
        fig.suptitle(title)
        return _save(fig, path)


def plot_profiles(
    profiles: Mapping[str, np.ndarray],
    cis: Mapping[str, np.ndarray],
    taus: np.ndarray,
    path: str | Path,
    *,
    title: str,
) -> Path:
    """Performance profiles: the fraction of runs scoring above tau, with 95% CIs."""
    from rliable import plot_utils

    with _figure(WIDTH, HEIGHT) as fig:
        ax = fig.add_subplot()
        colors = dict(zip(profiles, palette(len(profiles)), strict=True))
        plot_utils.plot_performance_profiles(
            dict(profiles), taus, performance_profile_cis=dict(cis), ax=ax, colors=colors,
            xlabel=r"normalised score $\tau$", ylabel=r"fraction of runs with score $> \tau$",
        )  # fmt: skip
        handles = [Line2D([], [], color=c, lw=2) for c in colors.values()]
        ax.legend(handles, list(profiles), loc="upper right")
        ax.set_title(title)
        return _save(fig, path)


def plot_improvement(
    probabilities: Mapping[str, Mapping[str, float]], path: str | Path, *, title: str
) -> Path:
    """P(X > Y) for each pair of algorithms, with 95% CIs."""
    from rliable import plot_utils

    pairs = list(probabilities)
    points = {p: probabilities[p]["point"] for p in pairs}
    intervals = {p: np.array([probabilities[p]["low"], probabilities[p]["high"]]) for p in pairs}
    with _figure(WIDTH * 1.4, 1.2 + 0.4 * len(pairs)) as fig:
        ax = fig.add_subplot()
        plot_utils.plot_probability_of_improvement(
            points, intervals, ax=ax, left_ylabel="X", right_ylabel="Y"
        )
        ax.set_xlim(0.0, 1.0)
        ax.set_title(title, pad=18)
        return _save(fig, path)


__all__: Sequence[Any] = ["plot_aggregates", "plot_env_curves", "plot_improvement", "plot_profiles"]
