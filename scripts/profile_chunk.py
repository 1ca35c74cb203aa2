"""Profile one Trial chunk: a JAX profiler trace, compile vs execution, and per-phase times.

    python scripts/profile_chunk.py [SPEC] [-s key=value ...] [--seeds 4] [--reps 5]
                                    [--trace-dir profile/] [--top 12]

1. Compile vs execution: the Trial's init and its chunk are lowered and compiled ahead of
   time (timed apart), then the chunk runs ``--reps`` times (median, after one warm-up
   run; ``block_until_ready`` each time).
2. Trace: one more chunk runs under ``jax.profiler.trace``; the folder opens in
   TensorBoard's Profile tab (``tensorboard --logdir DIR``, with
   ``tensorboard-plugin-profile`` installed) or, as ``*.trace.json.gz``, in
   https://ui.perfetto.dev. The trace is also read back (:mod:`jaxlab.tools.profiling`): the
   chunk's busy time split by phase *inside the compiled chunk* (the ``jax.named_scope``
   names in its ops' metadata, for every algorithm: ``rollout``, ``learn``, and where they
   apply ``advantages``, ``targets``, ``memory`` and ``evaluate``), and the ``--top``
   instructions by time summed over their calls, with where in the model they come from.
   This is the table that says what bounds a run.
3. Phases: each phase of one update is compiled on its own, vmapped over the seeds, on
   inputs made by the phases before it from a warm state (so shapes and values are
   realistic), and timed the same way; next to them, the whole update and the chunk per
   update. PPO's phases are rollout (``_collect``), advantages (``_advantages``: critic on
   the next observations + GAE) and update (``_learn``: the epochs of minibatch SGD).
   Another algorithm slots in by adding its phases to ``PHASES``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

import jaxlab  # noqa: F401  (XLA flags before jax starts)
from jaxlab.algorithms.base import learning_rate
from jaxlab.lab.trial import Trial, over_sessions
from jaxlab.spec import load_spec
from jaxlab.tools.profiling import load_events, short_op_name, summarize_trace, trace_file

REPO = Path(__file__).resolve().parent.parent
# A phase: (name, function of one seed, its batched arguments). Each algorithm's entry
# builds them from the Trial and a warm batched state.
Phase = tuple[str, Callable[..., Any], tuple[Any, ...]]


def ppo_phases(trial: Trial, state: Any) -> list[Phase]:
    """PPO's update as three phases; inputs made by running the phases before, per seed."""
    agent = trial.agent
    keys = jax.vmap(lambda k: jax.random.split(k, 3))(state.key)  # [S, 3, 2]
    k_roll, k_learn = keys[:, 1], keys[:, 2]
    schedule = trial.spec.agent.net.lr_schedule.name

    def lr_of(s: Any) -> jax.Array:
        return learning_rate(schedule, s.hyper.lr, s.hyper.lr_end, s.update_step, agent.num_updates)

    after, rollout = jax.jit(jax.vmap(agent._collect))(state, k_roll)
    batch = jax.jit(jax.vmap(agent._advantages))(after, rollout)
    lr = jax.vmap(lr_of)(after)
    return [
        ("rollout", agent._collect, (state, k_roll)),
        ("advantages (critic + GAE)", agent._advantages, (after, rollout)),
        ("update (epochs x minibatches)", agent._learn, (after, batch, k_learn, lr)),
    ]


PHASES: dict[str, Callable[[Trial, Any], list[Phase]]] = {"PPO": ppo_phases}


def timed(fn: Callable[[], Any], reps: int) -> float:
    """Median seconds of ``reps`` calls of ``fn`` (after one warm-up), each blocked on."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compile_and_time(
    fn: Callable[..., Any], args: tuple, reps: int, options: dict[str, Any] | None = None
) -> tuple[float, float]:
    """(compile seconds, median execution seconds) of ``jit(vmap(fn))`` on ``args``
    (``fn`` itself at one seed, as the Trial runs it), compiled with XLA ``options`` (the
    Trial's own, ``Trial.compiler_options``, for a like-for-like phase)."""
    seeds = jax.tree.leaves(args)[0].shape[0]
    t0 = time.perf_counter()
    lowered = jax.jit(over_sessions(fn, seeds, (0,) * len(args))).lower(*args)
    compiled = lowered.compile(options)
    compile_s = time.perf_counter() - t0
    return compile_s, timed(lambda: compiled(*args), reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "spec", nargs="?", default=str(REPO / "specs" / "ppo" / "ppo_cartpole.yaml")
    )
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, default=4, help="sessions (meta.max_session)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (median)")
    parser.add_argument("--trace-dir", type=Path, default=Path("profile"))
    parser.add_argument("--top", type=int, default=12, help="instructions listed from the trace")
    args = parser.parse_args()
    spec = load_spec(args.spec, [*args.set, f"meta.max_session={args.seeds}"])
    trial, d = Trial(spec), spec.derived
    print(
        f"{spec.name}: {args.seeds} seeds, {d.updates_per_chunk} updates/chunk, "
        f"{d.frames_per_update} frames/update; device {jax.devices()[0].device_kind}"
    )

    t0 = time.perf_counter()
    init = trial._init.lower(trial.keys).compile(trial._init_options)
    init_compile = time.perf_counter() - t0
    state = jax.block_until_ready(init(trial.keys))
    t0 = time.perf_counter()
    lowered = trial._chunk_jit.lower(state, jnp.int32(0), jnp.int32(1))  # one chunk per call
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    trial._chunk = lowered.compile(trial.compiler_options)
    chunk_compile = time.perf_counter() - t0

    holder = {"state": state}

    def run_chunk(index: int) -> Any:  # donates: keep the newest state only
        holder["state"], metrics = trial.dispatch(holder["state"], index)
        return holder["state"], metrics

    chunk_s = timed(lambda: run_chunk(0), args.reps)
    eval_s = None
    if d.eval_every:  # the first evaluating chunk (the last one always evaluates)
        evaluating = min(d.eval_every, d.num_chunks) - 1
        eval_s = timed(lambda: run_chunk(evaluating), max(1, args.reps // 2))

    args.trace_dir.mkdir(parents=True, exist_ok=True)
    with jax.profiler.trace(str(args.trace_dir), create_perfetto_trace=True):
        jax.block_until_ready(run_chunk(0))

    frames = d.updates_per_chunk * d.frames_per_update * args.seeds
    rows: list[tuple[str, str, str, str]] = [
        ("init (jit)", f"{init_compile:.2f}", "", ""),
        ("chunk: trace + lower", f"{lower_s:.2f}", "", ""),
        ("chunk: XLA compile", f"{chunk_compile:.2f}", "", ""),
        ("chunk (no eval)", "", f"{chunk_s * 1e3:.1f}", f"{frames / chunk_s:,.0f}"),
    ]
    if eval_s is not None:
        rows.append(("chunk (with eval)", "", f"{eval_s * 1e3:.1f}", f"{frames / eval_s:,.0f}"))
    print_table(("", "compile s", "exec ms", "env-steps/s"), rows)

    phases = PHASES.get(spec.agent.algorithm.name)
    if phases is None:
        print(f"\nno per-phase breakdown for {spec.agent.algorithm.name} yet (add it to PHASES)")
    else:
        state, opts = holder["state"], trial.compiler_options
        update_c, update_s = compile_and_time(trial.agent.update, (state,), args.reps, opts)
        per_update = chunk_s / d.updates_per_chunk
        prow = []
        for name, fn, fargs in phases(trial, state):
            c, s = compile_and_time(fn, fargs, args.reps, opts)
            prow.append((name, f"{c:.2f}", f"{s * 1e3:.2f}", f"{100 * s / update_s:.0f}%"))
        prow.append(("whole update", f"{update_c:.2f}", f"{update_s * 1e3:.2f}", "100%"))
        prow.append(("chunk / updates per chunk", "", f"{per_update * 1e3:.2f}", ""))
        print(f"\nper-phase, one update of {args.seeds} seeds (each phase compiled alone):")
        print_table(("phase", "compile s", "exec ms", "of update"), prow)

    print_trace_summary(trial, args.trace_dir, args.top, chunk_s)
    print(f"\ntrace of one chunk: {args.trace_dir.resolve()}")
    print(f"  TensorBoard: tensorboard --logdir {args.trace_dir} (Profile tab)")
    print("  Perfetto:    open plugins/profile/*/*.trace.json.gz at https://ui.perfetto.dev")


def print_trace_summary(trial: Trial, trace_dir: Path, top: int, untraced_s: float) -> None:
    """The chunk's busy time by phase and its ``top`` instructions, from the trace.

    Tracing costs something per instruction run, so where the traced chunk is much slower
    than ``untraced_s``, phases of many small instructions (the rollout at few seeds on
    CPU) read larger than they are; the ``runs`` column shows which those are."""
    s = summarize_trace(load_events(trace_file(trace_dir)), trial.executable.as_text())
    if not s.ops:
        print("\nthe trace has no events of the chunk's instructions")
        return
    print(
        f"\nfrom the trace: the chunk ran {s.span_s * 1e3:.1f} ms traced "
        f"({untraced_s * 1e3:.1f} ms untraced), busy {s.busy_s * 1e3:.1f} ms "
        f"(instructions summed over threads and streams: {s.summed_s * 1e3:.1f} ms)"
    )
    if s.span_s > 1.25 * untraced_s:
        print("  tracing slowed it: phases with many runs read larger than they are")
    rows = [
        (k, f"{v * 1e3:.2f}", f"{100 * v / s.busy_s:.0f}%", f"{s.phase_calls[k]:,}")
        for k, v in s.phases.items()
    ]
    print_table(("phase (in the chunk)", "busy ms", "of busy", "runs"), rows)
    print()
    rows = [
        (
            op.name,
            op.phase,
            str(op.calls),
            f"{op.seconds * 1e3:.2f}",
            f"{100 * op.seconds / s.summed_s:.1f}%",
            short_op_name(op.op_name),
        )
        for op in s.ops[:top]
    ]
    print_table(("instruction", "phase", "calls", "ms", "of summed", "from"), rows)


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = " | ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for r in rows:
        print(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
