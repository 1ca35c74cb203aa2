"""Command line: ``python -m jaxlab MODE SPEC [-s key.path=value ...]``.

Modes: ``train`` (the full Trial; given a run directory instead of a spec, or as
``train@data/<run>``, it resumes that run), ``search`` (an Experiment on Ray Tune: one
Trial per setting of the spec's ``search`` block; given an experiment directory, it
resumes it), ``benchmark`` (a suite of specs x seeds, one Trial each, into a results
table with rliable statistics; given a benchmark directory, it resumes it), ``dev`` (a tiny, extra-checked run of the
same spec: at most two sessions, a few updates, finite losses and moving parameters
asserted), ``enjoy`` (play a trained agent from a run, read-only), ``report`` (rebuild
a run's metrics and graphs from its CSVs) and ``plot`` (overlay several runs). Spec and
checkpoint problems exit with status 2 and one line, before anything is written; a run
stopped by SIGINT/SIGTERM exits with 128 + the signal number after checkpointing.

This module only parses arguments, calls :mod:`jaxlab.api` (the same functions scripts
and notebooks use) and prints the results.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from jaxlab import api
from jaxlab.spec import SpecError

EPILOG = """examples:
  python -m jaxlab train specs/ppo/ppo_cartpole.yaml
  python -m jaxlab train specs/ppo/ppo_cartpole.yaml -s meta.max_session=8 -s env.num_envs=16
  python -m jaxlab dev specs/ppo/ppo_pendulum.yaml
  python -m jaxlab search specs/search/ppo_cartpole_search.yaml
  python -m jaxlab search data/ppo_cartpole_search_2026_01_01_120000/   # resume a search
  python -m jaxlab benchmark benchmarks/suites/classic.yaml
  python -m jaxlab train specs/ppo/ppo_cartpole.yaml --shrink   # tiny smoke run
  python -m jaxlab train data/ppo_cartpole_2026_01_01_120000/   # resume a stopped run
  python -m jaxlab enjoy data/ppo_cartpole_2026_01_01_120000/ --episodes 10 --render
  python -m jaxlab report data/ppo_cartpole_2026_01_01_120000/
  python -m jaxlab plot data/ppo_cartpole_2026_01_01_120000/ data/ppo_cartpole_2026_01_02_090000/
"""


class _Parser(argparse.ArgumentParser):
    """argparse with its refusals on one line (argparse prints the usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jaxlab",
        description="jaxlab: a JAX-accelerated, vectorized deep-RL lab.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True, metavar="MODE")
    helps = {
        "train": "train a Trial (all sessions vmapped, compiled once)",
        "dev": "a tiny, extra-checked run of the spec (<= 2 sessions, a few updates)",
        "search": "an Experiment: one Trial per setting of the spec's search block, on Ray Tune",
    }
    for mode, text in helps.items():
        _add_run_mode(sub, mode, text)
    _add_benchmark(sub)
    _add_tools(sub)
    return parser


def _add_benchmark(sub: Any) -> None:
    text = "a benchmark suite: each row a Trial per seed, then a results table and graphs"
    p = sub.add_parser("benchmark", help=text, description=text)
    p.add_argument("suite", help="a suite YAML (benchmarks/suites/), or a benchmark to resume")
    p.add_argument("--data", default="data", help="output root directory (default: data)")
    p.add_argument("--shrink", action="store_true", help="every Trial at tiny scale (smoke test)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument(
        "--address", help="a Ray cluster to spread the Trials over (default: $RAY_ADDRESS)"
    )


def _add_run_mode(sub: Any, mode: str, text: str) -> None:
    """``train``, ``dev`` or ``search``: a spec, ``-s`` overrides and output options."""
    p = sub.add_parser(mode, help=text, description=text)
    p.add_argument(
        "spec",
        help="a YAML spec"
        + {
            "train": ", or a run directory to resume",
            "search": ", or an experiment to resume",
        }.get(mode, ""),
    )
    p.add_argument(
        "-s",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key path (agent.net.optim.lr=1e-3) or set a ${var} (var=VALUE)",
    )
    p.add_argument("--data", default="data", help="output root directory (default: data)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--no-report", action="store_true", help="skip the end-of-run metrics and graphs"
    )
    if mode in ("train", "search"):
        p.add_argument("--shrink", action="store_true", help="run at tiny scale (smoke test)")
    if mode == "search":
        p.add_argument(
            "--address", help="an existing Ray cluster (default: $RAY_ADDRESS, else local)"
        )


def _add_tools(sub: Any) -> None:
    """``enjoy``, ``report`` and ``plot``: they read runs."""
    text = "play a trained agent's deterministic policy from a run (read-only)"
    p = sub.add_parser("enjoy", help=text, description=text)
    p.add_argument("run", help="a run directory, data/<spec>_<timestamp>/")
    p.add_argument("--session", type=int, default=0, help="which session (seed) (default: 0)")
    p.add_argument("--episodes", type=int, default=10, help="episodes to play (default: 10)")
    p.add_argument("--checkpoint", default="best", help="best (default), latest, or a frame number")
    p.add_argument("--render", action="store_true", help="write a GIF of the first episode")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for the env resets")
    text = "rebuild a run's (or an experiment's) metrics and graphs from its saved CSVs"
    p = sub.add_parser("report", help=text, description=text)
    p.add_argument("run", help="a run directory, or an experiment directory of trial runs")
    p.add_argument("--no-plots", action="store_true", help="metrics only")
    text = "overlay the trial curves of several runs in one graph"
    p = sub.add_parser("plot", help=text, description=text)
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", help="PNG path (default: data/plots/compare_<time>.png)")
    p.add_argument("--title", help="graph title (default: the runs' spec names)")


def _report(args: argparse.Namespace) -> int:
    from jaxlab.analysis.report import format_report

    try:
        result = api.report(args.run, plots=not args.no_plots)
    except FileNotFoundError as err:
        return _fail("report", err)
    if isinstance(result, dict) and "rows" in result:  # a benchmark
        print((Path(args.run) / "benchmark.md").read_text().split("\n## Graphs")[0])
        where = "benchmark.md, benchmark.csv, benchmark.json, graphs/"
    elif isinstance(result, dict):
        print(format_report(result))
        where = "trial_metrics.json" + ("" if args.no_plots else " and graphs/")
    else:
        for row in result:
            print(
                ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                )
            )
        where = "experiment_table.csv, best_spec.yaml, per-trial reports"
    print(f"report written to {Path(args.run)}/ ({where})")
    return 0


def _plot(args: argparse.Namespace) -> int:
    try:
        out = api.plot(args.runs, out=args.out, title=args.title)
    except FileNotFoundError as err:
        return _fail("plot", err)
    print(f"comparison graph written to {out}")
    return 0


def _fail(kind: str, err: BaseException | str, code: int = 2) -> int:
    print(f"jaxlab: {kind}: {err}", file=sys.stderr)
    return code


def _finish(run: api.Run) -> int:
    from jaxlab.runtime.run import format_summary

    summary = run.summary
    print(format_summary(summary))
    print(f"run saved to {run.run_dir}")
    if summary.get("status") == "interrupted":
        name = summary["stop_signal"]
        print(
            f"jaxlab: stopped by {name} at frame {summary['frames_per_session']:,} of "
            f"{summary['frames_planned']:,}; checkpoint saved. Resume with:\n"
            f"  python -m jaxlab train {run.run_dir}/",
            file=sys.stderr,
        )
        return 128 + int(getattr(signal.Signals, name))
    return 0


def _enjoy(args: argparse.Namespace) -> int:
    from jaxlab.runtime.checkpoint import CheckpointError
    from jaxlab.tools.enjoy import format_enjoy

    try:
        record = api.enjoy(
            args.run,
            session=args.session,
            episodes=args.episodes,
            checkpoint=args.checkpoint,
            render=args.render,
            seed=args.seed,
        )
    except (CheckpointError, SpecError, ValueError) as err:
        return _fail("enjoy", err)
    print(format_enjoy(record))
    return 0


def _resume(args: argparse.Namespace) -> int:
    from jaxlab.runtime.checkpoint import CheckpointError
    from jaxlab.runtime.resume import is_run_dir

    if not is_run_dir(args.spec):
        return _fail("resume", f"{args.spec} is not a run directory (no spec.yaml/checkpoints)")
    if args.overrides or args.shrink:
        flag = "-s" if args.overrides else "--shrink"
        return _fail(
            "resume", f"{flag} cannot be used when resuming; edit {args.spec}/spec.yaml instead"
        )
    try:
        return _finish(
            api.resume(args.spec, progress=not args.no_progress, report=not args.no_report)
        )
    except SpecError as err:
        return _fail("spec error", err)
    except CheckpointError as err:
        return _fail("checkpoint error", err)


def _search(args: argparse.Namespace) -> int:
    from jaxlab.analysis.report import format_experiment
    from jaxlab.experiment.driver import is_experiment_dir

    if Path(args.spec).is_dir():
        if not is_experiment_dir(args.spec):
            return _fail("search", f"{args.spec} is not an experiment (no experiment.json)")
        if args.overrides or args.shrink:
            flag = "-s" if args.overrides else "--shrink"
            return _fail("search", f"{flag} cannot be used when resuming an experiment")
    try:
        result = api.search(
            args.spec, args.data, overrides=args.overrides, shrink=args.shrink, address=args.address
        )
    except SpecError as err:
        return _fail("spec error", err)
    print(format_experiment(result.summary, result.exp_dir))
    print(f"experiment saved to {result.exp_dir}")
    if not result.summary["unfinished"]:
        return 0
    return 128 + int(getattr(signal.Signals, result.summary.get("stop_signal") or "SIGINT"))


def _benchmark(args: argparse.Namespace) -> int:
    if Path(args.suite).is_dir() and args.shrink:
        return _fail("benchmark", "--shrink cannot be used when resuming a benchmark")
    try:
        result = api.benchmark(
            args.suite, args.data, shrink=args.shrink, address=args.address,
            progress=not args.no_progress,
        )  # fmt: skip
    except api.UsageError as err:
        return _fail("benchmark", err)
    summary = result.summary
    print((result.exp_dir / "benchmark.md").read_text().split("\n## Graphs")[0])
    for name in summary["failed"]:
        print(f"jaxlab: {name} failed: see {result.exp_dir / name / 'error.txt'}", file=sys.stderr)
    print(f"benchmark saved to {result.exp_dir}")
    for row in summary["out_of_band"]:
        print(f"jaxlab: {row}: IQM outside its recorded band", file=sys.stderr)
    if not summary["unfinished"]:
        return 1 if summary["out_of_band"] else 0
    return 128 + int(getattr(signal.Signals, summary.get("stop_signal") or "SIGINT"))


def _train(args: argparse.Namespace) -> int:
    """``train`` and ``dev`` of a spec file (a run directory resumes: :func:`_resume`)."""
    from jaxlab.runtime.loop import DevCheckError

    try:
        run = api.train(
            args.spec,
            args.data,
            overrides=args.overrides,
            shrink=getattr(args, "shrink", False),
            dev=args.mode == "dev",
            progress=not args.no_progress,
            report=not args.no_report,
        )
    except SpecError as err:
        return _fail("spec error", err)
    except DevCheckError as err:
        return _fail("dev check failed", err, 1)
    return _finish(run)


def split_at_mode(argv: list[str]) -> list[str]:
    """``train@data/<run>`` (SLM-Lab style) -> ``train data/<run>``."""
    if argv and argv[0].startswith("train@"):
        return ["train", argv[0].split("@", 1)[1], *argv[1:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI's error boundary: expected failures (a bad spec or checkpoint, a locked
    folder, an unreachable cluster, a path the OS refuses) exit 2 with one line; anything
    else exits 1 with one line naming the file its traceback was saved to (``error.txt``
    in the run folder being written, else a temporary file)."""
    from jaxlab.experiment.raytune import ClusterError
    from jaxlab.runtime.checkpoint import CheckpointError
    from jaxlab.runtime.errors import first_line, os_error_line, save_traceback
    from jaxlab.runtime.lock import FolderLocked, failed_folder

    failed_folder()  # forget a failure of an earlier call in this process
    try:
        return _main(argv)
    except FolderLocked as err:  # another process is writing the run/experiment folder
        return _fail("locked", err)
    except SpecError as err:
        return _fail("spec error", err)
    except CheckpointError as err:
        return _fail("checkpoint error", err)
    except ClusterError as err:
        return _fail("ray", err)
    except OSError as err:  # a path given that cannot be made, read or written; a full disk
        return _fail("file system", os_error_line(err))
    except KeyboardInterrupt:  # a second SIGINT/SIGTERM: abort without a new checkpoint
        print("\njaxlab: aborted; checkpoints already on disk are intact", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as err:  # noqa: BLE001 - the boundary: one line, the traceback saved
        path = save_traceback(err, failed_folder())
        return _fail("unexpected error", f"{first_line(err)} (traceback saved to {path})", 1)


def _main(argv: Sequence[str] | None = None) -> int:
    argv = split_at_mode(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if args.mode in ("train", "dev", "enjoy", "benchmark"):  # search: its workers share their own
        api.use_compile_cache()
    if args.mode == "train" and Path(args.spec).is_dir():
        return _resume(args)
    modes = {"enjoy": _enjoy, "report": _report, "plot": _plot, "search": _search}
    modes["benchmark"] = _benchmark
    return modes.get(args.mode, _train)(args)


if __name__ == "__main__":
    sys.exit(main())
