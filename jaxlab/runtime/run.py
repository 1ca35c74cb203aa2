"""Start training: ``train`` and ``train_batch`` build a Trial, its run directories and
outputs, compile and initialise it (:func:`start`), and hand it to the host loop
(:class:`jaxlab.runtime.loop.Loop`), which runs the chunks and does all I/O between them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.analysis.report import SESSION_GRAPHS
from jaxlab.lab.batching import check_batchable, stack_hypers
from jaxlab.lab.seeds import default_keys
from jaxlab.lab.trial import Trial
from jaxlab.logging import columns_for
from jaxlab.logging.trackers import require_trackers
from jaxlab.runtime.checkpoint import Checkpointer
from jaxlab.runtime.lock import locked
from jaxlab.runtime.loop import ChunkHook, Loop, RunResult
from jaxlab.runtime.outputs import HostState, TrialOutputs, open_trackers, session_logs
from jaxlab.runtime.provenance import make_run_dir, write_provenance
from jaxlab.spec.schema import Spec


def train(
    spec: Spec,
    *,
    root: str | Path = "data",
    dev: bool = False,
    progress: bool = True,
    keys: jax.Array | None = None,
    state_fn: Any = None,
    report: bool = True,
    session_graphs: int = SESSION_GRAPHS,
    run_dir: Path | None = None,
    on_chunk: ChunkHook | None = None,
) -> RunResult:
    """Train one Trial of ``spec``; all outputs go under a new ``<root>/<name>_<time>/``
    (or ``run_dir``, which must not exist yet).

    ``state_fn``, if given, maps the freshly initialised Trial state to the one trained
    (to load pretrained parameters, or to inject a fault in tests). ``report=False`` skips
    the end-of-run metrics and graphs (``python -m jaxlab report`` makes them later);
    ``session_graphs`` caps the session graphs drawn (the trial graph has every session).
    ``on_chunk`` is called after every chunk (see :class:`Loop`).
    """
    dirs = None if run_dir is None else [run_dir]
    results = train_batch(
        [spec], root=root, dev=dev, progress=progress, keys=keys, state_fn=state_fn,
        report=report, session_graphs=session_graphs, run_dirs=dirs, on_chunk=on_chunk,
    )  # fmt: skip
    return results[0]


def train_batch(
    specs: list[Spec],
    *,
    root: str | Path = "data",
    dev: bool = False,
    progress: bool = True,
    keys: jax.Array | None = None,
    state_fn: Any = None,
    report: bool = True,
    session_graphs: int = SESSION_GRAPHS,
    run_dirs: list[Path] | None = None,
    on_chunk: ChunkHook | None = None,
) -> list[RunResult]:
    """Train K Trials that differ only in tunable numbers as ONE compiled program.

    The K specs must be batch-compatible (:func:`jaxlab.lab.batching.check_batchable`): they
    differ only in keys that live in the state's ``hyper`` leaves. The program is the
    Trial of ``specs[0]`` vmapped over K*S rows, rows ``k*S..(k+1)*S-1`` being setting k's
    S seeds with setting k's ``hyper`` values; each Trial gets its own run directory,
    written exactly as ``train`` writes one. With one spec this *is* ``train``.
    """
    check_batchable(specs)
    for spec in specs:  # a missing tracker package: one line, before anything is written
        require_trackers(spec.meta.loggers)
    base, count = specs[0], len(specs)
    if keys is None:
        keys = default_keys(base)
    trial = Trial(base, jnp.tile(keys, (count, 1)) if count > 1 else keys)
    if run_dirs is None:
        run_dirs = [make_run_dir(spec, root) for spec in specs]
    for run_dir in run_dirs:
        run_dir.mkdir(parents=True, exist_ok=True)
    with locked(*run_dirs):  # one writer per run folder (jaxlab.runtime.lock)
        outputs = [
            new_outputs(trial, spec, run_dir, keys, k, count)
            for k, (spec, run_dir) in enumerate(zip(specs, run_dirs, strict=True))
        ]
        try:
            state, compile_s = start(trial, specs, state_fn)
        except BaseException:
            for out in outputs:  # the tracker runs end as failed
                out.close("failed")
            raise
        loop = Loop(
            trial, outputs, state, 0, compile_s, dev=dev, progress=progress, report=report,
            session_graphs=session_graphs, on_chunk=on_chunk,
        )  # fmt: skip
        return loop.run()


def new_outputs(
    trial: Trial, spec: Spec, run_dir: Path, keys: jax.Array, k: int, count: int
) -> TrialOutputs:
    """The outputs of setting ``k`` of ``count`` trained by ``trial`` (rows ``k*S..``,
    S = the sessions of ``keys``) in the new ``run_dir``: provenance, trackers, session
    logs and checkpointer."""
    sessions = int(keys.shape[0])
    prov = write_provenance(spec, run_dir, keys)
    trackers = open_trackers(spec, run_dir, prov, sessions)
    columns = columns_for(trial.metric_names())
    logs = session_logs(spec, run_dir, sessions, columns, track=trackers is not None)
    ckpt = Checkpointer(
        run_dir / "checkpoints",
        keep=spec.meta.checkpoint_keep,
        metadata={"spec": spec.to_dict(), "git_sha": prov["git_sha"]},
    )
    rows = slice(k * sessions, (k + 1) * sessions) if count > 1 else None
    extra = {"batch": {"settings": count, "index": k}} if count > 1 else {}
    host = HostState.fresh(sessions)
    return TrialOutputs(
        spec, run_dir, prov["git_sha"], logs, ckpt, host, rows=rows, extra=extra,
        trackers=trackers,
    )  # fmt: skip


def start(trial: Trial, specs: list[Spec], state_fn: Any = None) -> tuple[Any, float]:
    """The state ``trial`` trains from (the K settings of ``specs`` stacked in its
    ``hyper`` leaves when K > 1, then ``state_fn``) with its group program compiled for it,
    and ``compile_s``: the Trial's trace (``trace_s``), the init and the group program's
    compile, what a run waits before its first chunk (the run-dir set-up aside).

    Without ``state_fn`` the group program compiles from shapes while the Trial builds its
    init program in the background (:class:`~jaxlab.lab.trial.Trial`); ``state_fn`` may need
    values (loading parameters, say), so then init comes first.
    """
    count = len(specs)
    sessions = trial.num_sessions // count

    def settings(state: Any) -> Any:  # every setting's hyper leaves, [K*S] (K > 1)
        return state.replace(hyper=stack_hypers(specs, sessions)) if count > 1 else state

    setup_start = time.perf_counter()
    if state_fn is None:
        trial.compile(jax.eval_shape(settings, trial.abstract_state()), with_init=True)
        state = settings(trial.init())
    else:
        state = state_fn(settings(trial.init()))
        trial.compile(state)
    return state, trial.trace_s + time.perf_counter() - setup_start


# Sessions named one by one in the end-of-run summary; past them it gives the range.
SHOWN_SESSIONS = 8


def format_summary(summary: dict[str, Any]) -> str:
    """The one-paragraph summary printed at the end of a run: per-session returns and
    diverged sessions are listed for the first :data:`SHOWN_SESSIONS` (thousands of seeds
    would fill the screen), then summed up."""
    mean, std = summary["final_return_mean"], summary["final_return_std"]
    ret = "n/a (no episode ended)" if mean is None else f"{mean:.2f} ± {std:.2f}"
    finals = summary["final_return_per_session"]
    per = ", ".join("n/a" if r is None else f"{r:.1f}" for r in finals[:SHOWN_SESSIONS])
    if len(finals) > SHOWN_SESSIONS:
        per += f", ... {len(finals) - SHOWN_SESSIONS} more"
        if mean is not None:
            low, high = summary["final_return_min"], summary["final_return_max"]
            per += f"; min {low:.1f}, max {high:.1f}"
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
    diverged = summary["diverged_sessions"]
    for k in diverged[:SHOWN_SESSIONS]:
        at = summary["diverged_at_frame"][k]
        text += f"\nsession {k} DIVERGED (non-finite) by frame {at:,}; excluded from the statistics"
    if len(diverged) > SHOWN_SESSIONS:
        text += f"\n... and {len(diverged) - SHOWN_SESSIONS} more diverged sessions (trial_summary.json)"
    return text
