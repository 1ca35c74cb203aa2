"""Command line: ``python -m jaxlab MODE SPEC [-s key.path=value ...]``.

Modes: ``train`` (the full Trial; given a run directory instead of a spec, or as
``train@data/<run>``, it resumes that run), ``search`` (an Experiment on Ray Tune: one
Trial per setting of the spec's ``search`` block; given an experiment directory, it
resumes it), ``dev`` (a tiny, extra-checked run of the
same spec: at most two sessions, a few updates, finite losses and moving parameters
asserted), ``enjoy`` (play a trained agent from a run, read-only), ``report`` (rebuild
a run's metrics and graphs from its CSVs) and ``plot`` (overlay several runs). Spec and
checkpoint problems exit with status 2 and one line, before anything is written; a run
stopped by SIGINT/SIGTERM exits with 128 + the signal number after checkpointing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from jaxlab.spec import Spec, SpecError, load_spec, shrink

EPILOG = """examples:
  python -m jaxlab train specs/ppo/ppo_cartpole.yaml
  python -m jaxlab train specs/ppo/ppo_cartpole.yaml -s meta.max_session=8 -s env.num_envs=16
  python -m jaxlab dev specs/ppo/ppo_pendulum.yaml
  python -m jaxlab search specs/search/ppo_cartpole_search.yaml
  python -m jaxlab search data/ppo_cartpole_search_2026_01_01_120000/   # resume a search
  python -m jaxlab train specs/ppo/ppo_cartpole.yaml --shrink   # tiny smoke run
  python -m jaxlab train data/ppo_cartpole_2026_01_01_120000/   # resume a stopped run
  python -m jaxlab enjoy data/ppo_cartpole_2026_01_01_120000/ --episodes 10 --render
  python -m jaxlab report data/ppo_cartpole_2026_01_01_120000/
  python -m jaxlab plot data/ppo_cartpole_2026_01_01_120000/ data/ppo_cartpole_2026_01_02_090000/
"""


# Where compiled programs persist between runs: a path, or off/0/false/no to disable.
CACHE_ENV = "JAXLAB_XLA_CACHE"
CACHE_MAX_BYTES = 2 << 30  # least recently used programs are evicted past this


def use_compile_cache(environ: dict[str, str] | None = None) -> Path | None:
    """Keep compiled XLA programs on disk, so running a spec again (a rerun, a resume,
    ``enjoy``, the same shapes with another seed) loads them instead of compiling.

    The directory is ``$JAXLAB_XLA_CACHE``, else ``$XDG_CACHE_HOME/jaxlab/xla`` (default
    ``~/.cache/jaxlab/xla``); ``JAXLAB_XLA_CACHE=off`` disables it, and a cache the user
    set up for JAX (``JAX_COMPILATION_CACHE_DIR``) is left alone. A loaded program is the
    one XLA would compile (the key covers the program, options and versions), so results
    do not change. Returns the directory in use, or None.
    """
    env = os.environ if environ is None else environ
    if env.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    choice = env.get(CACHE_ENV, "").strip()
    if choice.lower() in ("off", "0", "false", "no"):
        return None
    home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(choice).expanduser() if choice else home / "jaxlab" / "xla"
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def _report(args: argparse.Namespace) -> int:
    from jaxlab.analysis.report import format_report, is_run, write_experiment_report, write_report

    path = Path(args.run)
    try:
        if is_run(path):
            metrics = write_report(path, plots=not args.no_plots)
            print(format_report(metrics))
            where = "trial_metrics.json" + ("" if args.no_plots else " and graphs/")
        else:
            rows = write_experiment_report(path, plots=not args.no_plots)
            for row in rows:
                print(
                    ", ".join(
                        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()
                    )
                )
            where = "experiment_table.csv, best_spec.yaml, per-trial reports"
    except FileNotFoundError as err:
        return _fail("report", err)
    print(f"report written to {path}/ ({where})")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from datetime import datetime

    from jaxlab.analysis.plots import plot_comparison
    from jaxlab.analysis.report import load_run

    try:
        runs = [load_run(r) for r in args.runs]
    except FileNotFoundError as err:
        return _fail("plot", err)
    names = [r["spec"]["name"] for r in runs]
    labels = [
        n if names.count(n) == 1 else f"{n} ({r['dir'].name})"
        for n, r in zip(names, runs, strict=True)
    ]
    out = Path(args.out or f"data/plots/compare_{datetime.now():%Y_%m_%d_%H%M%S}.png")
    title = args.title or " vs ".join(dict.fromkeys(names))
    plot_comparison(list(zip(labels, [r["sessions"] for r in runs], strict=True)), out, title=title)
    print(f"comparison graph written to {out}")
    return 0


def shrunk(spec: Spec, overrides: Sequence[str] = ()) -> Spec:
    """``shrink(spec)`` for ``dev`` and ``--shrink``, except that a ``meta.compile`` given
    with ``-s`` on the same command line is kept (shrink would set ``fast``)."""
    small = shrink(spec)
    if any(o.split("=", 1)[0].strip() == "meta.compile" for o in overrides):
        small = small.replace(meta=dataclasses.replace(small.meta, compile=spec.meta.compile))
    return small


def _fail(kind: str, err: BaseException, code: int = 2) -> int:
    print(f"jaxlab: {kind}: {err}", file=sys.stderr)
    return code


def _finish(result: object) -> int:
    from jaxlab.runtime.run import format_summary

    summary = result.summary  # type: ignore[attr-defined]
    print(format_summary(summary))
    print(f"run saved to {result.run_dir}")  # type: ignore[attr-defined]
    if summary.get("status") == "interrupted":
        name = summary["stop_signal"]
        print(
            f"jaxlab: stopped by {name} at frame {summary['frames_per_session']:,} of "
            f"{summary['frames_planned']:,}; checkpoint saved. Resume with:\n"
            f"  python -m jaxlab train {result.run_dir}/",  # type: ignore[attr-defined]
            file=sys.stderr,
        )
        return 128 + int(getattr(signal.Signals, name))
    return 0


def _enjoy(args: argparse.Namespace) -> int:
    from jaxlab.runtime.checkpoint import CheckpointError
    from jaxlab.tools.enjoy import enjoy, format_enjoy

    try:
        record = enjoy(
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
    from jaxlab.runtime.resume import resume

    if args.overrides or args.shrink:
        flag = "-s" if args.overrides else "--shrink"
        return _fail(
            "resume", f"{flag} cannot be used when resuming; edit {args.spec}/spec.yaml instead"
        )
    try:
        return _finish(resume(args.spec, progress=not args.no_progress, report=not args.no_report))
    except SpecError as err:
        return _fail("spec error", err)
    except CheckpointError as err:
        return _fail("checkpoint error", err)


def _search(args: argparse.Namespace) -> int:
    from jaxlab.experiment.driver import format_experiment, is_experiment_dir, resume_search, search

    try:
        if Path(args.spec).is_dir():
            if not is_experiment_dir(args.spec):
                return _fail("search", f"{args.spec} is not an experiment (no experiment.json)")
            if args.overrides or args.shrink:
                flag = "-s" if args.overrides else "--shrink"
                return _fail("search", f"{flag} cannot be used when resuming an experiment")
            result = resume_search(args.spec, address=args.address)
        else:
            spec = load_spec(args.spec, args.overrides)
            if args.shrink:
                spec = shrunk(spec, args.overrides or ())
            result = search(spec, root=args.data, address=args.address)
    except SpecError as err:
        return _fail("spec error", err)
    print(format_experiment(result.summary, result.exp_dir))
    print(f"experiment saved to {result.exp_dir}")
    return 130 if result.summary["unfinished"] else 0


def split_at_mode(argv: list[str]) -> list[str]:
    """``train@data/<run>`` (SLM-Lab style) -> ``train data/<run>``."""
    if argv and argv[0].startswith("train@"):
        return ["train", argv[0].split("@", 1)[1], *argv[1:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # a second SIGINT/SIGTERM: abort without a new checkpoint
        print("\njaxlab: aborted; checkpoints already on disk are intact", file=sys.stderr)
        return 128 + signal.SIGINT


def _main(argv: Sequence[str] | None = None) -> int:
    argv = split_at_mode(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if args.mode in ("train", "dev", "enjoy"):  # search workers share the experiment's own
        use_compile_cache()
    if args.mode == "enjoy":
        return _enjoy(args)
    if args.mode == "report":
        return _report(args)
    if args.mode == "plot":
        return _plot(args)
    if args.mode == "search":
        return _search(args)
    from jaxlab.runtime.resume import code_change_warning, is_run_dir, saved_run_of, warn

    if args.mode == "train" and Path(args.spec).is_dir():
        if not is_run_dir(args.spec):
            return _fail("resume", f"{args.spec} is not a run directory (no spec.yaml/checkpoints)")
        return _resume(args)
    try:
        spec = load_spec(args.spec, args.overrides)
        if args.mode == "dev" or getattr(args, "shrink", False):
            spec = shrunk(spec, args.overrides or ())
    except SpecError as err:
        print(f"jaxlab: spec error: {err}", file=sys.stderr)
        return 2

    run = saved_run_of(args.spec)
    if run is not None:  # re-running a saved spec: is this the code that made it?
        message = code_change_warning(
            json.loads((run / "provenance.json").read_text()), run, "this rerun"
        )
        if message:
            warn(message)
    from jaxlab.runtime.loop import DevCheckError
    from jaxlab.runtime.run import train

    try:
        result = train(
            spec,
            root=args.data,
            dev=args.mode == "dev",
            progress=not args.no_progress,
            report=not args.no_report,
        )
    except DevCheckError as err:
        return _fail("dev check failed", err, 1)
    return _finish(result)


if __name__ == "__main__":
    sys.exit(main())
