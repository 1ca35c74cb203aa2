"""Host-side metric sinks: one CSV and one TensorBoard event stream per session.

Resuming at frame ``F`` keeps the CSV rows with ``frame <= F`` (rows written after the
checkpoint are dropped; training re-creates them) and starts TensorBoard with
``purge_step = F + 1``, which tells TensorBoard to discard the older stream's events past
``F``. The history then continues with no duplicated and no missing log points.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tensorboardX import SummaryWriter

# The columns every run has, in order. "frame" is frames per session; "wall_time" seconds
# since start. The algorithm's own metrics follow (see ``columns_for``).
COLUMNS = (
    "frame",
    "wall_time",
    "fps",
    "return",
    "episode_length",
    "episodes",
    "eval_return_mean",
    "eval_return_std",
    "diverged",
)
# Chunk outputs that are not per-row learner metrics.
NOT_LOGGED = ("ep_return_sum", "ep_length_sum", "ep_count", "updates", "nonfinite", "actions")


def columns_for(metric_names: Any) -> tuple[str, ...]:
    """CSV/TensorBoard columns of a run: :data:`COLUMNS`, then the algorithm's own scalar
    metrics (losses, entropy, epsilon, alpha, q_mean, lr, ...) in sorted order."""
    extra = sorted(set(metric_names) - set(COLUMNS) - set(NOT_LOGGED))
    return COLUMNS + tuple(m for m in extra if not m.startswith("eval_"))


class SessionWriter:
    """Writes one row per log point to ``metrics.csv`` and the same scalars to TensorBoard."""

    def __init__(
        self, directory: Path, columns: tuple[str, ...] = COLUMNS, resume_frame: int | None = None
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "metrics.csv"
        self.columns = columns
        if resume_frame is None:
            self._file = open(path, "w", newline="")  # noqa: SIM115
            self._csv = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
            self._csv.writeheader()
        else:
            self.columns = truncate_csv(path, resume_frame)
            self._file = open(path, "a", newline="")  # noqa: SIM115
            self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
        purge = None if resume_frame is None else resume_frame + 1
        self._tb = SummaryWriter(str(directory / "tb"), purge_step=purge)

    def write(self, row: dict[str, Any]) -> None:
        self._csv.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._file.flush()
        frame = int(row["frame"])
        for key in self.columns[1:]:
            value = row.get(key)
            if value is not None and math.isfinite(float(value)):
                self._tb.add_scalar(f"session/{key}", float(value), frame)

    def histogram(self, tag: str, values: Any, frame: int) -> None:
        """A TensorBoard histogram of ``values`` (skipped when empty or non-finite)."""
        values = np.asarray(values, np.float64).ravel()
        if values.size and np.all(np.isfinite(values)):
            self._tb.add_histogram(tag, values, frame)

    def histograms(self, params: Any, frame: int) -> None:
        """One TensorBoard histogram per parameter array (``params/<path>``)."""
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            self.histogram(f"params/{name}", leaf, frame)

    def close(self) -> None:
        self._file.close()
        self._tb.close()


class TrialWriter:
    """Trial aggregates to ``<run>/tb_trial``: across-session mean/std of each scalar.

    Diverged sessions are left out of the aggregates; ``trial/diverged_sessions`` counts them.
    """

    KEYS = ("return", "eval_return_mean", "episode_length", "entropy", "policy_loss", "value_loss")

    def __init__(self, directory: Path, resume_frame: int | None = None) -> None:
        purge = None if resume_frame is None else resume_frame + 1
        self._tb = SummaryWriter(str(directory), purge_step=purge)

    def write(self, rows: dict[str, np.ndarray], diverged: np.ndarray, frame: int) -> None:
        self._tb.add_scalar("trial/diverged_sessions", float(diverged.sum()), frame)
        for key in self.KEYS:
            if key not in rows:
                continue
            x = np.asarray(rows[key], np.float64)[~diverged]
            x = x[np.isfinite(x)]
            if x.size:
                self._tb.add_scalar(f"trial/{key}_mean", float(x.mean()), frame)
                self._tb.add_scalar(f"trial/{key}_std", float(x.std()), frame)

    def close(self) -> None:
        self._tb.close()


def truncate_csv(path: Path, frame: int) -> tuple[str, ...]:
    """Keep the header and the rows with ``frame <= frame`` (atomic rewrite); returns columns."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = tuple(reader.fieldnames or COLUMNS)
        # A row cut short by a kill mid-write has missing fields (None): dropped too.
        rows = [
            r
            for r in reader
            if None not in r.values() and r["frame"] and int(float(r["frame"])) <= frame
        ]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return columns


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
