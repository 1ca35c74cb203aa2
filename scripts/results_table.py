"""Markdown rows of the README's results table from finished runs.

    python scripts/results_table.py data/<run>/ [data/<run>/ ...]

One row per run directory, from its ``spec.yaml`` and ``trial_summary.json``: algorithm,
environment, spec file name, frames per session, final return mean ± std over sessions
(and each session's), best greedy eval return, training wall-clock after compilation
(compile time), env-steps/s over all sessions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

HEADER = (
    "| algorithm | env | spec | frames / session | final return (per session) | best eval "
    "| wall-clock (compile) | env-steps/s |\n|---|---|---|---|---|---|---|---|"
)


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def row(run: Path) -> str:
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    s = json.loads((run / "trial_summary.json").read_text())
    per = ", ".join(fmt(r) for r in s["final_return_per_session"])
    final = f"{fmt(s['final_return_mean'])} ± {fmt(s['final_return_std'])} ({per})"
    return (
        f"| {spec['agent']['algorithm']['name']} | {spec['env']['name']} | `{spec['name']}` "
        f"| {s['frames_per_session']:,} | {final} | {fmt(s.get('best_eval_return'))} "
        f"| {s['wall_clock_s']:.0f} s ({s['compile_s']:.0f} s) | {s['fps_total']:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    print(HEADER)
    for run in args.runs:
        print(row(run))


if __name__ == "__main__":
    main()
