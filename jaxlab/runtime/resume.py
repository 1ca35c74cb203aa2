"""Resume a run directory exactly where its latest good checkpoint left it.

``python -m jaxlab train data/<run>/`` rebuilds the Trial from ``data/<run>/spec.yaml``
and the session keys in ``provenance.json``, restores the newest checkpoint that loads
and verifies (falling back past corrupt ones, see :mod:`jaxlab.runtime.checkpoint`), cuts the
``metrics.csv`` rows and TensorBoard history back to that frame and runs the remaining chunks. The
whole state (parameters, optimizer, env states, normalisers, RNG keys, counters) and the
host loop state come back, so an interrupted run ends bit-identical to an uninterrupted
one on the same machine and code. The exception: envs whose state lives outside jax
(EnvPool) restart their episodes, from pools seeded afresh from the checkpointed keys
(:func:`reseeded_trial`).

A checkpoint is refused, with the spec keys that differ, when ``spec.yaml`` was edited
in a way that changes the state's shapes (``env.num_envs``, network sizes, sessions...)
or moves the log points; other edits (say ``env.max_frame``, to train longer) are
allowed with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxlab.analysis.report import SESSION_GRAPHS
from jaxlab.config.parse import flatten
from jaxlab.envs import resumed_params, resumes_exactly
from jaxlab.lab.trial import Trial
from jaxlab.logging.console import warn
from jaxlab.logging.table import TABLE, resume_problem
from jaxlab.logging.trackers import require_trackers
from jaxlab.runtime.checkpoint import Checkpointer, CheckpointError, NoCheckpoint
from jaxlab.runtime.lock import locked
from jaxlab.runtime.loop import ChunkHook, Loop, RunResult, write_report_safely
from jaxlab.runtime.outputs import HostState, TrialOutputs, open_trackers, session_logs
from jaxlab.runtime.provenance import git_info
from jaxlab.runtime.run import train
from jaxlab.spec import SpecError, load_spec, spec_from_dict
from jaxlab.spec.schema import Spec


class Reporting(NamedTuple):
    """What a resumed run writes when it ends: its report (``on``), with a graph of each of
    its first ``session_graphs`` sessions."""

    on: bool
    session_graphs: int


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "spec.yaml").is_file() and (path / "checkpoints").is_dir()


def flat_diff(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old, new)`` for every leaf where two nested mappings differ."""
    a, b = flatten(old), flatten(new)
    keys = list(a) + [k for k in b if k not in a]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def _shape_mismatch(a: Any, b: Any) -> str | None:
    la, ta = jax.tree_util.tree_flatten_with_path(a)
    lb, tb = jax.tree_util.tree_flatten_with_path(b)
    if ta != tb:
        return "the state's structure differs"
    for (path, x), (_, y) in zip(la, lb, strict=True):
        if (x.shape, x.dtype) != (y.shape, y.dtype):
            name = jax.tree_util.keystr(path)
            return f"state{name} is {list(x.shape)} {x.dtype} vs {list(y.shape)} {y.dtype}"
    return None


def check_fits(spec: Spec, keys: Any, template: Any, meta: dict[str, Any], where: Path) -> None:
    """Refuse a checkpoint whose spec gives other state shapes; warn on other differences."""
    diffs = flat_diff(meta.get("spec", {}), spec.to_dict())
    if not diffs:
        return
    text = "; ".join(f"{k} is {a!r} in the checkpoint, {b!r} in {where}" for k, a, b in diffs)
    try:
        old = spec_from_dict(meta["spec"])
    except SpecError as err:
        raise CheckpointError(f"the checkpoint's spec no longer parses ({err})") from None
    old_keys = keys if keys is not None and len(keys) == old.meta.max_session else None
    mismatch = _shape_mismatch(Trial(old, old_keys).abstract_state(), template)
    if mismatch:
        raise CheckpointError(
            f"checkpoint at frame {meta['frame']} does not fit {where}: {text} ({mismatch})"
        )
    warn(f"{where} differs from the checkpoint's spec: {text}; continuing with {where}")


def code_change_warning(prov: dict[str, Any], run_dir: Path, what: str) -> str | None:
    """A warning when this checkout is not the recorded SHA, or either tree is dirty."""
    now, sha = git_info(), prov.get("git_sha")
    if sha is None:
        return f"{what}: the run recorded no git SHA, so its code cannot be checked out"
    problems = []
    if now["sha"] != sha:
        problems.append(f"it was made at git SHA {sha[:12]}, this checkout is {now['sha']}")
    if now["dirty"]:
        problems.append("this checkout has uncommitted changes")
    if prov.get("git_dirty"):
        problems.append("it was made from a tree with uncommitted changes (saved in git.diff)")
    if not problems:
        return None
    fix = f"git checkout {sha}"
    if prov.get("git_dirty"):
        fix += f" && git apply {run_dir / 'git.diff'}"
    return f"{what} may not reproduce exactly: {'; '.join(problems)}. To reproduce it: {fix}"


def saved_run_of(spec_path: str | Path) -> Path | None:
    """The run directory when ``spec_path`` is a run's saved ``spec.yaml``, else None."""
    parent = Path(spec_path).resolve().parent
    return parent if (parent / "provenance.json").is_file() else None


def session_keys(prov: dict[str, Any], sessions: int) -> jax.Array | None:
    keys = prov.get("session_keys")
    if keys is None or len(keys) != sessions:
        return None
    return jnp.asarray(keys, jnp.uint32)


def restore(
    trial: Trial, keys: Any, template: Any, ckpt: Checkpointer, where: Path
) -> tuple[Any, dict[str, Any], int]:
    """The newest good checkpoint that fits ``where`` (the run's ``spec.yaml``): its state,
    its meta and the chunk to continue from. ``ckpt`` is closed if this fails."""
    spec = trial.spec
    try:
        state, meta = ckpt.restore_latest(
            template, check=lambda m: check_fits(spec, keys, template, m, where), warn=warn
        )
        frame = int(meta["frame"])
        aligned = [c for c in range(trial.derived.num_chunks) if trial.frames_after(c) == frame]
        if not aligned:
            raise CheckpointError(
                f"frame {frame} is not a log point of {where} (meta.log_frequency or the batch "
                "size changed); restore the original value to resume"
            )
    except BaseException:
        ckpt.close()
        raise
    return state, meta, aligned[0] + 1


def resume(
    run_dir: str | Path,
    *,
    progress: bool = True,
    report: bool = True,
    session_graphs: int = SESSION_GRAPHS,
    on_chunk: ChunkHook | None = None,
) -> RunResult:
    """Continue ``run_dir`` from its latest good checkpoint to the end of its spec
    (``report``, ``session_graphs`` and ``on_chunk`` as in :class:`jaxlab.runtime.loop.Loop`)."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise CheckpointError(f"{run_dir} is not a jaxlab run directory (no spec.yaml/checkpoints)")
    with locked(run_dir):  # one writer per run folder (jaxlab.runtime.lock)
        return _resume(run_dir, progress, Reporting(report, session_graphs), on_chunk)


def _resume(
    run_dir: Path, progress: bool, report: Reporting, on_chunk: ChunkHook | None
) -> RunResult:
    where = run_dir / "spec.yaml"
    spec = load_spec(where)
    require_trackers(spec.meta.loggers)
    prov_file = run_dir / "provenance.json"
    prov = json.loads(prov_file.read_text()) if prov_file.is_file() else {}
    keys = session_keys(prov, spec.meta.max_session)
    trial = Trial(spec, keys)
    template = trial.abstract_state()
    ckpt = Checkpointer(run_dir / "checkpoints", keep=spec.meta.checkpoint_keep)
    try:
        state, meta, start = restore(trial, keys, template, ckpt, where)
    except NoCheckpoint as err:
        return start_over(run_dir, spec, keys, str(err), progress, report, on_chunk)
    message = code_change_warning(prov, run_dir, "the resumed run")
    if message:
        warn(message)
    host = HostState(**meta["host"])
    frame = int(meta["frame"])
    if start >= trial.derived.num_chunks:
        summary = finished_summary(run_dir, prov, spec, ckpt, host, frame, report)
        print(f"jaxlab: {run_dir} already finished at frame {frame:,}; nothing to resume")
        return RunResult(run_dir, summary, state)
    problem = resume_problem(run_dir)
    if problem is not None:
        ckpt.close()
        raise CheckpointError(f"{run_dir} {problem}")
    print(f"jaxlab: resuming {run_dir} from frame {frame:,}", file=sys.stderr, flush=True)
    entry = {}
    if not resumes_exactly(spec.env.name):
        trial = reseeded_trial(trial, keys, state)
        entry["env_seed"] = trial.spec.env.params["seed"]
    sha = record_resume(run_dir, prov, frame, entry)
    t0 = time.perf_counter()
    trial.compile(state)
    compile_s = trial.trace_s + time.perf_counter() - t0  # as train counts it
    trackers = open_trackers(spec, run_dir, prov, trial.num_sessions)  # trackers.json's runs
    logs = session_logs(
        spec, run_dir, trial.num_sessions, resume_frame=frame, track=trackers is not None
    )
    out = TrialOutputs(spec, run_dir, sha, logs, ckpt, host, resume_frame=frame, trackers=trackers)
    if out.best is not None:  # a best saved after the checkpoint belongs to the rolled-back part
        out.best.prune_after(frame)
    loop = Loop(
        trial, [out], state, start, compile_s, progress=progress, report=report.on,
        session_graphs=report.session_graphs, on_chunk=on_chunk,
    )  # fmt: skip
    return loop.run()[0]


STALE = (
    "checkpoints", "best", "graphs", TABLE, "trial_summary.json", "trial_metrics.json",
    "error.txt",
)  # fmt: skip


def start_over(
    run_dir: Path, spec: Spec, keys: Any, why: str, progress: bool, report: Reporting,
    on_chunk: ChunkHook | None,
) -> RunResult:  # fmt: skip
    """A run without a usable checkpoint (killed before its first one, or every one
    unreadable and moved to ``checkpoints_corrupt/``) trains again in place from frame 0
    with its saved seeds, which reproduces it exactly. A run that had finished keeps its
    results instead: its summary is marked and the error says how to train it again."""
    done = run_dir / "trial_summary.json"
    if done.is_file():
        summary = json.loads(done.read_text())
        summary["status"] = "checkpoints_unreadable"
        done.write_text(json.dumps(summary, indent=2))
        raise CheckpointError(
            f"{why}; the run had finished and its results are kept (trial_summary.json "
            f"marks it); to train it again: python -m jaxlab train {run_dir}/spec.yaml"
        )
    warn(f"{why}: training {run_dir} again from frame 0 with its saved seeds")
    stale = [run_dir / n for n in STALE]
    stale += [*run_dir.glob("session_*"), *run_dir.glob("tb_*")]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return train(
        spec, keys=keys, run_dir=run_dir, progress=progress, report=report.on,
        session_graphs=report.session_graphs, on_chunk=on_chunk,
    )  # fmt: skip


def finished_summary(
    run_dir: Path,
    prov: dict[str, Any],
    spec: Spec,
    ckpt: Checkpointer,
    host: HostState,
    frame: int,
    report: Reporting,
) -> dict[str, Any]:
    """The summary of a run whose last checkpoint is its last chunk, written (with the
    report) when the run was killed before it wrote its own."""
    done = run_dir / "trial_summary.json"
    if done.is_file():
        summary = json.loads(done.read_text())
        ckpt.close()
        return summary
    out = TrialOutputs(spec, run_dir, prov.get("git_sha"), None, ckpt, host)
    summary = out.summary(frame, 0.0, None)
    out.close()
    done.write_text(json.dumps(summary, indent=2))
    if report.on:
        write_report_safely(run_dir, report.session_graphs)
    return summary


def reseeded_trial(trial: Trial, keys: Any, state: Any) -> Trial:
    """``trial`` again for an env whose episodes restart on resume (EnvPool, whose pools
    are seeded when made): its spec's env seed drawn from ``state``'s checkpointed RNG
    keys (:func:`jaxlab.envs.resumed_params`), so the pools it makes start new episodes
    rather than replay the run's first ones."""
    spec = trial.spec
    params = resumed_params(spec.env.name, spec.env.params, jax.device_get(state.key))
    spec = dataclasses.replace(spec, env=dataclasses.replace(spec.env, params=params))
    return Trial(spec, keys)


def record_resume(
    run_dir: Path, prov: dict[str, Any], frame: int, extra: dict[str, Any] | None = None
) -> str | None:
    """Append this resume (time, frame, git SHA, and ``extra``: a restarted env's new
    ``env_seed``) to ``provenance.json``; returns the SHA."""
    sha = git_info()["sha"]
    prov.setdefault("resumes", []).append(
        {"at": datetime.now().isoformat(timespec="seconds"), "frame": frame, "git_sha": sha}
        | (extra or {})
    )
    (run_dir / "provenance.json").write_text(json.dumps(prov, indent=2))
    return sha
