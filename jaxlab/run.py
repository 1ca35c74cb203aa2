"""The impure shell: run a Trial's compiled chunks and do all I/O between them.

Per log point (one chunk = ``meta.log_frequency`` frames per session): a CSV row and
TensorBoard scalars per session, the progress bar, an Orbax checkpoint of the full Trial
state; at the end a trial summary (printed and saved as JSON). Nothing here runs inside
``jit``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml
from tqdm import tqdm

from jaxlab.checkpoint import Checkpointer
from jaxlab.logging import SessionWriter
from jaxlab.provenance import device_info, git_info, versions
from jaxlab.spec.schema import Spec
from jaxlab.trial import Trial, episode_means, summarize


class DevCheckError(RuntimeError):
    """A ``dev``-mode sanity check failed (non-finite loss, parameters not changing)."""


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    state: Any


def make_run_dir(spec: Spec, root: str | Path = "data") -> Path:
    """``<root>/<spec name>_<timestamp>``, made unique if two runs start the same second."""
    stamp = datetime.now().strftime("%Y_%m_%d_%H%M%S")
    base = Path(root) / f"{spec.name}_{stamp}"
    path, n = base, 1
    while path.exists():
        path, n = Path(f"{base}_{n}"), n + 1
    path.mkdir(parents=True)
    return path


def write_provenance(spec: Spec, run_dir: Path, trial: Trial) -> dict[str, Any]:
    """Save ``spec.yaml``, ``provenance.json`` and, for a dirty tree, ``git.diff``."""
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    git = git_info()
    if git["dirty"]:
        (run_dir / "git.diff").write_text(git["diff"])
    prov = {
        "spec_name": spec.name,
        "git_sha": git["sha"],
        "git_dirty": git["dirty"],
        "versions": versions(),
        "device": device_info(),
        "random_seed": spec.meta.random_seed,
        "session_keys": np.asarray(jax.random.key_data(trial.keys)).tolist(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    (run_dir / "provenance.json").write_text(json.dumps(prov, indent=2))
    return prov


def write_rows(
    writers: list[SessionWriter], metrics: dict[str, np.ndarray], **common: float
) -> np.ndarray:
    """Write one log row per session; returns the chunk's mean episode return ``[S]``."""
    ret, length = episode_means(metrics)
    for k, writer in enumerate(writers):
        row = {key: float(v[k]) for key, v in metrics.items()}
        row.update(common)
        row.update({"return": ret[k], "episode_length": length[k]})
        row["episodes"] = int(metrics["ep_count"][k])
        writer.write(row)
    return ret


def _dev_checks(metrics: dict[str, np.ndarray], before: Any, after: Any, chunk: int) -> None:
    for key, value in metrics.items():
        if not np.all(np.isfinite(value)):
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
) -> RunResult:
    """Train one Trial of ``spec``; all outputs go under a new ``<root>/<name>_<time>/``."""
    trial = Trial(spec, keys)
    run_dir = make_run_dir(spec, root)
    prov = write_provenance(spec, run_dir, trial)
    d = trial.derived
    writers = [SessionWriter(run_dir / f"session_{k}") for k in range(trial.num_sessions)]
    ckpt = Checkpointer(
        run_dir / "checkpoints",
        keep=spec.meta.checkpoint_keep,
        metadata={"spec": spec.to_dict(), "git_sha": prov["git_sha"]},
    )
    setup_start = time.perf_counter()
    state = trial.init()
    trial.compile(state)
    compile_s = time.perf_counter() - setup_start  # init (compiled too) + the chunk
    final_returns = np.full(trial.num_sessions, np.nan)
    bar = tqdm(
        total=d.total_frames,
        unit="frame",
        unit_scale=True,
        disable=not progress,
        desc=spec.name,
        dynamic_ncols=True,
    )
    start = last = time.perf_counter()
    frames_done = last_ckpt = 0
    ckpt_every = spec.meta.checkpoint_frequency
    params_before = jax.device_get(state.params) if dev else None
    # Pipelined: chunk i+1 is dispatched before chunk i's metrics are read and written,
    # so host I/O overlaps device compute. A checkpoint of chunk i's state is taken
    # before that dispatch, because the dispatch donates the state's buffers.
    state, pending = trial.dispatch(state, 0)
    try:
        for i in range(d.num_chunks):
            frame = trial.frames_after(i)
            if frame // ckpt_every > last_ckpt // ckpt_every or i == d.num_chunks - 1:
                meta = {"spec": spec.to_dict(), "git_sha": prov["git_sha"], "chunk": i}
                ckpt.save(frame, state, meta)
                last_ckpt = frame
            params_after = jax.device_get(state.params) if dev else None
            device_metrics = pending
            if i + 1 < d.num_chunks:
                state, pending = trial.dispatch(state, i + 1)
            metrics = jax.device_get(device_metrics)
            now = time.perf_counter()
            fps = (frame - frames_done) / max(now - last, 1e-9)
            frames_done, last = frame, now
            ret = write_rows(writers, metrics, frame=frame, wall_time=now - start, fps=fps)
            final_returns = np.where(np.isfinite(ret), ret, final_returns)
            if dev:
                _dev_checks(metrics, params_before, params_after, i)
                params_before = params_after
            bar.update(frame - bar.n)
            bar.set_postfix(
                fps=f"{fps * trial.num_sessions:,.0f}",
                ret=f"{np.nanmean(ret):.1f}" if np.isfinite(ret).any() else "n/a",
                refresh=False,
            )
    finally:
        bar.close()
        ckpt.close()
        for writer in writers:
            writer.close()
    wall = time.perf_counter() - start
    summary = {
        "spec_name": spec.name,
        "sessions": trial.num_sessions,
        **summarize(final_returns),
        "frames_per_session": d.total_frames,
        "frames_total": d.total_frames * trial.num_sessions,
        "wall_clock_s": wall,
        "compile_s": compile_s,
        "fps_total": d.total_frames * trial.num_sessions / wall,
        "fps_per_session": d.total_frames / wall,
        "git_sha": prov["git_sha"],
    }
    (run_dir / "trial_summary.json").write_text(json.dumps(summary, indent=2))
    return RunResult(run_dir, summary, state)


def format_summary(summary: dict[str, Any]) -> str:
    mean, std = summary["final_return_mean"], summary["final_return_std"]
    ret = "n/a (no episode ended)" if mean is None else f"{mean:.2f} ± {std:.2f}"
    per = ", ".join("n/a" if r is None else f"{r:.1f}" for r in summary["final_return_per_session"])
    return (
        f"trial {summary['spec_name']}: final return {ret} over {summary['sessions']} sessions "
        f"[{per}]; {summary['frames_per_session']:,} frames/session in "
        f"{summary['wall_clock_s']:.1f}s (compile {summary['compile_s']:.1f}s), "
        f"{summary['fps_total']:,.0f} env-steps/s total"
    )
