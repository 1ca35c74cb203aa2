"""Reliable statistics of RL results, computed by rliable (Agarwal et al., NeurIPS 2021).

Scores are final returns, one per session ("run"). Across envs ("tasks") they are first
normalised, ``z = (x - random) / (reference - random)``, so 0 is the random policy and 1
the reference score. For one algorithm the scores form a matrix ``[runs, tasks]``;
rliable's stratified bootstrap resamples runs within each task (``reps`` times) and
gives percentile 95% confidence intervals of

    IQM               mean of the middle 50% of all runs x tasks scores (25% trimmed)
    median, mean      of the per-task mean scores
    optimality gap    mean of max(0, 1 - z): how far below the reference, on average
    P(X > Y)          probability that a run of X beats a run of Y on a random task
                      (Mann-Whitney U / (n m), averaged over the tasks both ran)
    profile(tau)      fraction of runs with score > tau (performance profile)

Every bootstrap here is seeded (``seed``), so the same scores give the same intervals. rliable is imported lazily (it pulls in pandas and arch).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

AGGREGATES = ("IQM", "Median", "Mean", "Optimality Gap")
REPS = 2000  # bootstrap resamples: CI ends stable to ~1% of their width
CONFIDENCE = 0.95


def _rly() -> Any:
    from rliable import library

    return library


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """numpy's global RNG seeded with ``seed``, restored afterwards.

    rliable 1.2's bootstraps draw their resamples from ``np.random.choice`` (its
    ``random_state`` argument does not reach them), so this is what makes them repeatable.
    """
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def _estimates(score_dict: Mapping[str, Any], func: Any, reps: int, seed: int) -> tuple:
    """rliable's stratified bootstrap with percentile 95% CIs, seeded (:func:`_seeded`)."""
    with _seeded(seed):
        return _rly().get_interval_estimates(
            dict(score_dict), func, reps=reps, confidence_interval_size=CONFIDENCE
        )


def _aggregate(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array(
        [
            metrics.aggregate_iqm(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_optimality_gap(scores),
        ]
    )


def iqm_ci(values: Sequence[float], reps: int = REPS, seed: int = 0) -> dict[str, float | None]:
    """IQM of one Trial's session scores ``values`` ``[runs]`` with its 95% bootstrap CI:
    ``{"iqm", "iqm_ci_low", "iqm_ci_high"}`` (all None without a finite score)."""
    x = np.asarray([v for v in values if v is not None], float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"iqm": None, "iqm_ci_low": None, "iqm_ci_high": None}
    from rliable import metrics

    point, interval = _estimates(
        {"trial": x[:, None]}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps, seed
    )
    low, high = interval["trial"][:, 0]
    return {"iqm": float(point["trial"][0]), "iqm_ci_low": float(low), "iqm_ci_high": float(high)}


def normalise(scores: np.ndarray, random: float, reference: float) -> np.ndarray:
    """``(x - random) / (reference - random)``: 0 = random policy, 1 = the reference."""
    return (np.asarray(scores, float) - random) / (reference - random)


def aggregate_estimates(
    score_dict: Mapping[str, np.ndarray], reps: int = REPS, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """Per algorithm ``{metric: {"point", "low", "high"}}`` for :data:`AGGREGATES`, from
    normalised ``score_dict[algorithm]`` of shape ``[runs, tasks]``."""
    point, interval = _estimates(score_dict, _aggregate, reps, seed)
    return {
        algo: {
            name: {
                "point": float(point[algo][i]),
                "low": float(interval[algo][0, i]),
                "high": float(interval[algo][1, i]),
            }
            for i, name in enumerate(AGGREGATES)
        }
        for algo in score_dict
    }


def probability_of_improvement(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], reps: int = 500, seed: int = 0
) -> dict[str, dict[str, float]]:
    """``P(X > Y)`` with its CI for each pair ``"X,Y" -> (scores of X, scores of Y)``
    (``P(Y > X) = 1 - P(X > Y)``: ties count half).

    The two matrices of a pair cover the same tasks in the same column order; runs may
    differ. Each resample recomputes a Mann-Whitney U per task, so ``reps`` is smaller.
    """
    from rliable import metrics

    if not pairs:
        return {}
    point, interval = _estimates(pairs, metrics.probability_of_improvement, reps, seed)
    return {
        pair: {
            "point": float(point[pair]),
            "low": float(np.ravel(interval[pair])[0]),
            "high": float(np.ravel(interval[pair])[1]),
        }
        for pair in pairs
    }


def performance_profiles(
    score_dict: Mapping[str, np.ndarray], taus: np.ndarray, reps: int = REPS, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run-score performance profiles at ``taus`` and their CIs (``[2, len(taus)]`` each)."""
    with _seeded(seed):
        return _rly().create_performance_profile(
            dict(score_dict), taus, reps=reps, confidence_interval_size=CONFIDENCE
        )


def curve_band(
    curves: np.ndarray, reps: int = 500, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean learning curve of ``curves`` ``[runs, points]`` and its 95% bootstrap band
    (runs resampled): ``(mean, low, high)``, each ``[points]``; a point no run has is NaN."""
    curves = np.asarray(curves, float)
    with warnings.catch_warnings():  # "Mean of empty slice" where no run has a value
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
        if curves.shape[0] < 2:
            return mean, mean.copy(), mean.copy()
        _, interval = _estimates({"curve": curves}, lambda s: np.nanmean(s, axis=0), reps, seed)
    return mean, interval["curve"][0], interval["curve"][1]


__all__ = [
    "AGGREGATES",
    "aggregate_estimates",
    "curve_band",
    "iqm_ci",
    "normalise",
    "performance_profiles",
    "probability_of_improvement",
]
