"""Framework overhead: ``jaxlab.runtime.run.train`` against one bare compiled scan of the same updates.

    python benchmarks/overhead.py [--spec specs/ppo/ppo_cartpole.yaml] [--seeds 4]
                                  [--frames 200000] [--repeats 9] [--json out.json]

*train*: the full path at the spec's own cadence (default log frequency 10,000 frames;
CSV + TensorBoard rows, evaluation and Orbax checkpoints on), run time =
``trial_summary.json``'s ``wall_clock_s`` (after compilation).
*bare*: the same work in one compiled program: ``jit(lax.scan(vmap(chunk)))`` (no vmap at
1 seed, as in the Trial) over all ``num_chunks`` chunks (every update, and the evaluations
at the spec's eval points, which are compute the run asked for, not framework overhead),
state donated, nothing leaves the device, no I/O; run time = one call,
``block_until_ready``. What ``train`` adds on top is the host loop: per-chunk dispatch and
metric reads, CSV/TensorBoard rows, histograms, checkpoints and ``best`` saves.

overhead = train run time / bare run time - 1 (median of ``--repeats`` runs each), and the
paired overhead: the median over repeats of train / bare - 1 for the two runs taken back
to back, which a drift in the machine's speed hits alike (this VM's bare run drifted by
15% within one process); the pairs alternate which side runs first. Within budget means
both are; the paired mean and its standard error are printed as well, to show how far the
noise reaches. One run of each side goes first as a warm-up and is not counted: the first
``train`` compiles the Trial cold (its ``compile_s`` is the one reported) into a throwaway
persistent cache, from which later runs load it, so the repeats spend their time running,
not compiling (a loaded program is the one XLA compiled). The bare program is compiled
once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

import jaxlab  # noqa: F401  (XLA flags before jax starts)
from jaxlab.lab.evaluate import make_evaluate
from jaxlab.lab.session import make_chunk
from jaxlab.lab.trial import Trial, over_sessions
from jaxlab.rl.branching import cheap_conds
from jaxlab.runtime.run import train
from jaxlab.spec import Spec, load_spec

SPEC = Path(__file__).resolve().parent.parent / "specs" / "ppo" / "ppo_cartpole.yaml"
BUDGET = 0.05  # the limit on overhead at the default log frequency
REPEATS = 9  # timed pairs (after one warm-up run a side); the noise here is +-3-5% a run


def compile_all_chunks(trial: Trial) -> Any:
    """One compiled program running every chunk of ``trial`` (evaluations included) in a
    ``lax.scan``, state donated: ``program(state) -> (state, (stacked metrics, the last
    chunk's or None))``. A short last chunk is cut as the Trial cuts it: masked in the
    scan on CPU, run after it with its own length elsewhere (``cheap_conds``)."""
    d = trial.derived
    evaluate = make_evaluate(trial.agent, trial.spec) if d.eval_every else None

    def chunk(updates: int | None = None) -> Any:
        one = make_chunk(trial.agent, d, evaluate, updates)
        return over_sessions(one, trial.num_sessions, (0, None))

    short = d.last_chunk_updates < d.updates_per_chunk
    tail = short and not cheap_conds(trial.platform)

    def scan(state: Any) -> Any:
        indices = jnp.arange(d.num_chunks - tail, dtype=jnp.int32)
        state, metrics = jax.lax.scan(chunk(d.updates_per_chunk if tail else None), state, indices)
        if not tail:
            return state, (metrics, None)
        state, last = chunk(d.last_chunk_updates)(state, jnp.int32(d.num_chunks - 1))
        return state, (metrics, last)

    lowered = jax.jit(scan, donate_argnums=0).lower(trial.abstract_state())
    return lowered.compile(trial.compiler_options)  # the options the Trial compiles with


def bare_runner(spec: Spec) -> tuple[float, Any]:
    """(compile seconds, run) where ``run()`` trains all updates once, returning seconds."""
    trial = Trial(spec)
    t0 = time.perf_counter()
    compiled = compile_all_chunks(trial)
    compile_s = time.perf_counter() - t0

    def run() -> float:
        state = jax.block_until_ready(trial.init())
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(state))
        return time.perf_counter() - t0

    return compile_s, run


def train_run(spec: Spec) -> dict[str, float]:
    """One full ``train`` (report off; it runs after the timed loop anyway)."""
    with tempfile.TemporaryDirectory() as root:
        s = train(spec, root=root, progress=False, report=False).summary
    return {"run_s": s["wall_clock_s"], "compile_s": s["compile_s"]}


@contextlib.contextmanager
def throwaway_compile_cache() -> Iterator[None]:
    """Persist compiled programs in a temporary directory for the duration, then restore
    JAX's cache settings (``reset_cache`` makes JAX read the new directory)."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {k: getattr(jax.config, k) for k in keys}
    with tempfile.TemporaryDirectory() as root:
        cc.reset_cache()
        jax.config.update(keys[0], root)
        jax.config.update(keys[1], 0.0)
        try:
            yield
        finally:
            for k, v in saved.items():
                jax.config.update(k, v)
            cc.reset_cache()


def measure_overhead(spec: Spec, repeats: int = REPEATS) -> dict[str, Any]:
    """Median run seconds of train and bare, and the overhead fraction (see module doc)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    d = spec.derived
    bare_s, train_s = [], []
    with throwaway_compile_cache():
        bare_compile, bare = bare_runner(spec)
        cold = train_run(spec)  # warm-up: compiles cold, fills the cache; not counted
        bare()  # warm-up, not counted
        for i in range(repeats):
            if i % 2:  # alternate the order within a pair
                train_s.append(train_run(spec)["run_s"])
                bare_s.append(bare())
            else:
                bare_s.append(bare())
                train_s.append(train_run(spec)["run_s"])
    b, t = statistics.median(bare_s), statistics.median(train_s)
    ratios = [y / x - 1.0 for x, y in zip(bare_s, train_s, strict=True)]
    paired = statistics.median(ratios)
    se = statistics.stdev(ratios) / math.sqrt(len(ratios)) if len(ratios) > 1 else None
    m = spec.meta
    return {
        "spec": spec.name,
        "seeds": m.max_session,
        "frames_per_session": d.total_frames,
        "log_frequency": m.log_frequency,
        "eval_frequency": m.eval_frequency,
        "checkpoint_frequency": m.checkpoint_frequency,
        "chunks": d.num_chunks,
        "bare_run_s": b,
        "train_run_s": t,
        "bare_runs_s": bare_s,
        "train_runs_s": train_s,
        "bare_compile_s": bare_compile,
        "train_compile_s": cold["compile_s"],
        "overhead": t / b - 1.0,
        "overhead_paired": paired,
        "overhead_paired_mean": statistics.fmean(ratios),
        "overhead_paired_se": se,
        "budget": BUDGET,
        "within_budget": max(t / b - 1.0, paired) <= BUDGET,
    }


def overhead_spec(path: Path, seeds: int, frames: int, extra: list[str] | None = None) -> Spec:
    return load_spec(path, [f"meta.max_session={seeds}", f"env.max_frame={frames}", *(extra or [])])


def format_overhead(r: dict[str, Any]) -> str:
    verdict = "within" if r["within_budget"] else "OVER"
    se = r["overhead_paired_se"]  # None from one pair
    return (
        f"overhead ({r['spec']}, {r['seeds']} seeds, {r['frames_per_session']:,} frames, "
        f"log every {r['log_frequency']:,}, eval every {r['eval_frequency']:,}, checkpoint "
        f"every {r['checkpoint_frequency']:,}): train {r['train_run_s']:.2f}s vs bare scan "
        f"{r['bare_run_s']:.2f}s -> {100 * r['overhead']:+.1f}%, paired median "
        f"{100 * r['overhead_paired']:+.1f}% ({verdict} the {100 * r['budget']:.0f}% budget; "
        f"medians of {len(r['train_runs_s'])}; paired mean {100 * r['overhead_paired_mean']:+.1f}%"
        + ("" if se is None else f" +- {100 * se:.1f}% SE")
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--frames", type=int, default=200_000, help="frames per seed")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure_overhead(
        overhead_spec(args.spec, args.seeds, args.frames, args.set), args.repeats
    )
    print(format_overhead(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
