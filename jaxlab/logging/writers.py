"""Host-side metric sinks: one CSV per session, a TensorBoard event stream for each of the
first ``meta.detailed_sessions`` (:func:`jaxlab.runtime.outputs.session_writers`).

Rows and events are buffered in memory and appended to disk on :meth:`SessionWriter.flush`
(the host loop flushes before every checkpoint, at the end, and every
:data:`FLUSH_SECONDS` in between; see :class:`jaxlab.runtime.outputs.TrialOutputs`). Every row a
checkpoint covers is on disk before that checkpoint exists, so a kill loses only rows a
resume would discard anyway. No file handle or thread is held per session, so a Trial of
thousands of sessions costs one buffer each.

Resuming at frame ``F`` keeps the CSV rows with ``frame <= F`` (rows written after the
checkpoint are dropped; training re-creates them) and starts TensorBoard with
``purge_step = F + 1``, which tells TensorBoard to discard the older stream's events past
``F``. The history then continues with no duplicated and no missing log points.

Without ``tensorboard`` in ``meta.loggers`` no event stream is written. With a tracker
listed (``wandb``, ``mlflow``), each writer also keeps the scalars of the rows written since
the last :meth:`SessionWriter.take_tracked`, which the Trial's outputs hand to the trackers
when they flush (:mod:`jaxlab.logging.trackers`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tensorboardX.proto.summary_pb2 import HistogramProto

from jaxlab.logging.events import EventFile, histogram_protos

# Seconds between flushes of the buffered rows when no checkpoint comes sooner.
FLUSH_SECONDS = 10.0

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


# (frame, {tag: value}) per log point, as the trackers take them
Tracked = list[tuple[int, dict[str, float]]]


class _Tracking:
    """Rows kept for the trackers: ``tracked`` is a list when tracking, else None."""

    tracked: Tracked | None = None

    def take_tracked(self) -> Tracked:
        """The ``(frame, scalars)`` written since the last call (empty when not tracking)."""
        rows = self.tracked or []
        if rows:
            self.tracked = []
        return rows


class SessionWriter(_Tracking):
    """One row per log point for ``metrics.csv`` and the same scalars for TensorBoard
    (``tb/``; none with ``tensorboard=False``), buffered until :meth:`flush`. ``track``:
    also keep each row's scalars for the trackers (:meth:`take_tracked`)."""

    def __init__(
        self,
        directory: Path,
        columns: tuple[str, ...] = COLUMNS,
        resume_frame: int | None = None,
        *,
        tensorboard: bool = True,
        track: bool = False,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "metrics.csv"
        self.columns = columns
        self._rows = io.StringIO()
        if resume_frame is None:
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(columns)
        else:
            self.columns = truncate_csv(self.path, resume_frame)
        self._csv = csv.DictWriter(self._rows, fieldnames=self.columns, extrasaction="ignore")
        purge = None if resume_frame is None else resume_frame + 1
        self._tb = EventFile(directory / "tb", purge_step=purge) if tensorboard else None
        self.tracked: Tracked | None = [] if track else None

    def write(self, row: dict[str, Any]) -> None:
        self._csv.writerow({k: _fmt(row.get(k)) for k in self.columns})
        if self._tb is None and self.tracked is None:
            return
        scalars = {}
        for key in self.columns[1:]:
            value = row.get(key)
            if value is not None and math.isfinite(float(value)):
                scalars[f"session/{key}"] = float(value)
        if self._tb is not None:
            self._tb.scalars(scalars, int(row["frame"]))
        if self.tracked is not None:
            self.tracked.append((int(row["frame"]), scalars))

    def histogram(self, tag: str, histo: HistogramProto | None, frame: int) -> None:
        """A TensorBoard histogram (one row of :func:`histogram_protos`); None: nothing."""
        if self._tb is not None:
            self._tb.histogram(tag, histo, frame)

    def flush(self) -> None:
        """Append the buffered rows to ``metrics.csv`` and the events to TensorBoard."""
        text = self._rows.getvalue()
        if text:
            with open(self.path, "a", newline="") as f:
                f.write(text)
            self._rows.seek(0)
            self._rows.truncate()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self.flush()


def write_histograms(writers: list[SessionWriter], tag: str, values: Any, frame: int) -> None:
    """Histogram ``tag`` of session k's ``values[k]`` into ``writers[k]``, for all at once."""
    for writer, histo in zip(writers, histogram_protos(values), strict=True):
        writer.histogram(tag, histo, frame)


def write_param_histograms(writers: list[SessionWriter], params: Any, frame: int) -> None:
    """One histogram per parameter array (``params/<path>``) per session; leaves ``[S, ...]``."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        write_histograms(writers, f"params/{name}", leaf, frame)


class TrialWriter(_Tracking):
    """Trial aggregates to ``<run>/tb_trial``: across-session mean/std of each scalar.

    Diverged sessions are left out of the aggregates; ``trial/diverged_sessions`` counts them.
    ``tensorboard=False``: no event stream; ``track``: keep them for the trackers, as
    :class:`SessionWriter` does.
    """

    KEYS = ("return", "eval_return_mean", "episode_length", "entropy", "policy_loss", "value_loss")

    def __init__(
        self,
        directory: Path,
        resume_frame: int | None = None,
        *,
        tensorboard: bool = True,
        track: bool = False,
    ) -> None:
        purge = None if resume_frame is None else resume_frame + 1
        self._tb = EventFile(directory, purge_step=purge) if tensorboard else None
        self.tracked: Tracked | None = [] if track else None

    def write(self, rows: dict[str, np.ndarray], diverged: np.ndarray, frame: int) -> None:
        scalars = {"trial/diverged_sessions": float(diverged.sum())}
        for key in self.KEYS:
            if key not in rows:
                continue
            x = np.asarray(rows[key], np.float64)[~diverged]
            x = x[np.isfinite(x)]
            if x.size:
                scalars[f"trial/{key}_mean"] = float(x.mean())
                scalars[f"trial/{key}_std"] = float(x.std())
        if self._tb is not None:
            self._tb.scalars(scalars, frame)
        if self.tracked is not None:
            self.tracked.append((int(frame), scalars))

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
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
