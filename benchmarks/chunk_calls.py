"""The same training as chunks called one by one, in groups, or as one compiled scan.

    python benchmarks/chunk_calls.py [--spec specs/ppo/ppo_cartpole.yaml] [--seeds 4]
                                     [--frames 100000] [--repeats 6]

*calls*: the Trial's compiled program invoked once per log point (one chunk per call),
with no host work at all (dispatched back to back, read once at the end). *groups*: the
same program running ``Trial.group_size`` chunks per call, as ``train`` does when chunks
are short. *scan*: one program
that ``lax.scan``s the same vmapped chunk over every chunk index. Both are compiled once
and run interleaved in this process; the ratio is what invoking the chunk per log point
costs by itself, apart from any I/O (``overhead.py`` measures the whole ``train``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jax

import jaxlab  # noqa: F401  (XLA flags before jax starts)
from jaxlab.lab.trial import Trial
from jaxlab.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import compile_all_chunks  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "specs" / "ppo" / "ppo_cartpole.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    sets = [f"meta.max_session={args.seeds}", f"env.max_frame={args.frames}"]
    spec = load_spec(args.spec, [*sets, "meta.eval_frequency=0"])
    trial, d = Trial(spec), spec.derived
    trial.compile(trial.abstract_state())
    scanned = compile_all_chunks(trial)

    def calls() -> float:
        state = jax.block_until_ready(trial.init())
        t0, pending = time.perf_counter(), []
        for i in range(d.num_chunks):
            state, metrics = trial.dispatch(state, i)
            pending.append(metrics)
        jax.block_until_ready((state, pending))
        return time.perf_counter() - t0

    def groups() -> float:
        state = jax.block_until_ready(trial.init())
        t0, pending, i = time.perf_counter(), [], 0
        while i < d.num_chunks:
            count = trial.group_limit(i)
            state, metrics = trial.dispatch(state, i, count)
            pending.append(metrics)
            i += count
        jax.block_until_ready((state, pending))
        return time.perf_counter() - t0

    def one_scan() -> float:
        state = jax.block_until_ready(trial.init())
        t0 = time.perf_counter()
        jax.block_until_ready(scanned(state))
        return time.perf_counter() - t0

    runs: dict[str, list[float]] = {"calls": [], "groups": [], "scan": []}
    for _ in range(args.repeats):
        runs["calls"].append(calls())
        runs["groups"].append(groups())
        runs["scan"].append(one_scan())
    med: dict[str, Any] = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in runs.items():
        print(f"{k:6s} ({d.num_chunks} chunks): best {min(v):.3f} s, median {med[k]:.3f} s, "
              f"runs {[round(x, 3) for x in v]}")  # fmt: skip
    print(f"chunk calls / one scan: {med['calls'] / med['scan']:.3f} (medians)")
    print(f"groups of {trial.group_size} / one scan: {med['groups'] / med['scan']:.3f} (medians)")


if __name__ == "__main__":
    main()
