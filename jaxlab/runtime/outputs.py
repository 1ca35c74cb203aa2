"""One Trial's files on the host: CSV/TensorBoard rows, checkpoints, ``best``, the summary.

:class:`TrialOutputs` owns everything a Trial writes into its run directory and the host
loop state (:class:`HostState`) saved with each checkpoint. The driver loop
(:class:`jaxlab.runtime.loop.Loop`) holds one per Trial it trains: one for ``train``, K when
``search`` batches K hyperparameter settings into one compiled program, each reading its
own rows ``rows`` of the combined state and metrics.

Every session's rows go to one ``<run>/metrics.csv`` (:mod:`jaxlab.logging.table`).
``meta.loggers`` decides what is written besides it: TensorBoard's event files
and the experiment trackers (:mod:`jaxlab.logging.trackers`), which get each flush's rows
and are closed with the Trial's status (:func:`run_status`, or ``failed``). Only the first
``meta.detailed_sessions`` sessions (:func:`detailed_sessions`) get their own TensorBoard
scalars and histograms; every session has its rows in ``metrics.csv`` and counts in the
Trial's aggregates (``tb_trial``).
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxlab.algorithms.registry import SAMPLE_METRICS
from jaxlab.envs import resumes_exactly
from jaxlab.lab.evaluate import EVAL_METRICS, POLICY_CONTENTS
from jaxlab.logging import COLUMNS, SessionLogs, TrialWriter
from jaxlab.logging.trackers import RunInfo, Trackers
from jaxlab.logging.writers import FLUSH_SECONDS
from jaxlab.runtime.checkpoint import Checkpointer
from jaxlab.spec.schema import Spec


def episode_means(metrics: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean return and length of the episodes that ended in a chunk, per session (NaN if none)."""
    count = metrics["ep_count"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.where(count > 0, metrics["ep_return_sum"] / count, np.nan)
        length = np.where(count > 0, metrics["ep_length_sum"] / count, np.nan)
    return ret, length


def summarize(final_returns: np.ndarray) -> dict[str, Any]:
    """Across-session statistics of the final returns ``[S]`` (NaN sessions excluded)."""
    finite = final_returns[np.isfinite(final_returns)]
    return {
        "final_return_mean": float(finite.mean()) if finite.size else None,
        "final_return_std": float(finite.std()) if finite.size else None,
        "final_return_min": float(finite.min()) if finite.size else None,
        "final_return_max": float(finite.max()) if finite.size else None,
        "final_return_per_session": [
            None if not np.isfinite(r) else float(r) for r in final_returns
        ],
    }


@dataclass
class HostState:
    """Loop state kept on the host, saved in every checkpoint's meta (JSON).

    ``wall_time``: seconds trained so far; ``final_returns``: each session's latest
    finite training return; ``diverged_at``: the frame where a session first reported a
    non-finite loss or parameter (None while healthy); ``best_eval``/``best_frame``: the
    Trial's best mean eval return over healthy sessions and where it was reached.
    """

    final_returns: list[float | None]
    diverged_at: list[int | None]
    wall_time: float = 0.0
    best_eval: float | None = None
    best_frame: int | None = None
    last_eval: list[float | None] = field(default_factory=list)

    @classmethod
    def fresh(cls, sessions: int) -> HostState:
        return cls([None] * sessions, [None] * sessions, last_eval=[None] * sessions)

    @property
    def diverged(self) -> np.ndarray:
        return np.array([d is not None for d in self.diverged_at])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def session_columns(metrics: dict[str, np.ndarray], diverged: np.ndarray) -> dict[str, np.ndarray]:
    """One log point's per-session columns ``[S]``: the chunk's metrics as float64, the
    mean ``return`` and ``episode_length`` of the episodes that ended in it, the
    ``episodes`` count and the ``diverged`` flag as integers."""
    ret, length = episode_means(metrics)
    columns = {key: np.asarray(v, np.float64) for key, v in metrics.items()}
    columns.update({"return": ret, "episode_length": length})
    columns["episodes"] = np.asarray(metrics["ep_count"]).astype(np.int64)
    columns["diverged"] = diverged.astype(np.int64)
    return columns


def run_status(stop: int | str | None) -> str:
    """How a Trial's loop ended: ``complete`` (``stop`` None), ``stopped`` (early, by a
    search scheduler) or ``interrupted`` (``stop``: the signal number)."""
    if stop is None:
        return "complete"
    return "stopped" if stop == "stopped" else "interrupted"


def open_trackers(
    spec: Spec, run_dir: Path, prov: dict[str, Any], sessions: int
) -> Trackers | None:
    """The trackers ``meta.loggers`` lists for a Trial of ``sessions``, continuing those
    of ``run_dir/trackers.json`` (``prov``: the run's provenance; its git SHA and session
    keys go in their config)."""
    info = RunInfo.of(spec.to_dict(), run_dir, prov, sessions, tracked_sessions(spec, sessions))
    return Trackers.open(spec.meta.loggers, run_dir, info)


def detailed_sessions(spec: Spec, sessions: int) -> int:
    """How many of a Trial's ``sessions`` (the first ones) write their own TensorBoard
    scalars and histograms: ``meta.detailed_sessions`` of them, none without
    ``tensorboard`` in ``meta.loggers``."""
    return tracked_sessions(spec, sessions) if "tensorboard" in spec.meta.loggers else 0


def tracked_sessions(spec: Spec, sessions: int) -> int:
    """How many of a Trial's ``sessions`` (the first ``meta.detailed_sessions``) get a
    tracker run of their own; the Trial's run has the aggregates of all."""
    return max(0, min(spec.meta.detailed_sessions, sessions))


def session_logs(
    spec: Spec,
    run_dir: Path,
    sessions: int,
    columns: tuple[str, ...] = COLUMNS,
    *,
    resume_frame: int | None = None,
    track: bool = False,
) -> SessionLogs:
    """The sessions' rows in ``run_dir/metrics.csv``, TensorBoard for the first
    :func:`detailed_sessions` sessions, and when ``track`` the scalars of the first
    :func:`tracked_sessions` kept for the trackers."""
    return SessionLogs(
        run_dir, sessions, columns, resume_frame, detailed=detailed_sessions(spec, sessions),
        track=tracked_sessions(spec, sessions) if track else 0, blank=EVAL_METRICS,
    )  # fmt: skip


def take(tree: Any, rows: slice | None) -> Any:
    """Rows ``rows`` of every leaf's leading (session) axis; the tree itself for ``None``."""
    return tree if rows is None else jax.tree.map(lambda x: x[rows], tree)


class TrialOutputs:
    """The files of one Trial (``run_dir``) and its :class:`HostState`.

    ``rows`` selects this Trial's sessions in the driver's state and metrics (``None``:
    all of them). ``extra`` is merged into the summary (e.g. the batch it trained in).
    ``trackers``: the experiment trackers fed at every flush (None: none listed).
    ``detailed``: how many of its first sessions get TensorBoard scalars and histograms
    (:func:`detailed_sessions`).
    """

    def __init__(
        self,
        spec: Spec,
        run_dir: Path,
        git_sha: str | None,
        logs: SessionLogs | None,
        ckpt: Checkpointer,
        host: HostState,
        *,
        rows: slice | None = None,
        resume_frame: int | None = None,
        extra: dict[str, Any] | None = None,
        trackers: Trackers | None = None,
    ) -> None:
        self.spec, self.run_dir, self.git_sha = spec, run_dir, git_sha
        self.logs, self.ckpt, self.host, self.rows = logs, ckpt, host, rows
        self.derived = spec.derived
        self.num_sessions = len(host.final_returns)
        self.detailed = len(logs.events) if logs is not None else 0
        self.extra = extra or {}
        self.trackers = trackers
        self.trial_tb = TrialWriter(
            run_dir / "tb_trial",
            resume_frame,
            tensorboard="tensorboard" in spec.meta.loggers,
            track=trackers is not None,
        )
        self.best: Checkpointer | None = None
        if self.derived.eval_every:
            self.best = Checkpointer(run_dir / "best", keep=1)
        self._flushed = time.monotonic()

    def flush(self) -> None:
        """Put every buffered CSV row and TensorBoard event on disk; the rows to the trackers."""
        if self.logs is not None:
            self.logs.flush()
        self.trial_tb.flush()
        self._track()
        self._flushed = time.monotonic()

    def _track(self) -> None:
        """Hand the rows written since the last call to the trackers, if any."""
        if self.trackers is not None:
            sessions = self.logs.take_tracked() if self.logs is not None else []
            self.trackers.log(sessions, self.trial_tb.take_tracked())

    def meta(self, chunk: int) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "git_sha": self.git_sha,
            "chunk": chunk,
            "host": self.host.to_json(),
        }

    def record(self, i: int, frame: int, metrics: dict[str, np.ndarray], fps: float) -> np.ndarray:
        """Update the host state from chunk ``i``'s metrics (this Trial's rows); write rows."""
        host = self.host
        metrics = dict(metrics)
        for key in SAMPLE_METRICS:
            if key in metrics:
                values = metrics.pop(key)
                if self.detailed:
                    self.logs.histograms(key, values, frame)
        for k in np.flatnonzero(metrics.pop("nonfinite") > 0):
            if host.diverged_at[k] is None:
                host.diverged_at[k] = frame
                print(
                    f"jaxlab: warning: {self.run_dir.name}: session {k} diverged (non-finite "
                    f"loss or parameters) by frame {frame}; flagged, the other sessions carry on",
                    file=sys.stderr,
                )
        diverged = host.diverged
        per_session = session_columns(metrics, diverged)
        shared = {"frame": frame, "wall_time": host.wall_time, "fps": fps}
        if self.logs is not None:
            self.logs.write(shared, per_session)
        ret = per_session["return"]
        for k in np.flatnonzero(np.isfinite(ret)):
            host.final_returns[k] = float(ret[k])
        self.trial_tb.write({**metrics, "return": ret}, diverged, frame)
        if "eval_return_mean" in metrics and self.derived.is_eval_chunk(i):
            ev = metrics["eval_return_mean"]
            host.last_eval = [float(v) if np.isfinite(v) else None for v in ev]
        if time.monotonic() - self._flushed > FLUSH_SECONDS:
            self.flush()
        return ret

    def best_score(self, i: int) -> float | None:
        """The Trial's mean eval return after chunk ``i`` if it makes a new ``best``
        (ties go to the later checkpoint: same score, more training behind it), else None."""
        if self.best is None or not self.derived.is_eval_chunk(i):
            return None
        ev = np.array([np.nan if v is None else v for v in self.host.last_eval], float)
        healthy = ~self.host.diverged & np.isfinite(ev)
        if not healthy.any():
            return None
        score = float(ev[healthy].mean())
        if self.host.best_eval is None or score >= self.host.best_eval:
            return score
        return None

    def maybe_save_best(self, i: int, frame: int, policy: Any) -> None:
        """Save ``policy`` (this Trial's rows of the
        :class:`~jaxlab.lab.evaluate.PolicyState`) as ``best`` if the mean eval return
        improved; its metadata says ``"contents": "policy"`` (``enjoy`` reads it)."""
        score = self.best_score(i)
        if score is not None:
            self.host.best_eval, self.host.best_frame = score, frame
            self.flush()  # the rows it was chosen on are on disk before it
            meta = {**self.meta(i), "eval_score": score, "contents": POLICY_CONTENTS}
            self.best.save(frame, policy, meta)

    def detailed_rows(self) -> slice | None:
        """The rows of the driver's state holding this Trial's :attr:`detailed` sessions
        (None: there are none), so only they need to leave the device for histograms."""
        if not self.detailed:
            return None
        start = 0 if self.rows is None else self.rows.start
        return slice(start, start + self.detailed)

    def histograms(self, params: Any, frame: int) -> None:
        """Parameter histograms of the :attr:`detailed` sessions (``params``: their rows,
        :meth:`detailed_rows`, on the host; leaves ``[detailed, ...]``)."""
        if self.detailed:
            self.logs.param_histograms(params, frame)

    def save(self, i: int, frame: int, state: Any) -> None:
        """Checkpoint ``state`` (this Trial's rows) after chunk ``i``, rows flushed first."""
        self.flush()
        self.ckpt.save(frame, state, self.meta(i))

    def close(self, status: str = "complete") -> None:
        """Close every file; the trackers get the last rows and finish with ``status``."""
        self.trial_tb.close()
        self.ckpt.close()
        if self.best is not None:
            self.best.close()
        if self.logs is not None:
            self.logs.close()
        if self.trackers is not None:
            try:
                self._track()
            finally:
                self.trackers.close(status)

    def summary(
        self, frames: int, compile_s: float, stop: int | str | None, init_s: float = 0.0
    ) -> dict[str, Any]:
        """``trial_summary.json``. ``stop``: a signal number, ``"stopped"`` (early stopping
        by a search scheduler) or None for a run that completed. ``init_s``: the part of
        ``compile_s`` spent running the init program (0 when the state was restored)."""
        host, d = self.host, self.derived
        finals = np.array([np.nan if r is None else r for r in host.final_returns], float)
        diverged = host.diverged
        stats = summarize(np.where(diverged, np.nan, finals))
        stats["final_return_per_session"] = [None if r is None else r for r in host.final_returns]
        wall = max(host.wall_time, 1e-9)
        status = run_status(stop)
        stop_signal = signal.Signals(int(stop)).name if status == "interrupted" else None
        return {
            "spec_name": self.spec.name,
            "status": status,
            "stop_signal": stop_signal,
            "sessions": self.num_sessions,
            **stats,
            "diverged_sessions": [int(k) for k in np.flatnonzero(diverged)],
            "diverged_at_frame": host.diverged_at,
            "eval_return_per_session": host.last_eval,
            "best_eval_return": host.best_eval,
            "best_eval_frame": host.best_frame,
            "frames_per_session": frames,
            "frames_planned": d.total_frames,
            "frames_total": frames * self.num_sessions,
            "wall_clock_s": wall,
            "compile_s": compile_s,
            "init_s": init_s,
            "fps_total": frames * self.num_sessions / wall,
            "fps_per_session": frames / wall,
            "git_sha": self.git_sha,
            "resume_bit_identical": resumes_exactly(self.spec.env.name),
            **self.extra,
        }
