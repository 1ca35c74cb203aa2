"""Host-side metric sinks: every session's rows in the Trial's ``metrics.csv``
(:mod:`jaxlab.logging.table`), a TensorBoard event stream for each of the first
``meta.detailed_sessions`` (:class:`SessionLogs`) and the Trial's aggregates
(:class:`TrialWriter`).

Rows and events are buffered in memory and appended to disk on :meth:`SessionLogs.flush`
(the host loop flushes before every checkpoint, at the end, and every
:data:`FLUSH_SECONDS` in between; see :class:`jaxlab.runtime.outputs.TrialOutputs`). Every row a
checkpoint covers is on disk before that checkpoint exists, so a kill loses only rows a
resume would discard anyway. No file handle or thread is held per session, and a log point
costs one formatted block, not a Python row per session.

Resuming at frame ``F`` keeps the rows with ``frame <= F`` (rows written after the
checkpoint are dropped; training re-creates them) and starts TensorBoard with
``purge_step = F + 1``, which tells TensorBoard to discard the older stream's events past
``F``. The history then continues with no duplicated and no missing log points.

Without ``tensorboard`` in ``meta.loggers`` no event stream is written. With a tracker
listed (``wandb``, ``mlflow``), the scalars of the tracked sessions' rows written since the
last :meth:`SessionLogs.take_tracked` are kept, and the Trial's outputs hand them to the
trackers when they flush (:mod:`jaxlab.logging.trackers`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxlab.logging.events import EventFile, histogram_protos
from jaxlab.logging.table import MetricsTable

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


class SessionLogs:
    """Every session's log of a Trial in ``run_dir``: all rows in one ``metrics.csv``
    (:class:`jaxlab.logging.table.MetricsTable`), TensorBoard scalars and histograms for
    the first ``detailed`` sessions (``session_<k>/tb``), and the scalars of the first
    ``track`` sessions kept for the trackers (:meth:`take_tracked`). ``blank``: the
    columns left empty where not finite (evaluation's, on chunks that do not evaluate)."""

    def __init__(
        self,
        run_dir: Path,
        sessions: int,
        columns: tuple[str, ...] = COLUMNS,
        resume_frame: int | None = None,
        *,
        detailed: int = 0,
        track: int = 0,
        blank: tuple[str, ...] = (),
    ) -> None:
        self.table = MetricsTable(run_dir, columns, sessions, resume_frame, blank)
        self.columns = self.table.columns
        purge = None if resume_frame is None else resume_frame + 1
        self.events = [
            EventFile(run_dir / f"session_{k}" / "tb", purge_step=purge) for k in range(detailed)
        ]
        self.tracked: list[Tracked] = [[] for _ in range(track)]

    def write(self, shared: dict[str, Any], per_session: dict[str, np.ndarray]) -> None:
        """One log point: ``shared`` values (``frame``, ...) and ``[S]`` arrays (the
        table's :func:`~jaxlab.logging.table.format_block`)."""
        self.table.write(shared, per_session)
        frame = int(shared["frame"])
        for k in range(max(len(self.events), len(self.tracked))):
            scalars = self._scalars(shared, per_session, k)
            if k < len(self.events):
                self.events[k].scalars(scalars, frame)
            if k < len(self.tracked):
                self.tracked[k].append((frame, scalars))

    def _scalars(self, shared: dict[str, Any], per_session: dict[str, Any], k: int) -> dict:
        """Session ``k``'s finite values (every column but ``frame``), tagged
        ``session/<column>``."""
        scalars = {}
        for key in self.columns[1:]:
            value = per_session[key][k] if key in per_session else shared.get(key)
            if value is not None and math.isfinite(float(value)):
                scalars[f"session/{key}"] = float(value)
        return scalars

    def histograms(self, tag: str, values: Any, frame: int) -> None:
        """Histogram ``tag`` of session k's ``values[k]`` for each detailed session k."""
        detailed = values[: len(self.events)]
        for events, histo in zip(self.events, histogram_protos(detailed), strict=True):
            events.histogram(tag, histo, frame)

    def param_histograms(self, params: Any, frame: int) -> None:
        """One histogram per parameter array (``params/<path>``) per detailed session;
        leaves ``[detailed, ...]``."""
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            self.histograms(f"params/{name}", leaf, frame)

    def take_tracked(self) -> list[Tracked]:
        """Each tracked session's ``(frame, scalars)`` written since the last call."""
        rows, self.tracked = self.tracked, [[] for _ in self.tracked]
        return rows

    def flush(self) -> None:
        """Append the buffered rows to ``metrics.csv`` and the events to TensorBoard."""
        self.table.flush()
        for events in self.events:
            events.flush()

    def close(self) -> None:
        self.flush()


class TrialWriter:
    """Trial aggregates to ``<run>/tb_trial``: across-session mean/std of each scalar.

    Diverged sessions are left out of the aggregates; ``trial/diverged_sessions`` counts them.
    ``tensorboard=False``: no event stream; ``track``: keep them for the trackers, as
    :class:`SessionLogs` does.
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

    def take_tracked(self) -> Tracked:
        """The ``(frame, scalars)`` written since the last call (empty when not tracking)."""
        rows = self.tracked or []
        if rows:
            self.tracked = []
        return rows

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
