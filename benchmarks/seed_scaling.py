"""Seed scaling: training env-steps/s from 1 to 4096 seeds, jaxlab next to rejax 0.1.3.

    python benchmarks/seed_scaling.py [--algos PPO DQN SAC] [--envs CartPole-v1 Breakout-MinAtar]
        [--seeds 1 4 16 64 256 1024 4096] [--frames 500000] [--out bench_out/]
        [--timeout 1800] [--repeats 1] [--compile-repeats 3] [--overhead-seeds 4]
        [--overhead-frames 200000] [--overhead-repeats 9] [--no-overhead] [--kernel-init lecun_normal]

Configurations (the issue's list): PPO on CartPole-v1 and Breakout-MinAtar, DQN and SAC on
CartPole-v1. DQN trains ``specs/dqn/dqn_cartpole.yaml`` and SAC
``specs/sac/sac_discrete_cartpole.yaml`` (``SPECS``), and rejax DQN / discrete SAC the same
configurations over the same frames (``rejax_offpolicy.py``). PPO uses
``specs/ppo/ppo_cartpole.yaml`` (4 envs x 128 steps, 4 epochs x 4 minibatches, 64-64 tanh
MLPs) on both envs, and rejax the same numbers (``rejax_peer.py``). Each peer module lists
the differences rejax cannot configure. jaxlab's networks start from rejax's kernel init,
flax's ``lecun_normal`` (``agent.net.kernel_init``; jaxlab's own default, orthogonal with
CleanRL's gains, with ``--kernel-init orthogonal``).

Every (config, seed count) runs in its own subprocess, which builds both frameworks and
interleaves their training runs (jaxlab, rejax, jaxlab, ...), so a shared machine's load
hits both alike. Running out of memory (RESOURCE_EXHAUSTED, MemoryError, the process
killed) is recorded as "OOM"; the sweep skips that framework's larger seed counts. This
parent process starts JAX (the device's name, the overhead runs) only after the sweep,
so every row's subprocess has the whole device.

* jaxlab trains through ``jaxlab.runtime.run.train`` (CSV/TensorBoard logging and checkpoints on);
  rejax trains ``jit(vmap(algo.train))`` with its evaluation a no-op. Evaluation is off on
  both sides.
* compile s: building the programs, each framework alone in a fresh process, the median of
  ``--compile-repeats`` such processes per framework, the two alternating
  (``cold_compile.py``): jaxlab's trace, init and chunk compile (``train``'s ``compile_s``
  less ``init_s``, the init program's run), rejax's ``lower().compile()``. The compile next
  to the other framework in the row's process is kept in the JSON (``compile_in_process_s``).
  run s: all the training computation, init included, as rejax's call includes its init:
  jaxlab's ``init_s + wall_clock_s``, rejax's blocked call; the best of ``--repeats`` runs
  (jaxlab's later runs reuse the compiled programs through a throwaway persistent cache;
  rejax re-runs its compiled function).
  env-steps/s = seeds x frames per seed / run s. ratio (best) = jaxlab / rejax env-steps/s
  of the best runs; ratio (paired median) = the median over repeats of the same ratio for
  the two runs taken back to back in each repeat.
* device memory: the training program's (jaxlab's chunk, rejax's ``train``) peak by XLA's
  accounting (``compiled.memory_analysis()``: arguments + outputs + temporaries - donated
  buffers), per framework and the same on CPU and GPU; the process's peak RSS is in the JSON.
* The framework overhead (``overhead.py``: train with logging, evaluation and checkpoints
  against a bare scan of the same updates) is measured once, at ``--overhead-seeds``.
Writes ``results.json``, ``results.md`` and ``seed_scaling.png`` (log-log steps/s vs seeds)
into ``--out``, with the device, library versions and git SHA."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEC = REPO / "specs" / "ppo" / "ppo_cartpole.yaml"
# (algo, env) -> the jaxlab spec (default SPEC) and its overrides; None = not in jaxlab.
SPECS = {
    ("DQN", "CartPole-v1"): REPO / "specs" / "dqn" / "dqn_cartpole.yaml",
    ("SAC", "CartPole-v1"): REPO / "specs" / "sac" / "sac_discrete_cartpole.yaml",
}
CONFIGS: dict[tuple[str, str], list[str] | None] = {
    ("PPO", "CartPole-v1"): [],
    ("PPO", "Breakout-MinAtar"): ["env.name=Breakout-MinAtar"],
    ("DQN", "CartPole-v1"): ["env.num_envs=40", "agent.algorithm.train_freq=1"],  # rejax's layout
    ("SAC", "CartPole-v1"): [],
}
OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "MemoryError")
# rejax's networks start from flax's default kernel init; jaxlab's do too in the benchmark.
PEER_KERNEL_INIT = "lecun_normal"


def jaxlab_spec(
    algo: str, env: str, seeds: int, frames: int, kernel_init: str = PEER_KERNEL_INIT
) -> Any:
    """The spec jaxlab trains for a row: evaluation off and rejax's kernel init, as rejax's
    peer (``kernel_init``: ``agent.net.kernel_init``)."""
    from jaxlab.spec import load_spec

    sets = [f"meta.max_session={seeds}", f"env.max_frame={frames}", "meta.eval_frequency=0"]
    sets.append(f"agent.net.kernel_init={kernel_init}")
    return load_spec(SPECS.get((algo, env), SPEC), [*(CONFIGS[(algo, env)] or []), *sets])


def peak_rss() -> int:
    """The measuring process's peak resident memory in bytes (both frameworks together)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def program_bytes(compiled: Any) -> int | None:
    """Device memory one compiled program needs at its peak, from XLA's own accounting:
    arguments + outputs + temporaries - buffers donated to outputs (None if unknown)."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    used = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
    return int(used - m.alias_size_in_bytes)


class JaxlabRun:
    """``jaxlab.runtime.run.train`` of one configuration; each :meth:`run` is a whole training.

    Runs after the first load the compiled programs from a throwaway persistent cache, so
    only the first one's ``compile_s`` is cold; ``run_s`` of each is its init's run and its
    chunks' (``init_s + wall_clock_s``)."""

    def __init__(
        self, algo: str, env: str, seeds: int, frames: int, root: str, kernel_init: str
    ) -> None:
        import jax

        from jaxlab.lab.trial import Trial

        self.spec = jaxlab_spec(algo, env, seeds, frames, kernel_init)
        self.root = root
        jax.config.update("jax_compilation_cache_dir", f"{root}/xla_cache")
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        self.summaries: list[dict[str, Any]] = []
        self.run()  # cold: its compile_s is the one reported
        trial = Trial(self.spec)  # the same program again (from the cache) for its memory
        trial.compile(trial.abstract_state())
        self.mem_bytes = program_bytes(trial.executable)

    def run(self) -> None:
        from jaxlab.runtime.run import train

        self.summaries.append(
            train(self.spec, root=self.root, progress=False, report=False).summary
        )

    def result(self) -> dict[str, Any]:
        runs = [x["init_s"] + x["wall_clock_s"] for x in self.summaries]
        best = min(range(len(runs)), key=runs.__getitem__)
        first, top = self.summaries[0], self.summaries[best]
        return {
            "compile_s": first["compile_s"] - first["init_s"],
            "init_s": top["init_s"],
            "run_s": runs[best],
            "runs_s": runs,
            "env_steps": top["frames_total"],
            "steps_per_s": top["frames_total"] / runs[best],
            "final_return_mean": top["final_return_mean"],
            "program_bytes": self.mem_bytes,
        }


class RejaxRun:
    """rejax's ``jit(vmap(train))`` of the same configuration, compiled once, run many times."""

    def __init__(self, algo: str, env: str, seeds: int, frames: int) -> None:
        sys.path.insert(0, str(HERE))
        from rejax_offpolicy import PEERS, peer_frames

        if algo not in PEERS:
            raise NotImplementedError(f"no rejax peer for {algo} yet")
        self.compiled, self.keys, self.compile_s = PEERS[algo](
            seeds, frames, with_eval=False, env_name=env
        )
        self.env_steps, self.runs_s = seeds * peer_frames(algo, frames), []
        self.run()

    def run(self) -> None:
        import jax

        t0 = time.perf_counter()
        jax.block_until_ready(self.compiled(self.keys))
        self.runs_s.append(time.perf_counter() - t0)

    def result(self) -> dict[str, Any]:
        run_s = min(self.runs_s)
        return {
            "compile_s": self.compile_s,
            "run_s": run_s,
            "runs_s": self.runs_s,
            "env_steps": self.env_steps,
            "steps_per_s": self.env_steps / run_s,
            "program_bytes": program_bytes(self.compiled),
        }


def failure(err: BaseException) -> dict[str, Any]:
    text = f"{type(err).__name__}: {err}"
    oom = isinstance(err, MemoryError) or any(m in text for m in OOM_MARKERS)
    return {"status": "OOM" if oom else "error", "error": text.splitlines()[0][:300]}


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """Both frameworks in this one process, their runs interleaved (J R J R ...), so load
    on a shared machine hits both alike; never raises (errors become a status)."""
    import jaxlab  # noqa: F401  (XLA flags before jax starts; they apply to both frameworks)

    args = (job["algo"], job["env"], job["seeds"], job["frames"])
    runners: dict[str, Any] = {}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as root:
        for fw, make in (
            ("jaxlab", lambda: JaxlabRun(*args, root, job.get("kernel_init", PEER_KERNEL_INIT))),
            ("rejax", lambda: RejaxRun(*args)),
        ):
            if fw in job.get("skip", ()):
                out[fw] = {"status": "OOM", "error": "OOM at fewer seeds; skipped"}
                continue
            try:
                runners[fw] = make()
            except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
                out[fw] = failure(err)
        for _ in range(job.get("repeats", 1) - 1):
            for fw, runner in list(runners.items()):
                try:
                    runner.run()
                except Exception as err:  # noqa: BLE001
                    out[fw] = failure(err)
                    del runners[fw]
        for fw, runner in runners.items():
            out[fw] = {**runner.result(), "status": "ok"}
    return {**out, "peak_rss_bytes": peak_rss()}


def measure(job: dict[str, Any], timeout: float, compile_repeats: int = 3) -> dict[str, Any]:
    """``worker(job)`` in a fresh subprocess (killed by the OOM killer: OOM), then each
    framework that trained compiles alone in fresh processes, ``compile_repeats`` times,
    alternating (``cold_compile.py``: the median is ``compile_s``, every value
    ``compiles_s``; the one beside the other framework is ``compile_in_process_s``)."""
    from cold_compile import cold_compiles

    out = run_worker(job, timeout)
    trained = [fw for fw in ("jaxlab", "rejax") if out[fw].get("status") == "ok"]
    for fw, cold in cold_compiles(trained, job, timeout, compile_repeats).items():
        if isinstance(cold, str):
            out[fw]["compile_cold_error"] = cold
        else:
            out[fw]["compile_in_process_s"] = out[fw]["compile_s"]
            out[fw].update(compile_s=cold["compile_s"], compiles_s=cold["compiles_s"])
            if "init_s" in cold:
                out[fw]["init_cold_s"] = cold["init_s"]
    return out


def run_worker(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]

    def both(status: str, error: str) -> dict[str, Any]:
        return {fw: {"status": status, "error": error} for fw in ("jaxlab", "rejax")}

    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return both("timeout", f"over {timeout:.0f} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if proc.returncode in (-9, 137):
        return both("OOM", "process killed (SIGKILL, likely the OOM killer)")
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    status = "OOM" if any(m in proc.stderr for m in OOM_MARKERS) else "error"
    return both(status, f"exit {proc.returncode}: {tail[:300]}")


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    from jaxlab.algorithms import registered

    rows = []
    for (algo, env), extra in CONFIGS.items():
        if algo not in args.algos or env not in args.envs:
            continue
        if extra is None or algo not in registered():
            print(f"{algo} {env}: not implemented yet in jaxlab (no row measured)", flush=True)
            rows.append({"algo": algo, "env": env, "status": "not implemented yet"})
            continue
        dead: set[str] = set()
        for seeds in args.seeds:
            row: dict[str, Any] = {"algo": algo, "env": env, "seeds": seeds, "status": "ok"}
            job = {"algo": algo, "env": env, "seeds": seeds, "frames": args.frames}
            job["kernel_init"] = args.kernel_init
            job.update(repeats=args.repeats, skip=sorted(dead))
            row.update(measure(job, args.timeout, args.compile_repeats))
            dead |= {fw for fw in ("jaxlab", "rejax") if row[fw]["status"] == "OOM"}
            a, b = row["jaxlab"], row["rejax"]
            ok = a["status"] == b["status"] == "ok"
            row["ratio"] = a["steps_per_s"] / b["steps_per_s"] if ok else None
            row["ratio_paired"] = paired_ratio(a, b) if ok else None
            print(format_row(row), flush=True)
            rows.append(row)
    return rows


def paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Median over repeats of jaxlab / rejax env-steps/s of the two runs taken back to back."""
    pairs = zip(a["runs_s"], b["runs_s"], strict=False)
    return statistics.median((a["env_steps"] / x) / (b["env_steps"] / y) for x, y in pairs)


def cell(r: dict[str, Any], key: str, fmt: str) -> str:
    return format(r[key], fmt) if r.get("status") == "ok" else r.get("status", "")


def mem(r: dict[str, Any]) -> str:
    b = r.get("program_bytes")
    return f"{b / 2**20:,.1f} MiB" if b is not None and r.get("status") == "ok" else ""


def format_row(row: dict[str, Any]) -> str:
    a, b = row["jaxlab"], row["rejax"]
    ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "n/a"
    paired = row.get("ratio_paired")
    paired = f"{paired:.2f}" if paired is not None else "n/a"
    return (
        f"| {row['algo']} | {row['env']} | {row['seeds']} | {cell(a, 'steps_per_s', ',.0f')} | "
        f"{cell(b, 'steps_per_s', ',.0f')} | {ratio} | {paired} | {cell(a, 'compile_s', '.1f')} | "
        f"{cell(b, 'compile_s', '.1f')} | {cell(a, 'run_s', '.1f')} | {cell(b, 'run_s', '.1f')} | "
        f"{mem(a)} | {mem(b)} |"
    )


HEADER = (
    "| algo | env | seeds | jaxlab steps/s | rejax steps/s | ratio (best) | ratio (paired median)"
    " | jaxlab compile s | rejax compile s | jaxlab run s | rejax run s | jaxlab device mem | "
    "rejax device mem |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], overhead: str | None) -> str:
    dev, v = meta["device"], meta["versions"]
    lines = [
        f"# Seed scaling ({dev['platform']} {dev['kind']}, {dev['count']} device(s))",
        "",
        f"git {meta['git_sha']}{' (dirty)' if meta['git_dirty'] else ''}; jax {v['jax']}, "
        f"jaxlib {v['jaxlib']}, flax {v['flax']}, optax {v['optax']}, gymnax {v['gymnax']}, "
        f"rejax {meta['rejax']}; {meta['frames']:,} frames per seed; run s = best of "
        f"{meta['repeats']}, init included, both frameworks in one process per row with "
        f"their runs interleaved (compile s: each alone in a fresh process, cold, median of "
        f"{meta.get('compile_repeats', 1)}, init's run not included); evaluation off on "
        f"both sides; jaxlab "
        f"through `train` (logging and checkpoints on). Device memory: the training "
        f"program's peak by XLA's accounting (arguments + outputs + temporaries - donated).",
        "",
        HEADER,
        *[format_row(r) for r in rows if "seeds" in r],
    ]
    missing = [f"{r['algo']} {r['env']}" for r in rows if r.get("status") == "not implemented yet"]
    if missing:
        lines += ["", f"Not implemented yet in jaxlab: {', '.join(missing)}."]
    if overhead:
        lines += ["", overhead]
    return "\n".join(lines) + "\n"


def main() -> None:
    from jaxlab.networks.init import KERNEL_INITS  # (imports jaxlab first: its XLA flags)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["PPO", "DQN", "SAC"])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Breakout-MinAtar"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4096])
    parser.add_argument("--frames", type=int, default=500_000, help="frames per seed")
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    parser.add_argument(
        "--repeats", type=int, default=1, help="training runs per measurement; run s = best"
    )
    parser.add_argument(
        "--compile-repeats", type=int, default=3,
        help="fresh processes per framework for compile s (the median)",
    )  # fmt: skip
    parser.add_argument("--overhead-seeds", type=int, default=4)
    parser.add_argument("--overhead-frames", type=int, default=200_000)
    parser.add_argument(
        "--overhead-repeats", type=int, help="timed pairs (default: overhead.py's REPEATS)"
    )
    parser.add_argument("--no-overhead", action="store_true")
    parser.add_argument(
        "--kernel-init", default=PEER_KERNEL_INIT,
        choices=KERNEL_INITS,
        help="jaxlab's agent.net.kernel_init (default: rejax's, lecun_normal)",
    )  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compile_repeats < 1:
        parser.error(f"--compile-repeats must be at least 1, got {args.compile_repeats}")
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    import jaxlab  # noqa: F401
    from jaxlab.runtime.provenance import device_info, git_info, versions

    # This process starts JAX (device_info, the overhead runs) only once every row's
    # subprocess has finished: on a GPU, JAX's first use pre-allocates 75% of the card,
    # which the rows' subprocesses would then go without.
    git = git_info()
    from importlib import metadata

    try:
        rejax_version = metadata.version("rejax")
    except metadata.PackageNotFoundError:
        rejax_version = "not installed"
    meta = {
        "device": None,  # after the sweep (see above)
        "versions": versions(),
        "rejax": rejax_version,
        "git_sha": git["sha"],
        "git_dirty": git["dirty"],
        "frames": args.frames,
        "evaluation": "off on both sides",
        "jaxlab_kernel_init": args.kernel_init,
        "repeats": args.repeats,
        "compile_repeats": args.compile_repeats,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join(sys.argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    print(HEADER, flush=True)
    rows = sweep(args)
    meta["device"] = device_info()
    overhead, overhead_line = None, None
    if not args.no_overhead:
        sys.path.insert(0, str(HERE))
        from overhead import REPEATS, format_overhead, measure_overhead, overhead_spec
        from overhead import SPEC as OSPEC

        spec = overhead_spec(OSPEC, args.overhead_seeds, args.overhead_frames)
        overhead = measure_overhead(
            spec, REPEATS if args.overhead_repeats is None else args.overhead_repeats
        )
        overhead_line = format_overhead(overhead)
        print(overhead_line, flush=True)
    (args.out / "results.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "overhead": overhead}, indent=2)
    )
    (args.out / "results.md").write_text(markdown(meta, rows, overhead_line))
    sys.path.insert(0, str(HERE))
    from scaling_plot import plot

    plot(rows, args.out / "seed_scaling.png")
    print(f"wrote {args.out}/results.json, results.md, seed_scaling.png")


if __name__ == "__main__":
    main()
