"""Publish a finished (or partly finished) benchmark into the docs.

    .venv/bin/python scripts/publish_benchmark.py data/benchmark_classic_<timestamp> \\
        docs/BENCHMARKS.md --graphs docs/benchmarks/classic --note "how it was run"

Rebuilds the benchmark's report from its Trials (``write_benchmark_report``), then writes
``benchmark.md`` to the target with the graphs copied next to it (links rewritten) and
the note, plus a line per Trial that has not finished, under the title.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from jaxlab.analysis.benchmark import write_benchmark_report
from jaxlab.experiment.plan import ExperimentPlan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", type=Path, help="a benchmark folder")
    parser.add_argument("out", type=Path, help="the Markdown file to write")
    parser.add_argument("--graphs", type=Path, required=True, help="folder for the graphs")
    parser.add_argument("--note", default="", help="text under the title (Markdown)")
    args = parser.parse_args()
    plan = ExperimentPlan.load(args.benchmark)
    write_benchmark_report(args.benchmark, plan)
    args.graphs.mkdir(parents=True, exist_ok=True)
    for png in (args.benchmark / "graphs").glob("*.png"):
        shutil.copy2(png, args.graphs / png.name)
    link = Path(os.path.relpath(args.graphs, args.out.parent)).as_posix()
    text = (args.benchmark / "benchmark.md").read_text().replace("](graphs/", f"]({link}/")
    title, _, body = text.partition("\n")
    pending = [n for n in plan.settings if n not in plan.status]
    extra = [args.note] if args.note else []
    if pending:
        extra.append(
            f"Not run yet ({len(pending)} Trials): " + ", ".join(f"`{n}`" for n in pending) + "."
        )
    args.out.write_text("\n\n".join([title, *extra]) + "\n" + body)
    print(f"wrote {args.out} and {len(list(args.graphs.glob('*.png')))} graphs in {args.graphs}")


if __name__ == "__main__":
    main()
