"""The impure shell: run a Trial's compiled chunks and do all I/O between them.

Per log point (one chunk = ``meta.log_frequency`` frames per session): a CSV row and
TensorBoard scalars per session, the progress bar; on checkpoint points an Orbax
checkpoint of the full Trial state plus the host loop state (:class:`HostState`), so a
resumed run (:mod:`jaxlab.resume`) continues every counter and history; on eval points
the ``best`` checkpoint when the Trial's mean eval return improves. SIGINT/SIGTERM finish
the chunk in flight, checkpoint and stop. Nothing here runs inside ``jit``.

Chunks are pipelined: chunk i+1 is dispatched before chunk i's metrics are read, so
host I/O overlaps device compute. Chunks that checkpoint or evaluate are read first
(their rows are on disk before their checkpoint exists) and the state is saved before
the next dispatch donates its buffers.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from jaxlab.algorithms.base import SAMPLE_METRICS
from jaxlab.checkpoint import Checkpointer
from jaxlab.evaluate import EVAL_METRICS
from jaxlab.logging import SessionWriter, TrialWriter
from jaxlab.provenance import make_run_dir, write_provenance
from jaxlab.signals import StopRequest
from jaxlab.spec.schema import Spec
from jaxlab.trial import Trial, episode_means, summarize


class DevCheckError(RuntimeError):
    """A ``dev``-mode sanity check failed (non-finite loss, parameters not changing)."""


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    state: Any


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


def write_rows(
    writers: list[SessionWriter],
    metrics: dict[str, np.ndarray],
    per_session: dict[str, np.ndarray],
    **common: float,
) -> np.ndarray:
    """Write one log row per session; returns the chunk's mean episode return ``[S]``."""
    ret, length = episode_means(metrics)
    for k, writer in enumerate(writers):
        row: dict[str, Any] = {key: float(v[k]) for key, v in metrics.items()}
        for key in EVAL_METRICS:  # blank, not "nan", on chunks that do not evaluate
            if key in row and not np.isfinite(row[key]):
                row[key] = None
        row.update(common)
        row.update({key: v[k] for key, v in per_session.items()})
        row.update({"return": float(ret[k]), "episode_length": float(length[k])})
        row["episodes"] = int(metrics["ep_count"][k])
        writer.write(row)
    return ret


def _dev_checks(metrics: dict[str, np.ndarray], before: Any, after: Any, chunk: int) -> None:
    for key, value in metrics.items():
        if key not in EVAL_METRICS and not np.all(np.isfinite(value)):
            raise DevCheckError(f"chunk {chunk}: metric '{key}' is not finite: {value}")
    changed = jax.tree.map(lambda a, b: np.any(a != b, axis=tuple(range(1, a.ndim))), before, after)
    moved = np.any(np.stack(jax.tree.leaves(changed)), axis=0)
    if not np.all(moved):
        stuck = [int(i) for i in np.flatnonzero(~moved)]
        raise DevCheckError(f"chunk {chunk}: parameters of sessions {stuck} did not change")


def train(
    spec: Spec,
    *,
    root: str | Path = "data",
    dev: bool = False,
    progress: bool = True,
    keys: jax.Array | None = None,
    state_fn: Any = None,
    report: bool = True,
) -> RunResult:
    """Train one Trial of ``spec``; all outputs go under a new ``<root>/<name>_<time>/``.

    ``state_fn``, if given, maps the freshly initialised Trial state to the one trained
    (to load pretrained parameters, or to inject a fault in tests). ``report=False`` skips
    the end-of-run metrics and graphs (``python -m jaxlab report`` makes them later).
    """
    trial = Trial(spec, keys)
    run_dir = make_run_dir(spec, root)
    prov = write_provenance(spec, run_dir, trial)
    writers = [SessionWriter(run_dir / f"session_{k}") for k in range(trial.num_sessions)]
    ckpt = Checkpointer(
        run_dir / "checkpoints",
        keep=spec.meta.checkpoint_keep,
        metadata={"spec": spec.to_dict(), "git_sha": prov["git_sha"]},
    )
    setup_start = time.perf_counter()
    state = trial.init()
    if state_fn is not None:
        state = state_fn(state)
    trial.compile(state)
    compile_s = time.perf_counter() - setup_start  # init (compiled too) + the chunk
    loop = Loop(trial, run_dir, prov["git_sha"], writers, ckpt, HostState.fresh(trial.num_sessions))
    return loop.run(state, 0, compile_s, dev=dev, progress=progress, report=report)


class Loop:
    """The host loop over chunks ``start..num_chunks-1``, shared by new and resumed runs."""

    def __init__(
        self,
        trial: Trial,
        run_dir: Path,
        git_sha: str | None,
        writers: list[SessionWriter],
        ckpt: Checkpointer,
        host: HostState,
        resume_frame: int | None = None,
    ) -> None:
        self.trial, self.run_dir, self.git_sha = trial, run_dir, git_sha
        self.writers, self.ckpt, self.host = writers, ckpt, host
        self.spec = trial.spec
        self.trial_tb = TrialWriter(run_dir / "tb_trial", resume_frame)
        self.best: Checkpointer | None = None
        if trial.derived.eval_every:
            self.best = Checkpointer(run_dir / "best", keep=1)

    def meta(self, chunk: int) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "git_sha": self.git_sha,
            "chunk": chunk,
            "host": self.host.to_json(),
        }

    def record(self, i: int, metrics: dict[str, np.ndarray], fps: float) -> np.ndarray:
        """Update the host state from chunk ``i``'s metrics and write its rows."""
        host, frame = self.host, self.trial.frames_after(i)
        for key in SAMPLE_METRICS:
            if key in metrics:
                samples = metrics.pop(key)
                for k, writer in enumerate(self.writers):
                    writer.histogram(key, samples[k], frame)
        for k in np.flatnonzero(metrics.pop("nonfinite") > 0):
            if host.diverged_at[k] is None:
                host.diverged_at[k] = frame
                print(
                    f"jaxlab: warning: session {k} diverged (non-finite loss or parameters) "
                    f"by frame {frame}; flagged, the other sessions carry on",
                    file=sys.stderr,
                )
        diverged = host.diverged
        ret = write_rows(
            self.writers,
            metrics,
            {"diverged": diverged.astype(int)},
            frame=frame,
            wall_time=host.wall_time,
            fps=fps,
        )
        for k in np.flatnonzero(np.isfinite(ret)):
            host.final_returns[k] = float(ret[k])
        self.trial_tb.write({**metrics, "return": ret}, diverged, frame)
        if "eval_return_mean" in metrics and self.trial.derived.is_eval_chunk(i):
            ev = metrics["eval_return_mean"]
            host.last_eval = [float(v) if np.isfinite(v) else None for v in ev]
        return ret

    def maybe_save_best(self, i: int, state: Any) -> None:
        if self.best is None or not self.trial.derived.is_eval_chunk(i):
            return
        ev = np.array([np.nan if v is None else v for v in self.host.last_eval], float)
        healthy = ~self.host.diverged & np.isfinite(ev)
        if not healthy.any():
            return
        score = float(ev[healthy].mean())
        # ties go to the later checkpoint: same score, more training behind it
        if self.host.best_eval is None or score >= self.host.best_eval:
            self.host.best_eval, self.host.best_frame = score, self.trial.frames_after(i)
            self.best.save(self.host.best_frame, state, {**self.meta(i), "eval_score": score})

    def read(self, i: int, pending: Any) -> tuple[np.ndarray, float]:
        """Wait for chunk ``i``'s metrics, time it, record it; returns (returns, fps)."""
        metrics = jax.device_get(pending)
        frame, now = self.trial.frames_after(i), time.perf_counter()
        fps = (frame - self.frames_done) / max(now - self.last, 1e-9)
        self.frames_done, self.last = frame, now
        self.host.wall_time = self.offset + now - self.t0
        if self.dev_params is not None:
            before, after = self.dev_params
            _dev_checks(metrics, before, after, i)
        return self.record(i, metrics, fps), fps

    def run(
        self,
        state: Any,
        start: int,
        compile_s: float,
        *,
        dev: bool = False,
        progress: bool = True,
        report: bool = True,
    ) -> RunResult:
        """Run chunks ``start..num_chunks-1`` from ``state``, or until a stop signal."""
        trial, d = self.trial, self.trial.derived
        every = self.spec.meta.checkpoint_frequency
        last_ckpt = self.frames_done = trial.frames_after(start - 1) if start else 0
        bar = tqdm(
            total=d.total_frames,
            initial=last_ckpt,
            unit="frame",
            unit_scale=True,
            disable=not progress,
            desc=self.spec.name,
            dynamic_ncols=True,
        )
        self.t0 = self.last = time.perf_counter()
        self.offset, self.dev_params = self.host.wall_time, None
        before = jax.device_get(state.params) if dev else None
        stop_signal: int | None = None
        try:
            with StopRequest() as stop:
                state, pending = trial.dispatch(state, start)
                for i in range(start, d.num_chunks):
                    frame = trial.frames_after(i)
                    final = i == d.num_chunks - 1
                    stopping = stop.signum is not None
                    save = frame // every > last_ckpt // every or final or stopping
                    sync = save or dev or d.is_eval_chunk(i)
                    if dev:
                        after = jax.device_get(state.params)
                        self.dev_params, before = (before, after), after
                    if sync:  # rows on disk before the checkpoint; state saved before donation
                        ret, fps = self.read(i, pending)
                        self.histograms(state, frame)
                        self.maybe_save_best(i, state)
                        if save:
                            self.ckpt.save(frame, state, self.meta(i))
                            last_ckpt = frame
                    this = pending
                    if not final and not stopping:
                        state, pending = trial.dispatch(state, i + 1)
                    if not sync:
                        ret, fps = self.read(i, this)
                    bar.update(frame - bar.n)
                    bar.set_postfix(
                        fps=f"{fps * trial.num_sessions:,.0f}",
                        ret=f"{np.nanmean(ret):.1f}" if np.isfinite(ret).any() else "n/a",
                        refresh=False,
                    )
                    if stopping:
                        stop_signal = stop.signum
                        break
        finally:
            bar.close()
            self.close()
        summary = self.summary(self.frames_done, compile_s, stop_signal)
        (self.run_dir / "trial_summary.json").write_text(json.dumps(summary, indent=2))
        if report:
            write_report_safely(self.run_dir)
        return RunResult(self.run_dir, summary, state)

    def histograms(self, state: Any, frame: int) -> None:
        """Parameter histograms per session, at the log points that sync anyway."""
        params = jax.device_get(state.params)
        for k, writer in enumerate(self.writers):
            writer.histograms(jax.tree.map(lambda x, k=k: x[k], params), frame)

    def close(self) -> None:
        self.trial_tb.close()
        self.ckpt.close()
        if self.best is not None:
            self.best.close()
        for writer in self.writers:
            writer.close()

    def summary(self, frames: int, compile_s: float, stop_signal: int | None) -> dict[str, Any]:
        host, trial, d = self.host, self.trial, self.trial.derived
        finals = np.array([np.nan if r is None else r for r in host.final_returns], float)
        diverged = host.diverged
        stats = summarize(np.where(diverged, np.nan, finals))
        stats["final_return_per_session"] = [None if r is None else r for r in host.final_returns]
        wall = max(host.wall_time, 1e-9)
        status = "complete" if stop_signal is None else "interrupted"
        return {
            "spec_name": self.spec.name,
            "status": status,
            "stop_signal": None if stop_signal is None else signal.Signals(stop_signal).name,
            "sessions": trial.num_sessions,
            **stats,
            "diverged_sessions": [int(k) for k in np.flatnonzero(diverged)],
            "diverged_at_frame": host.diverged_at,
            "eval_return_per_session": host.last_eval,
            "best_eval_return": host.best_eval,
            "best_eval_frame": host.best_frame,
            "frames_per_session": frames,
            "frames_planned": d.total_frames,
            "frames_total": frames * trial.num_sessions,
            "wall_clock_s": wall,
            "compile_s": compile_s,
            "fps_total": frames * trial.num_sessions / wall,
            "fps_per_session": frames / wall,
            "git_sha": self.git_sha,
        }


def write_report_safely(run_dir: Path) -> None:
    """Write the run's metrics and graphs; a failure here is reported, never fatal."""
    from jaxlab.analysis.report import write_report

    try:
        write_report(run_dir)
    except Exception as err:  # noqa: BLE001 - the run itself is safe on disk already
        print(
            f"jaxlab: warning: report failed ({err}); retry: python -m jaxlab report {run_dir}",
            file=sys.stderr,
        )


def format_summary(summary: dict[str, Any]) -> str:
    """The one-paragraph summary printed at the end of a run."""
    mean, std = summary["final_return_mean"], summary["final_return_std"]
    ret = "n/a (no episode ended)" if mean is None else f"{mean:.2f} ± {std:.2f}"
    per = ", ".join("n/a" if r is None else f"{r:.1f}" for r in summary["final_return_per_session"])
    healthy = summary["sessions"] - len(summary["diverged_sessions"])
    text = (
        f"trial {summary['spec_name']}: final return {ret} over {healthy} sessions "
        f"[{per}]; {summary['frames_per_session']:,} frames/session in "
        f"{summary['wall_clock_s']:.1f}s (compile {summary['compile_s']:.1f}s), "
        f"{summary['fps_total']:,.0f} env-steps/s total"
    )
    if summary["best_eval_return"] is not None:
        text += (
            f"; best eval return {summary['best_eval_return']:.2f} "
            f"at frame {summary['best_eval_frame']:,}"
        )
    for k in summary["diverged_sessions"]:
        at = summary["diverged_at_frame"][k]
        text += f"\nsession {k} DIVERGED (non-finite) by frame {at:,}; excluded from the statistics"
    return text
