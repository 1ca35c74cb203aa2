"""Paper-ready figures of a run, drawn from its ``metrics.csv`` (:mod:`jaxlab.logging.table`).

A session's log is read into :data:`Curves` (column name -> float array, NaN where a cell
was empty). :func:`plot_session` draws return vs frames over one small panel per loss or
exploration column present; :func:`plot_trial` every session faint with the mean +- std
across sessions bold; :func:`plot_experiment` score vs each varied hyperparameter;
:func:`plot_comparison` several runs' trial bands overlaid.

Figures are :class:`matplotlib.figure.Figure` objects on the Agg canvas: no pyplot state or
backend is touched and the style applies only inside each call. Every function copes with
all-NaN returns, a single log point, flat curves and missing optional columns, writes one
image at 150 dpi (PNG unless the suffix names another format), creating parent
directories, and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from numbers import Real
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator, NullFormatter

from jaxlab.logging.table import Curves, to_float

LOSSES = ("policy_loss", "value_loss", "q_loss", "actor_loss", "critic_loss", "loss")
EXPLORATION = ("entropy", "epsilon", "temperature", "alpha", "clip_frac", "approx_kl", "lr")
DPI = 150
WIDTH, HEIGHT = 6.4, 4.0  # inches, one panel: 960 x 600 pixels
_STYLE: dict[str, Any] = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 10}
_STYLE |= {"figure.titlesize": 11, "xtick.labelsize": 8, "ytick.labelsize": 8}
_STYLE |= {"legend.fontsize": 8, "legend.framealpha": 0.85, "axes.grid": True, "grid.alpha": 0.3}
_STYLE |= {"axes.spines.top": False, "axes.spines.right": False}
_SCHEDULES = ("lr", "epsilon")  # drawn as logged: a moving average would only lag
_TITLES = {"lr": "learning rate", "clip_frac": "clip fraction", "approx_kl": "approx. KL"}
_EVAL = {"fmt": "o", "ms": 4, "color": "C1", "elinewidth": 1, "capsize": 2.5, "zorder": 3}
_EVAL_LINE = {"color": "C1", "marker": "o", "ms": 3.5, "lw": 1.3, "zorder": 3}
_SCATTER = {"cmap": "viridis", "s": 40, "edgecolors": "0.2", "linewidths": 0.5, "zorder": 3}


def moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean of the last ``window`` points, ignoring NaN; NaN where none is finite."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, y, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    hi = np.arange(1, y.size + 1)
    lo = np.maximum(hi - window, 0)
    n = counts[hi] - counts[lo]
    return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig
        fig.clear()  # drop the artists now (nothing is registered with pyplot)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _col(curves: Curves, name: str) -> np.ndarray | None:
    """The column if present with at least one finite value."""
    y = curves.get(name)
    return y if y is not None and np.isfinite(y).any() else None


def _get(curves: Curves, name: str) -> np.ndarray:
    return curves[name] if name in curves else np.full(curves["frame"].size, np.nan)


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.45")


def _frames_axis(ax: Axes, frames: Sequence[np.ndarray]) -> None:
    """x labelled "frames" from 0 to just past the last frame, ticks like 500k, 1M."""
    last = max((float(np.nanmax(f)) for f in frames if np.isfinite(f).any()), default=0.0)
    ax.set_xlim(0, last * 1.02 if last > 0 else 1)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, steps=[1, 2, 2.5, 5, 10]))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("frames")


def _return_axes(ax: Axes, frames: list[np.ndarray], baseline: float | None, empty: bool) -> None:
    """Finish a return-vs-frames axis: baseline, a note if empty, frames, legend."""
    has_base = baseline is not None and math.isfinite(baseline)
    if has_base:
        ax.axhline(baseline, color="0.35", ls="--", lw=1.1, label=f"random ({baseline:.4g})")
    if empty:
        _note(ax, "no episode ended yet")
        if has_base and len(ax.lines) == 1 and not ax.collections:  # the baseline alone
            span = max(abs(baseline), 1.0)  # the line a quarter up, clear of the note
            ax.set_ylim(baseline - 0.5 * span, baseline + 1.5 * span)
    _frames_axis(ax, frames)
    ax.set_ylabel("return")
    handles = ax.get_legend_handles_labels()[0]
    if len(handles) > 1 or (handles and empty):
        ax.legend(loc="best")


def _line(ax: Axes, x: np.ndarray, y: np.ndarray, **kw: Any) -> bool:
    """Plot the finite points of y, joined; a lone point gets a marker. False if none."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() == 1:
        kw.setdefault("marker", "o")
    if ok.any():
        ax.plot(x[ok], y[ok], **kw)
    return bool(ok.any())


def _faint_sessions(ax: Axes, smooth: Sequence[tuple[np.ndarray, np.ndarray]], label: str | None):
    """Every session's curve, faint, as one :class:`LineCollection`: one artist, so drawing
    and the legend's placement stay fast at thousands of sessions (8192 separate lines took
    15 s). A session with a single finite point gets a marker."""
    style = {"alpha": 0.3, "zorder": 2}
    curves, lone = [], []
    for x, y in smooth:
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() > 1:
            curves.append(np.column_stack([x[ok], y[ok]]))
        elif ok.any():
            lone.append((x[ok][0], y[ok][0]))
    if curves:
        ax.add_collection(LineCollection(curves, colors="C0", linewidths=0.8, label=label, **style))
        ax.autoscale_view()
    if lone:
        lone_label = None if curves else label
        xs, ys = np.array(lone).T
        ax.plot(xs, ys, ls="none", marker="o", color="C0", label=lone_label, **style)


def _aligned(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Series on the union of their finite points' x; each interpolated within its own span.

    Returns ``(x, Y)`` with ``Y[i]`` NaN where series ``i`` has no value, so a statistic at
    each x uses the series that reach it (a shorter, interrupted session simply stops).
    """
    pts = []
    for x, y in pairs:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        order = np.argsort(x[ok], kind="stable")
        pts.append((x[ok][order], y[ok][order]))
    grid = np.unique(np.concatenate([x for x, _ in pts] + [np.empty(0)]))
    out = np.full((len(pts), grid.size), np.nan)
    for i, (xs, ys) in enumerate(pts):
        if xs.size:
            inside = (grid >= xs[0]) & (grid <= xs[-1])
            out[i, inside] = np.interp(grid[inside], xs, ys)
    return grid, out


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std over the finite entries (NaN where none, no warnings)."""
    ok = np.isfinite(values)
    n = np.maximum(ok.sum(axis=0), 1)
    mean = np.where(ok, values, 0.0).sum(axis=0) / n
    std = np.sqrt(np.where(ok, (values - mean) ** 2, 0.0).sum(axis=0) / n)
    none = ~ok.any(axis=0)
    return np.where(none, np.nan, mean), np.where(none, np.nan, std)


def _smoothed(sessions: Sequence[Curves], window: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(s["frame"], moving_average(_get(s, "return"), window)) for s in sessions]


def _band(ax: Axes, smooth: Sequence[tuple[np.ndarray, np.ndarray]], **kw: Any) -> bool:
    """Mean +- std across series, as a bold line over a light band. False if no data."""
    x, values = _aligned(smooth)
    mean, std = _mean_std(values)
    ok = np.isfinite(mean)
    if ok.any():
        band = (x[ok], (mean - std)[ok], (mean + std)[ok])
        ax.fill_between(*band, color=kw.get("color"), alpha=0.2, lw=0)
    return _line(ax, x, mean, lw=2.0, **kw)


def plot_session(
    curves: Curves,
    path: str | Path,
    *,
    title: str,
    window: int = 10,
    baseline: float | None = None,
) -> Path:
    """Return vs frames on top; below, a 2-column grid of the loss/exploration columns.

    Raw values thin and light, their moving average over ``window`` log points bold;
    schedules (``lr``, ``epsilon``) as logged. Absent or all-empty columns get no panel.
    """
    frames = curves["frame"]
    extra = [c for c in LOSSES + EXPLORATION if _col(curves, c) is not None]
    rows = math.ceil(len(extra) / 2)
    with _figure(WIDTH, 3.6 + 2.0 * rows if rows else HEIGHT) as fig:
        grid = fig.add_gridspec(1 + rows, 2, height_ratios=[1.8] + [1.0] * rows)
        ax = fig.add_subplot(grid[0, :])
        ret = _get(curves, "return")
        drawn = _line(ax, frames, ret, color="C0", lw=0.8, alpha=0.35, label="return")
        ma = moving_average(ret, window)
        _line(ax, frames, ma, color="C0", lw=2.0, label=f"moving average ({window})")
        ev = _col(curves, "eval_return_mean")
        if ev is not None:
            ok = np.isfinite(ev)
            std = np.nan_to_num(_get(curves, "eval_return_std")[ok])
            ax.errorbar(frames[ok], ev[ok], yerr=std, label="eval mean ± std", **_EVAL)
        _return_axes(ax, [frames], baseline, empty=not drawn)
        for i, name in enumerate(extra):
            sub = fig.add_subplot(grid[1 + i // 2, i % 2], sharex=ax)
            y, color = curves[name], f"C{2 + i}"
            if name in _SCHEDULES:
                _line(sub, frames, y, color=color, lw=1.6)
            else:
                _line(sub, frames, y, color=color, lw=0.7, alpha=0.35)
                _line(sub, frames, moving_average(y, window), color=color, lw=1.6)
            sub.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
            sub.yaxis.set_major_locator(MaxNLocator(nbins=4))
            sub.set(title=_TITLES.get(name, name.replace("_", " ")), ylabel=name, xlabel="frames")
        fig.suptitle(title)
        return _save(fig, path)


def plot_trial(
    sessions: list[Curves],
    path: str | Path,
    *,
    title: str,
    baseline: float | None = None,
    window: int = 10,
) -> Path:
    """Each session's moving-average return faint; the mean +- std across sessions bold.

    Sessions of different lengths are aligned on the union of their frames; at each frame
    the statistics use the sessions that reach it. Evaluation means, where logged, are
    averaged the same way and drawn as a second line with markers.
    """
    with _figure(WIDTH, HEIGHT) as fig:
        ax = fig.add_subplot()
        smooth, n = _smoothed(sessions, window), len(sessions)
        # one session: the bold line is the session itself, so no "sessions" entry
        _faint_sessions(ax, smooth, None if n == 1 else "sessions")
        label = f"mean ± std ({n} sessions)" if n > 1 else f"moving average ({window})"
        drawn = _band(ax, smooth, color="C0", label=label)
        ex, ey = _aligned([(s["frame"], _get(s, "eval_return_mean")) for s in sessions])
        _line(ax, ex, _mean_std(ey)[0], label="eval mean", **_EVAL_LINE)
        _return_axes(ax, [s["frame"] for s in sessions], baseline, empty=not drawn)
        ax.set_title(title)
        return _save(fig, path)


def plot_comparison(
    runs: list[tuple[str, list[Curves]]],
    path: str | Path,
    *,
    title: str,
    window: int = 10,
    baseline: float | None = None,
) -> Path:
    """Several runs overlaid: per run, the mean +- std band of moving-average returns,
    each averaged over the same span of frames (:func:`common_windows`)."""
    windows = common_windows([sessions for _, sessions in runs], window)
    with _figure(WIDTH, HEIGHT) as fig:
        ax = fig.add_subplot()
        drawn = False
        for i, ((label, sessions), w) in enumerate(zip(runs, windows, strict=True)):
            smooth = _smoothed(sessions, w)
            drawn |= _band(ax, smooth, color=f"C{i % 10}", label=f"{label} (n={len(sessions)})")
        _return_axes(ax, [s["frame"] for _, ss in runs for s in ss], baseline, empty=not drawn)
        ax.set_title(title)
        return _save(fig, path)


def common_windows(runs: Sequence[Sequence[Curves]], window: int) -> list[int]:
    """Per run, the moving-average window in log points that spans ``window`` log
    intervals of the most often logged run (at least 1 point): runs logged every 1,000 and
    every 4,000 frames average over 10 and 2-3 points, 10,000 frames each. A window in
    points alone would average a sparsely logged run over far more frames, and its curve
    would lag the others'."""
    steps = [_log_interval(sessions) for sessions in runs]
    finest = min((s for s in steps if s > 0), default=0.0)
    return [max(1, round(window * finest / s)) if s > 0 and finest > 0 else window for s in steps]


def _log_interval(sessions: Sequence[Curves]) -> float:
    """The median frames between a run's log points (0 with fewer than two)."""
    gaps = [np.diff(np.asarray(s["frame"], dtype=float)) for s in sessions]
    gaps = np.concatenate(gaps) if gaps else np.zeros(0)
    return float(np.median(gaps)) if gaps.size else 0.0


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def plot_experiment(
    rows: Sequence[Mapping[str, Any]],
    varied: list[str],
    path: str | Path,
    *,
    title: str,
    score: str = "score",
) -> Path:
    """Score vs each varied hyperparameter: one point per trial, coloured by score.

    Numeric values use a log axis when all are > 0 and span a factor >= 10; anything
    else (strings, bools, lists) is categorical, at integer positions with tick labels.
    Trials without a finite score, or without a value for the hyperparameter, are skipped.
    Up to three panels a row; one colorbar for all.
    """
    scores = np.array([to_float(r.get(score)) for r in rows], dtype=float)
    scored = np.isfinite(scores)
    finite = scores[scored]
    norm = Normalize(*(finite.min(), finite.max()) if finite.size else (0.0, 1.0))
    n = max(len(varied), 1)
    cols, nrows = min(n, 3), math.ceil(n / 3)
    with _figure(WIDTH if cols <= 2 else 9.0, HEIGHT if nrows == 1 else 3.0 * nrows + 0.7) as fig:
        axes = fig.subplots(nrows, cols, sharey=True, squeeze=False).ravel()
        for ax in axes[n:]:
            ax.set_visible(False)
        if not varied:
            _note(axes[0], "no varied hyperparameter")
        for ax, key in zip(axes, varied, strict=False):
            values = [r.get(key) for r in rows]  # v == v: v is not NaN
            keep = [i for i, v in enumerate(values) if scored[i] and v is not None and v == v]
            if all(_is_number(values[i]) for i in keep):
                x = np.array([float(values[i]) for i in keep])
                if x.size and x.min() > 0 and x.max() / x.min() >= 10:
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^-4... would overlap
                else:  # few ticks: long decimals must not run into each other
                    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            else:
                labels = [str(values[i]) for i in keep]
                cats = sorted(set(labels))
                x = np.array([cats.index(s) for s in labels], dtype=float)
                tilt = {"rotation": 30, "ha": "right", "rotation_mode": "anchor"}
                ax.set_xticks(range(len(cats)), cats, **(tilt if max(map(len, cats)) > 6 else {}))
                ax.set_xlim(-0.5, len(cats) - 0.5)
                ax.grid(False, axis="x")
            ax.scatter(x, scores[keep], c=scores[keep], norm=norm, **_SCATTER)
            if not keep:
                _note(ax, "no scored trial")
            ax.set_xlabel(key)
        for ax in axes[::cols]:
            ax.set_ylabel(score)
        fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=list(axes[:n]), label=score)
        fig.suptitle(title)
        return _save(fig, path)
