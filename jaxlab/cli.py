"""Command line: ``python -m jaxlab MODE SPEC [-s key.path=value ...]``.

Modes: ``train`` (the full Trial) and ``dev`` (a tiny, extra-checked run of the same
spec: at most two sessions, a few updates, finite losses and moving parameters
asserted). Spec problems exit with status 2 and one line naming the key path, before
anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxlab.spec import SpecError, load_spec, shrink

EPILOG = """examples:
  python -m jaxlab train specs/ppo_cartpole.yaml
  python -m jaxlab train specs/ppo_cartpole.yaml -s meta.max_session=8 -s env.num_envs=16
  python -m jaxlab dev specs/ppo_pendulum.yaml
  python -m jaxlab train specs/ppo_cartpole.yaml --shrink   # tiny smoke run
"""


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
    }
    for mode, text in helps.items():
        p = sub.add_parser(mode, help=text, description=text)
        p.add_argument("spec", help="path to a YAML spec")
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
        if mode == "train":
            p.add_argument("--shrink", action="store_true", help="run at tiny scale (smoke test)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = load_spec(args.spec, args.overrides)
        if args.mode == "dev" or getattr(args, "shrink", False):
            spec = shrink(spec)
    except SpecError as err:
        print(f"jaxlab: spec error: {err}", file=sys.stderr)
        return 2

    from jaxlab.run import DevCheckError, format_summary, train

    try:
        result = train(spec, root=args.data, dev=args.mode == "dev", progress=not args.no_progress)
    except DevCheckError as err:
        print(f"jaxlab: dev check failed: {err}", file=sys.stderr)
        return 1
    print(format_summary(result.summary))
    print(f"run saved to {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
