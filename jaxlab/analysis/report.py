"""Retro reports: every metric and plot of a run rebuilt from what it saved, no training.

``python -m jaxlab report data/<run>`` reads ``spec.yaml``, ``provenance.json`` and
``metrics.csv`` (every session's rows; older runs' ``session_<k>/metrics.csv`` too), and writes ``trial_metrics.json`` plus ``graphs/`` (a session
graph for each of the first ``meta.detailed_sessions`` sessions, at most
:data:`SESSION_GRAPHS`, and the trial graph, which draws every session). It works on
finished and interrupted runs alike (sessions may have different lengths). An Experiment
directory (a folder whose subfolders are runs) also gets ``experiment_table.csv``
(varied hyperparameters and trial metrics, best first), ``experiment_graph.png`` and
``best_spec.yaml``. ``train`` calls :func:`write_report` at the end of every run.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from jaxlab.algorithms import get_algorithm
from jaxlab.analysis.baselines import random_baseline
from jaxlab.analysis.metrics import experiment_table, trial_metrics
from jaxlab.analysis.plots import plot_experiment, plot_session, plot_trial
from jaxlab.config.parse import build, flatten, varied_keys
from jaxlab.logging.table import Curves, has_rows, read_curves, row_sources
from jaxlab.spec import SpecError
from jaxlab.spec.schema import EnvSpec

GRAPHS = "graphs"
# At most this many session graphs per run (fewer where the spec's
# ``meta.detailed_sessions`` says so): each takes ~1-2 s of host time, so a 4096-seed
# Trial would otherwise spend hours and write thousands of files (the trial graph has
# them all).
SESSION_GRAPHS = 8


def is_run(path: Path) -> bool:
    return (path / "spec.yaml").is_file() and has_rows(path)


def run_curves(run_dir: Path, raw_spec: dict[str, Any]) -> list[Curves]:
    """Each session's curves of ``run_dir`` (:func:`jaxlab.logging.table.read_curves`),
    one per session of the spec's ``meta.max_session`` even before its first row."""
    sessions = (raw_spec.get("meta") or {}).get("max_session")
    return read_curves(run_dir, sessions if isinstance(sessions, int) else None)


def grad_steps_per_frame(raw_spec: dict[str, Any]) -> float | None:
    """Gradient steps per env frame, from a run's resolved spec (None if the algorithm does
    not say). Only the algorithm and env sections are read: parsing the whole spec would
    build the env to check it (6 s for a Playground task)."""
    try:
        section = dict(raw_spec["agent"]["algorithm"])
        algo = build(get_algorithm(section["name"]).config_cls, section, "agent.algorithm")
        env = build(EnvSpec, dict(raw_spec["env"]), "env")
    except (SpecError, KeyError, TypeError):
        return None
    steps = getattr(algo, "grad_steps_per_update", None)
    return None if steps is None else steps() / algo.frames_per_update(SimpleNamespace(env=env))


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Spec, provenance, status and each session's curves of a run directory."""
    run_dir = Path(run_dir)
    if not is_run(run_dir):
        raise FileNotFoundError(f"{run_dir} is not a jaxlab run (no spec.yaml/metrics.csv)")
    raw = yaml.safe_load((run_dir / "spec.yaml").read_text())
    prov_path = run_dir / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    summary_path = run_dir / "trial_summary.json"
    status = "running or killed"
    if summary_path.is_file():
        status = json.loads(summary_path.read_text()).get("status", "complete")
    sessions = run_curves(run_dir, raw)
    return {"dir": run_dir, "spec": raw, "provenance": prov, "status": status, "sessions": sessions}


def title_of(run: dict[str, Any]) -> str:
    sha = run["provenance"].get("git_sha") or "no-sha"
    dirty = "+dirty" if run["provenance"].get("git_dirty") else ""
    n = len(run["sessions"])
    return f"{run['spec']['name']} · {n} session{'s' * (n != 1)} · {sha[:7]}{dirty}"


def analyze(run: dict[str, Any]) -> dict[str, Any]:
    """The trial metrics of a loaded run (see :mod:`jaxlab.analysis.metrics`)."""
    env = run["spec"]["env"]["name"]
    baseline = random_baseline(env)
    curves = [(s["frame"], s["return"]) for s in run["sessions"]]
    # the flag is sticky, so a session diverged when its last logged row says so
    diverged = [
        bool(s["diverged"][-1:].sum() > 0) if "diverged" in s else False for s in run["sessions"]
    ]
    metrics = trial_metrics(curves, baseline, grad_steps_per_frame(run["spec"]), diverged)
    frames = [int(s["frame"][-1]) if s["frame"].size else 0 for s in run["sessions"]]
    return {
        "spec_name": run["spec"]["name"],
        "env": env,
        "random_baseline": baseline,
        "git_sha": run["provenance"].get("git_sha"),
        "status": run["status"],
        "frames_per_session": frames,
        **metrics,
    }


def graphed_sessions(raw_spec: dict[str, Any], session_graphs: int = SESSION_GRAPHS) -> int:
    """How many sessions (the first ones) of a run get a graph: its spec's
    ``meta.detailed_sessions`` (:data:`SESSION_GRAPHS` for a spec from before that key),
    at most ``session_graphs`` (0 for the Trials of a search or benchmark)."""
    meta = raw_spec.get("meta") or {}
    return max(0, min(int(meta.get("detailed_sessions", SESSION_GRAPHS)), session_graphs))


def write_report(
    run_dir: str | Path, plots: bool = True, session_graphs: int = SESSION_GRAPHS
) -> dict[str, Any]:
    """Rebuild ``trial_metrics.json`` and ``graphs/*.png`` of one run (the trial graph, and
    a graph of each of its first :func:`graphed_sessions` sessions: ``detailed_sessions``,
    at most ``session_graphs``); returns the metrics."""
    run = load_run(run_dir)
    metrics = analyze(run)
    out = run["dir"]
    (out / "trial_metrics.json").write_text(json.dumps(metrics, indent=2))
    if plots:
        title, baseline = title_of(run), metrics["random_baseline"]
        drawn = graphed_sessions(run["spec"], session_graphs)
        for k, curves in enumerate(run["sessions"][:drawn]):
            plot_session(curves, out / GRAPHS / f"session_{k}.png", title=f"{title} · session {k}")
        plot_trial(run["sessions"], out / GRAPHS / "trial.png", title=title, baseline=baseline)
    return metrics


def current_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``trial_metrics.json`` if it is newer than every file it is made from."""
    path = run_dir / "trial_metrics.json"
    if not path.is_file():
        return None
    sources = [run_dir / "spec.yaml", *row_sources(run_dir)]
    if any(src.stat().st_mtime_ns > path.stat().st_mtime_ns for src in sources):
        return None
    return json.loads(path.read_text())


def write_experiment_report(
    exp_dir: str | Path, plots: bool = True, reuse: bool = False
) -> list[dict[str, Any]]:
    """Report every trial folder of an Experiment, then its table, graph and best spec.

    ``reuse``: keep a trial's report when it is newer than the trial's CSVs (``search``
    has each trial report itself, in its Ray worker, as it finishes).
    """
    exp_dir = Path(exp_dir)
    # a trial that failed (error.txt) may hold a partial run: it is not ranked
    trial_dirs = sorted(
        p for p in exp_dir.iterdir() if p.is_dir() and is_run(p) and not (p / "error.txt").exists()
    )
    if not trial_dirs:
        raise FileNotFoundError(f"{exp_dir} holds no trial runs")
    runs = [load_run(d) for d in trial_dirs]
    varied = varied_keys([r["spec"] for r in runs])
    trials = []
    for run in runs:
        metrics = (reuse and current_metrics(run["dir"])) or write_report(run["dir"], plots)
        flat = flatten(run["spec"])
        trials.append(({"trial": run["dir"].name, **{k: flat.get(k) for k in varied}}, metrics))
    rows = experiment_table(trials)
    with open(exp_dir / "experiment_table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    best = exp_dir / rows[0]["trial"] / "spec.yaml"
    (exp_dir / "best_spec.yaml").write_text(best.read_text())
    if plots and varied:
        scored = [r for r in rows if r["score"] is not None]
        title = f"{exp_dir.name} · {len(rows)} trials"
        plot_experiment(scored, varied, exp_dir / "experiment_graph.png", title=title)
    return rows


def format_report(metrics: dict[str, Any]) -> str:
    """A summary table of a trial's metrics, one row per session plus the trial row."""

    def cell(v: Any) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cols = ("final_return", "strength", "max_strength", "final_strength", "sample_efficiency")
    cols += ("training_efficiency", "stability")
    header = ["session", *cols]
    lines = [header]
    for k, m in enumerate(metrics["sessions"]):
        tag = f"{k}{' (diverged)' if metrics['diverged'][k] else ''}"
        lines.append([tag, *(cell(m[c]) for c in cols)])
    trial = {**metrics, "final_return": metrics["final_return_mean"]}
    lines.append(["trial", *(cell(trial[c]) for c in cols)])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in lines
    )
    mean, std, iqm = (
        metrics[k] for k in ("final_return_mean", "final_return_std", "final_return_iqm")
    )
    ci = metrics.get("final_return_iqm_ci")
    iqm_text = cell(iqm) + (f" (95% CI {cell(ci[0])} to {cell(ci[1])})" if ci else "")
    extra = (
        f"\n{metrics['spec_name']} on {metrics['env']} ({metrics['status']}): final return "
        f"{cell(mean)} ± {cell(std)}, IQM {iqm_text}, consistency {cell(metrics['consistency'])}, "
        f"random baseline {cell(metrics['random_baseline'])}"
    )
    return text + extra


def format_experiment(summary: dict[str, Any], exp_dir: Path) -> str:
    """The summary printed at the end of a search: counts, then the top of the table."""
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["status_counts"].items()))
    lines = [f"experiment {summary['spec_name']}: {summary['trials']} trials ({counts})"]
    table = summary["table"]
    if table:
        keys = [k for k in table[0] if k != "trial"][:7]
        heads = [".".join(k.split(".")[-2:]) if "." in k else k for k in keys]
        widths = [max(len(h), 9) for h in heads]
        lines.append(
            "  "
            + "  ".join(
                ["trial".ljust(10)] + [h.rjust(w) for h, w in zip(heads, widths, strict=True)]
            )
        )
        for row in table[:10]:
            cells = [_cell(row[k]).rjust(w) for k, w in zip(keys, widths, strict=True)]
            lines.append("  " + "  ".join([row["trial"].ljust(10)] + cells))
        lines.append(f"best: {summary['best_trial']} -> {exp_dir / 'best_spec.yaml'}")
    if summary["unfinished"]:
        lines.append(f"unfinished: resume with: python -m jaxlab search {exp_dir}/")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
