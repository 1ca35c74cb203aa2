"""The benchmark report: one row per (algorithm label, env) over all its Trials' sessions.

Scores are each session's final training return (the mean return of the episodes that
ended in the last log chunk where any ended). Beside it, a row gives the sessions' last
greedy evaluation (the final chunk always evaluates when ``meta.eval_frequency`` is set):
where an episode outlasts a log chunk, the final return can be that of an episode begun
long before, and the evaluation shows the final policy from fresh starts. A row pools
the sessions of its Trials (one per random seed): mean ± std, and the IQM with its 95%
bootstrap CI (rliable). Across envs, scores are normalised by the env's random-policy
return and the suite's reference score (:func:`jaxlab.analysis.stats.normalise`) and
aggregated per algorithm over the envs it completed: IQM, median, mean, optimality gap,
performance profiles, and the probability of improvement between algorithms on the envs
they share. Writes ``benchmark.md``, ``benchmark.csv``, ``benchmark.json`` and
``graphs/`` into the benchmark folder.
"""

from __future__ import annotations

import csv
import json
import platform
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from jaxlab.analysis.baselines import random_baseline
from jaxlab.analysis.benchmark_plots import (
    plot_aggregates,
    plot_env_curves,
    plot_improvement,
    plot_profiles,
)
from jaxlab.analysis.stats import (
    aggregate_estimates,
    iqm_ci,
    normalise,
    performance_profiles,
    probability_of_improvement,
)
from jaxlab.logging.table import read_curves
from jaxlab.spec.suite import Band, Reference, bands_of, published_of, references_of

COLUMNS = (
    "algorithm", "env", "trials", "sessions", "final_return_mean", "final_return_std",
    "iqm", "iqm_ci_low", "iqm_ci_high", "final_eval_mean", "final_eval_std",
    "frames_per_session", "env_steps_per_s",
    "compile_s", "wall_clock_s", "status", "band_low", "band_high", "in_band", "git_sha",
)  # fmt: skip


def _trial(folder: Path, planned: dict[str, Any], status: str) -> dict[str, Any]:
    """One Trial's outcome: its summary's numbers and each session's curves."""
    out = {**planned, "name": folder.name, "status": status, "summary": None, "curves": []}
    path = folder / "trial_summary.json"
    if status == "complete" and path.is_file():
        out["summary"] = json.loads(path.read_text())
        out["curves"] = read_curves(folder)
    return out


def _mean(values: list[float | None]) -> float | None:
    x = [v for v in values if v is not None]
    return float(np.mean(x)) if x else None


def _row(label: str, env: str, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The table row of one (label, env) from its Trials (finished or not)."""
    done = [t["summary"] for t in trials if t["summary"] is not None]
    scores = [r for s in done for r in s["final_return_per_session"] if r is not None]
    evals = [e for s in done for e in s.get("eval_return_per_session", []) if e is not None]
    counts: dict[str, int] = defaultdict(int)
    for t in trials:
        counts[t["status"]] += 1
    shas = sorted({s["git_sha"][:7] for s in done if s.get("git_sha")})
    return {
        "algorithm": label,
        "env": env,
        "trials": len(trials),
        "sessions": len(scores),
        "final_return_mean": float(np.mean(scores)) if scores else None,
        "final_return_std": float(np.std(scores)) if scores else None,
        **iqm_ci(scores),
        "final_eval_mean": float(np.mean(evals)) if evals else None,
        "final_eval_std": float(np.std(evals)) if evals else None,
        "frames_per_session": done[0]["frames_per_session"] if done else None,
        "env_steps_per_s": _mean([s.get("fps_total") for s in done]),
        "compile_s": _mean([s.get("compile_s") for s in done]),
        "wall_clock_s": _mean([s.get("wall_clock_s") for s in done]),
        "status": ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        "git_sha": " ".join(shas),
        "scores": scores,
    }


def check_band(row: dict[str, Any], band: Band | None) -> dict[str, Any]:
    """The row's band and whether its IQM lies in it (None: no band, or no score yet)."""
    if band is None:
        return {"band_low": None, "band_high": None, "in_band": None}
    inside = None
    if row["iqm"] is not None:
        inside = row["iqm"] >= band.low and (band.high is None or row["iqm"] <= band.high)
    return {"band_low": band.low, "band_high": band.high, "in_band": inside}


def collect(exp_dir: Path, plan: Any) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The Trials of ``plan`` grouped by row (label, env), in suite order."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for name, planned in plan.settings.items():
        status = plan.status.get(name, "unfinished")
        rows[(planned["label"], planned["env"])].append(_trial(exp_dir / name, planned, status))
    return rows


def score_matrices(
    rows: list[dict[str, Any]], references: dict[str, Reference]
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per algorithm: the envs it has scores and a reference for, and its normalised
    scores ``[runs, envs]`` (runs cut to the fewest any of its envs has)."""
    by_algo: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for row in rows:
        ref = references.get(row["env"])
        random = (
            None
            if ref is None
            else (ref.random if ref.random is not None else random_baseline(row["env"]))
        )
        if ref is None or random is None or not row["scores"]:
            continue
        by_algo[row["algorithm"]][row["env"]] = normalise(row["scores"], random, ref.score)
    out = {}
    for algo, envs in by_algo.items():
        runs = min(v.size for v in envs.values())
        out[algo] = (list(envs), np.stack([v[:runs] for v in envs.values()], axis=1))
    return out


def aggregate(matrices: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, Any]:
    """rliable's aggregate estimates per algorithm (over the envs it has), and the
    probability of improvement of each pair of algorithms on the envs both have."""
    pairs, shared = {}, {}
    names = list(matrices)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            (ex, mx), (ey, my) = matrices[x], matrices[y]
            common = [e for e in ex if e in ey]
            if common:
                pairs[f"{x},{y}"] = (
                    mx[:, [ex.index(e) for e in common]],
                    my[:, [ey.index(e) for e in common]],
                )
                shared[f"{x},{y}"] = common
    scores = {a: m for a, (_, m) in matrices.items()}
    return {
        "envs": {a: e for a, (e, _) in matrices.items()},
        "estimates": aggregate_estimates(scores) if scores else {},
        "improvement": probability_of_improvement(pairs),
        "improvement_envs": shared,
    }


def write_benchmark_report(exp_dir: Path, plan: Any) -> dict[str, Any]:
    """Tables, JSON and graphs of the benchmark in ``exp_dir`` (finished Trials only)."""
    references, published = references_of(plan.spec), published_of(plan.spec)
    trials, bands = collect(exp_dir, plan), bands_of(plan.spec)
    rows = [_row(label, env, ts) for (label, env), ts in trials.items()]
    rows = [{**r, **check_band(r, bands.get((r["algorithm"], r["env"])))} for r in rows]
    matrices = score_matrices(rows, references)
    agg = aggregate(matrices)
    graphs = write_graphs(exp_dir / "graphs", trials, matrices, agg, plan.spec_name)
    with open(exp_dir / "benchmark.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    out_of_band = [f"{r['algorithm']} on {r['env']}" for r in rows if r["in_band"] is False]
    report = {"rows": rows, "aggregate": agg, "graphs": graphs, "out_of_band": out_of_band}
    (exp_dir / "benchmark.json").write_text(json.dumps(report, indent=2))
    text = format_markdown(plan, rows, agg, references, published, graphs)
    (exp_dir / "benchmark.md").write_text(text)
    return report


def write_graphs(
    out: Path, trials: dict[tuple[str, str], list[dict[str, Any]]],
    matrices: dict[str, tuple[list[str], np.ndarray]], agg: dict[str, Any], name: str,
) -> list[str]:  # fmt: skip
    """Per-env curves and the aggregate graphs; returns their paths relative to the folder."""
    by_env: dict[str, dict[str, list[Any]]] = defaultdict(dict)
    for (label, env), ts in trials.items():
        curves = [c for t in ts for c in t["curves"]]
        if curves:
            by_env[env][label] = curves
    paths = []
    for env, rows in by_env.items():
        file = out / f"curves_{env.replace('/', '_')}.png"
        paths.append(
            plot_env_curves(rows, file, title=f"{name} · {env}", baseline=random_baseline(env))
        )
    if agg["estimates"]:
        paths.append(
            plot_aggregates(
                agg["estimates"], out / "aggregate.png", title=f"{name}: normalised scores"
            )
        )
        scores = {a: m for a, (_, m) in matrices.items()}
        top = max(1.0, max(float(np.nanmax(m)) for m in scores.values()))
        taus = np.linspace(min(0.0, min(float(np.nanmin(m)) for m in scores.values())), top, 41)
        profiles, cis = performance_profiles(scores, taus)
        paths.append(
            plot_profiles(
                profiles,
                cis,
                taus,
                out / "performance_profile.png",
                title=f"{name}: performance profiles",
            )
        )
    if agg["improvement"]:
        paths.append(
            plot_improvement(
                agg["improvement"],
                out / "probability_of_improvement.png",
                title=f"{name}: P(X > Y) on the envs both ran",
            )
        )
    return [str(Path("graphs") / Path(p).name) for p in paths]


def _num(v: Any, digits: int = 1) -> str:
    """``1,234.5``; returns under 10 in magnitude (Catch's) get 3 decimals."""
    if v is None:
        return "n/a"
    return f"{v:.3f}" if digits == 1 and abs(v) < 10 else f"{v:,.{digits}f}"


def format_markdown(
    plan: Any, rows: list[dict[str, Any]], agg: dict[str, Any],
    references: dict[str, Reference], published: Any, graphs: list[str],
) -> str:  # fmt: skip
    """``benchmark.md``: provenance, the results table, published returns, aggregates."""
    lines = [
        f"# Benchmark `{plan.spec_name}`",
        "",
        f"git {plan.git_sha or 'unknown'}{' (dirty tree)' if plan.git_dirty else ''}, started "
        f"{plan.started}, jax {plan.versions.get('jax', '?')}, {platform.machine()} "
        f"{platform.processor() or ''}".rstrip()
        + ".",
        "Final return: each session's mean training return over the episodes that ended in "
        "the last log chunk where any ended; IQM with its 95% stratified-bootstrap CI "
        "(rliable) over every session of the row's Trials. Final eval: each session's "
        "greedy evaluation at its last frame, from fresh starts (n/a: no evaluation).",
        "",
        "| algorithm | env | final return (mean ± std) | IQM [95% CI] | final eval (mean ± std) | sessions | frames / session | env-steps/s | compile s | status | git |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = f"{_num(r['iqm'])} [{_num(r['iqm_ci_low'])}, {_num(r['iqm_ci_high'])}]"
        if r["in_band"] is not None:
            band = f"{_num(r['band_low'])}, {_num(r['band_high']) if r['band_high'] is not None else '∞'}"
            ci += f" {'in' if r['in_band'] else '**OUTSIDE**'} band [{band}]"
        mean = f"{_num(r['final_return_mean'])} ± {_num(r['final_return_std'])}"
        ev = "n/a"
        if r["final_eval_mean"] is not None:
            ev = f"{_num(r['final_eval_mean'])} ± {_num(r['final_eval_std'])}"
        lines.append(
            f"| {r['algorithm']} | {r['env']} | {mean} | {ci} | {ev} | {r['sessions']} | "
            f"{_num(r['frames_per_session'], 0)} | {_num(r['env_steps_per_s'], 0)} | "
            f"{_num(r['compile_s'], 2)} | {r['status']} | {r['git_sha']} |"
        )
    lines += _published_lines(rows, published) + _aggregate_lines(agg, references)
    lines += ["", "## Graphs", ""] + [f"![{g}]({g})" for g in graphs]
    return "\n".join(lines) + "\n"


def _published_lines(rows: list[dict[str, Any]], published: Any) -> list[str]:
    if not published:
        return []
    ours = {(r["algorithm"], r["env"]): r for r in rows}
    lines = [
        "",
        "## Published returns",
        "",
        "| env | algorithm | published | at frames | source | jaxlab IQM [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for p in published:
        r = ours.get((p.algorithm, p.env))
        mine = (
            "not run"
            if r is None
            else f"{_num(r['iqm'])} [{_num(r['iqm_ci_low'])}, {_num(r['iqm_ci_high'])}]"
        )
        lines.append(
            f"| {p.env} | {p.algorithm} | {_num(p.value)} | {_num(p.frames, 0)} | {p.source} | {mine} |"
        )
    return lines


def _aggregate_lines(agg: dict[str, Any], references: dict[str, Reference]) -> list[str]:
    if not agg["estimates"]:
        return []
    lines = ["", "## Aggregate (normalised: 0 = random policy, 1 = reference)", ""]
    lines += [
        f"- {env}: reference {_num(ref.score)} ({ref.source})" for env, ref in references.items()
    ]
    lines += [
        "",
        "| algorithm | envs | IQM | median | mean | optimality gap |",
        "|---|---|---|---|---|---|",
    ]
    for algo, est in agg["estimates"].items():
        cells = [f"{e['point']:.3f} [{e['low']:.3f}, {e['high']:.3f}]" for e in est.values()]
        lines.append(f"| {algo} | {len(agg['envs'][algo])} | " + " | ".join(cells) + " |")
    if agg["improvement"]:
        lines += ["", "Probability of improvement, on the envs both ran:", ""]
        lines += ["| X | Y | envs | P(X > Y) [95% CI] |", "|---|---|---|---|"]
        for pair, p in agg["improvement"].items():
            x, y = pair.split(",")
            envs = ", ".join(agg["improvement_envs"][pair])
            cell = f"{p['point']:.3f} [{p['low']:.3f}, {p['high']:.3f}]"
            lines.append(f"| {x} | {y} | {envs} | {cell} |")
    return lines
