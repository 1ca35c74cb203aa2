"""Lab metrics of Sessions, Trials and Experiments, computed from logged return curves.

One session's curve: log points ``i = 1..n`` with frames ``f_i``, optimisation steps
``u_i`` (gradient steps so far) and mean training return ``r_i``; log points where no
episode ended (NaN return) are dropped. ``b`` is the env's random-policy return
(:mod:`jaxlab.analysis.baselines`; 0 when unknown).

    strength            s_i = r_i - b                          return above random
    strength            S   = (1/n) sum_i s_i                  the curve's mean strength
    max_strength            = max_i s_i
    final_strength          = s_n
    sample_efficiency   E_f = (1/n) sum_i s_i / f_i            strength per frame; early
                                                               strength weighs more (1/f_i)
    training_efficiency E_u = (1/n) sum_i s_i / u_i            the same per gradient step
    stability           T   = 1 - sum_{i>=2} max(0, s_{i-1} - s_i) / ((n-1) max_i |s_i|)
                                                               clipped to [0, 1]; 1 when
                                                               nothing is ever lost

A Trial's sessions ``k = 1..K`` (diverged ones left out) aggregate as the mean of each
session metric, plus

    consistency         C = 1 - mean_i std_k s_{k,i} / mean_i |mean_k s_{k,i}|
                        over the log points every session has, clipped to [0, 1]
                        (1 = identical curves)
    final return        mean ± std over sessions of each session's last finite r_i
    final_return_iqm    interquartile mean: the mean after trimming floor(K/4) sessions
                        from each end (rliable's ``aggregate_iqm``), with
    final_return_iqm_ci its 95% bootstrap CI [low, high] over sessions
                        (:func:`jaxlab.analysis.stats.iqm_ci`)

An Experiment ranks its trials by ``score`` = the trial's strength ``S`` (mean over
sessions): high when a trial gets far above random early and stays there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxlab.analysis.stats import iqm_ci

SESSION_METRICS = (
    "strength",
    "max_strength",
    "final_strength",
    "sample_efficiency",
    "training_efficiency",
    "stability",
)


def _clean(frames: np.ndarray, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames, returns = np.asarray(frames, float), np.asarray(returns, float)
    keep = np.isfinite(returns) & np.isfinite(frames)
    return frames[keep], returns[keep]


def stability(strength: np.ndarray) -> float:
    """``1 - sum of drops / ((n - 1) max|s|)`` in [0, 1]; 1 for fewer than two points."""
    s = np.asarray(strength, float)
    scale = np.max(np.abs(s)) if s.size else 0.0
    if s.size < 2 or scale == 0.0:
        return 1.0
    drops = np.maximum(0.0, s[:-1] - s[1:]).sum()
    return float(np.clip(1.0 - drops / ((s.size - 1) * scale), 0.0, 1.0))


def session_metrics(
    frames: np.ndarray,
    returns: np.ndarray,
    baseline: float | None = 0.0,
    grad_steps_per_frame: float | None = None,
) -> dict[str, float | None]:
    """The module docstring's session metrics; all None when no episode ever ended.

    ``grad_steps_per_frame`` converts frames to optimisation steps (``u_i = f_i * g``);
    without it ``training_efficiency`` is None.
    """
    f, r = _clean(frames, returns)
    if r.size == 0:
        return {name: None for name in (*SESSION_METRICS, "final_return")}
    s = r - (baseline or 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sample = float(np.mean(s / f)) if np.all(f > 0) else None
        train = None
        if grad_steps_per_frame and np.all(f > 0):
            train = float(np.mean(s / (f * grad_steps_per_frame)))
    return {
        "strength": float(s.mean()),
        "max_strength": float(s.max()),
        "final_strength": float(s[-1]),
        "sample_efficiency": sample,
        "training_efficiency": train,
        "stability": stability(s),
        "final_return": float(r[-1]),
    }


def consistency(curves: Sequence[tuple[np.ndarray, np.ndarray]], baseline: float = 0.0) -> float:
    """Across sessions' ``(frames, returns)``: 1 - mean spread / mean |strength|, in [0, 1].

    Uses the frames at which every session has a finite return; 1.0 for a single session
    or when no frame is shared.
    """
    cleaned = [_clean(f, r) for f, r in curves]
    if len(cleaned) < 2:
        return 1.0
    common = set(cleaned[0][0].tolist())
    for f, _ in cleaned[1:]:
        common &= set(f.tolist())
    if not common:
        return 1.0
    grid = np.array(sorted(common))
    table = np.stack([r[np.searchsorted(f, grid)] for f, r in cleaned]) - baseline  # [K, m]
    scale = np.mean(np.abs(table.mean(axis=0)))
    if scale == 0.0:
        return 1.0 if np.all(table == table[0]) else 0.0
    return float(np.clip(1.0 - np.mean(table.std(axis=0)) / scale, 0.0, 1.0))


def _stats(values: list[float | None]) -> dict[str, float | None]:
    x = np.array([v for v in values if v is not None], float)
    if x.size == 0:
        return {"mean": None, "std": None}
    return {"mean": float(x.mean()), "std": float(x.std())}


def trial_metrics(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
    baseline: float | None = 0.0,
    grad_steps_per_frame: float | None = None,
    diverged: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Per-session metrics and their Trial aggregate (diverged sessions excluded)."""
    diverged = list(diverged) if diverged is not None else [False] * len(curves)
    per = [session_metrics(f, r, baseline, grad_steps_per_frame) for f, r in curves]
    healthy = [m for m, bad in zip(per, diverged, strict=True) if not bad]
    healthy_curves = [c for c, bad in zip(curves, diverged, strict=True) if not bad]
    out: dict[str, Any] = {"sessions": per, "diverged": [bool(d) for d in diverged]}
    for name in SESSION_METRICS:
        out[name] = _stats([m[name] for m in healthy])["mean"]
    finals = [m["final_return"] for m in healthy if m["final_return"] is not None]
    stats = _stats(finals)
    out["final_return_mean"], out["final_return_std"] = stats["mean"], stats["std"]
    iqm = iqm_ci(finals)
    out["final_return_iqm"] = iqm["iqm"]
    out["final_return_iqm_ci"] = (
        None if iqm["iqm"] is None else [iqm["iqm_ci_low"], iqm["iqm_ci_high"]]
    )
    out["consistency"] = consistency(healthy_curves, baseline or 0.0) if healthy else None
    out["score"] = out["strength"]
    return out


def experiment_table(
    trials: Sequence[tuple[dict[str, Any], dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Rows of ``{**varied hyperparameters, score, metrics...}`` sorted by score, best first.

    ``trials``: ``(varied hyperparameter values, trial_metrics(...))`` per trial; trials
    without a score (no episode ended) sort last.
    """
    keys = ("score", "final_return_mean", "final_return_std", "final_return_iqm", "consistency")
    rows = [{**params, **{k: m.get(k) for k in (*keys, *SESSION_METRICS)}} for params, m in trials]
    return sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))
