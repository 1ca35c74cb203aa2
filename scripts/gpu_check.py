"""The GPU check: one script, under 9 minutes on one H100, one ``tag key=value`` line per check.

    JAX_PLATFORMS=cuda python scripts/gpu_check.py        # on the GPU machine
    python scripts/gpu_check.py --smoke                   # tiny sizes on CPU (CI runs this)

``JAX_PLATFORMS=cuda`` makes a jax without its CUDA plugin fail loudly instead of quietly
training on the CPU (as a ``jax @ file://...`` install with an empty constraint file
would). Checks, in order:

- ``device``: platform, kind, count, versions;
- ``driver``: the peak GPU memory a ``search`` driver process holds while its Trials run
  in Ray workers (must stay under 1 GiB: it should not touch the GPU at all);
- ``ppo_cartpole``: PPO CartPole through ``train`` (logging, evaluation, checkpoints on) at
  1, 64, 2048 and 8192 seeds: env-steps/s, compile s, and the overhead against the same
  updates in one bare compiled scan; an out-of-memory is reported, not raised;
- ``sync``: the cost of one sync point (evaluation + checkpoint) at 2048 seeds: a run
  that checkpoints at every log point against one that does at the end only;
- ``minatar``: PPO Breakout-MinAtar, Conv against MLP torso (per-seed convolutions become
  grouped convolutions under vmap);
- ``dqn_cartpole`` / ``sac_pendulum`` at 1 and 1024 / 256 seeds;
- ``conds``: the ``lax.cond`` s in one update of a 1-seed DQN, SAC and TD3-on-Brax as
  traced for this device: none on an accelerator (each would be a host round trip per
  update or env step), CPU's own where conds are cheap; and whether a run's short last
  chunk gets its own (tail) program, as it must where conds are not cheap;
- ``deterministic``: ``meta.deterministic`` reruns, in this process and in another one,
  compared by checkpoint fingerprint.

Exit status 1 when a check fails (an error, a mismatch, driver memory over 1 GiB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import jax  # noqa: E402

import jaxlab  # noqa: E402, F401  (XLA flags before jax starts)
from benchmarks.overhead import bare_runner  # noqa: E402
from jaxlab.algorithms import get_algorithm  # noqa: E402
from jaxlab.lab.trial import Trial  # noqa: E402
from jaxlab.rl.branching import cheap_conds  # noqa: E402
from jaxlab.runtime.checkpoint import fingerprint  # noqa: E402
from jaxlab.runtime.run import train  # noqa: E402
from jaxlab.spec import load_spec  # noqa: E402
from jaxlab.tools.profiling import count_primitive  # noqa: E402

SPECS = REPO / "specs"
FULL = {
    "ppo_seeds": (1, 64, 2048, 8192), "sync_seeds": 2048, "conv_seeds": 256,
    "dqn_seeds": (1, 1024), "sac_seeds": (1, 256), "steps": 2e8, "min_frames": 20_000,
    "max_frames": 200_000, "compile": "optimized",
}  # fmt: skip
SMOKE = {
    "ppo_seeds": (2,), "sync_seeds": 2, "conv_seeds": 2, "dqn_seeds": (2,), "sac_seeds": (2,),
    "steps": 4096, "min_frames": 2048, "max_frames": 2048, "compile": "fast",
}  # fmt: skip
DRIVER_LIMIT_MIB = 1024
FAILED: list[str] = []


def emit(tag: str, **values: Any) -> None:
    """One ``tag key=value ...`` line; a value with spaces is quoted."""
    text = " ".join(
        f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}" for k, v in values.items()
    )
    print(f"{tag} {text}", flush=True)


def frames_for(seeds: int, size: dict[str, Any]) -> int:
    """Frames per session: about ``size["steps"]`` env steps in all, within the bounds."""
    return int(min(size["max_frames"], max(size["min_frames"], size["steps"] // seeds)))


def spec_at(path: str, seeds: int, size: dict[str, Any], *sets: str) -> Any:
    """The shipped spec at ``path`` with ``seeds`` sessions and :func:`frames_for` frames
    (the smoke size: ``--shrink``'s tiny scale, which keeps every spec rule)."""
    if size is SMOKE:
        return load_spec(SPECS / path, [f"meta.max_session={seeds}", *sets], shrink=True)
    frames = frames_for(seeds, size)
    base = [f"meta.max_session={seeds}", f"env.max_frame={frames}"]
    return load_spec(SPECS / path, [*base, f"meta.compile={size['compile']}", *sets])


def timed_train(spec: Any) -> dict[str, Any]:
    """``train`` (report off) into a temporary folder: its summary and final state."""
    with tempfile.TemporaryDirectory() as root:
        result = train(spec, root=root, progress=False, report=False)
    return {**result.summary, "state": result.state}


def rate(summary: dict[str, Any]) -> float:
    return summary["frames_total"] / max(summary["wall_clock_s"], 1e-9)


def guarded(tag: str, check: Any, **labels: Any) -> None:
    """Run one check; an error (out of memory included) is a failed line, not a crash."""
    try:
        check()
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        oom = "RESOURCE_EXHAUSTED" in str(err) or "out of memory" in str(err).lower()
        FAILED.append(tag)
        emit(tag, **labels, ok=False, error="OOM" if oom else type(err).__name__)


def check_device() -> None:
    dev = jax.devices()[0]
    emit(
        "device", platform=dev.platform, kind=dev.device_kind, count=jax.device_count(),
        jax=jax.__version__, jaxlib=jax.lib.__version__, python=platform.python_version(),
    )  # fmt: skip


def gpu_mib(pid: int) -> int:
    """GPU memory (MiB) that process ``pid`` holds, from nvidia-smi (0 when none)."""
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    rows = [line.split(",") for line in out.splitlines() if line.strip()]
    return sum(int(mib) for p, mib in rows if int(p) == pid)


def check_driver(size: dict[str, Any]) -> None:
    """A shrunk ``search`` run as its own process, its GPU memory polled while it runs."""
    if size is SMOKE or jax.devices()[0].platform != "gpu":
        emit("driver", skipped="no GPU to measure")
        return
    with tempfile.TemporaryDirectory() as data:
        cmd = [
            sys.executable,
            "-m",
            "jaxlab",
            "search",
            str(SPECS / "search" / "ppo_cartpole_search.yaml"),
        ]
        proc = subprocess.Popen(
            [*cmd, "--shrink", "--data", data], cwd=REPO, stdout=subprocess.DEVNULL
        )
        peak = 0
        while proc.poll() is None:
            peak = max(peak, gpu_mib(proc.pid))
            time.sleep(0.5)
    ok = proc.returncode == 0 and peak < DRIVER_LIMIT_MIB
    if not ok:
        FAILED.append("driver")
    emit("driver", peak_gpu_mib=peak, limit_mib=DRIVER_LIMIT_MIB, exit=proc.returncode, ok=ok)


def check_ppo(seeds: int, size: dict[str, Any]) -> None:
    spec = spec_at("ppo/ppo_cartpole.yaml", seeds, size)
    s = timed_train(spec)
    _, bare = bare_runner(spec)
    bare()  # warm-up
    bare_s = bare()
    overhead = s["wall_clock_s"] / bare_s - 1
    emit(
        "ppo_cartpole", seeds=seeds, frames=s["frames_per_session"], steps_per_s=f"{rate(s):.4g}",
        compile_s=f"{s['compile_s']:.1f}", bare_steps_per_s=f"{s['frames_total'] / bare_s:.4g}",
        overhead=f"{overhead:+.1%}", ok=True,
    )  # fmt: skip


def check_sync(seeds: int, size: dict[str, Any]) -> None:
    """Seconds one sync point adds: every log point a checkpoint and an evaluation, against
    a run whose only sync point is its end."""
    spec = spec_at("ppo/ppo_cartpole.yaml", seeds, size)
    log = spec.meta.log_frequency
    path, each = (
        "ppo/ppo_cartpole.yaml",
        [f"meta.checkpoint_frequency={log}", f"meta.eval_frequency={log}"],
    )
    every = timed_train(spec_at(path, seeds, size, *each))
    once = timed_train(spec_at(path, seeds, size, "meta.eval_frequency=0"))
    points = max(spec.derived.num_chunks - 1, 1)
    per_sync = (every["wall_clock_s"] - once["wall_clock_s"]) / points
    emit("sync", seeds=seeds, sync_points=points, per_sync_s=f"{per_sync:.3f}", ok=True)


def check_minatar(seeds: int, size: dict[str, Any]) -> None:
    conv = timed_train(spec_at("ppo/ppo_breakout_minatar.yaml", seeds, size))
    mlp = timed_train(spec_at("ppo/ppo_breakout_minatar.yaml", seeds, size, "agent.net.type=MLP"))
    emit(
        "minatar", seeds=seeds, conv_steps_per_s=f"{rate(conv):.4g}",
        mlp_steps_per_s=f"{rate(mlp):.4g}", conv_over_mlp=f"{rate(conv) / rate(mlp):.2f}", ok=True,
    )  # fmt: skip


def check_offpolicy(tag: str, path: str, seeds: int, size: dict[str, Any]) -> None:
    s = timed_train(spec_at(path, seeds, size))
    emit(tag, seeds=seeds, steps_per_s=f"{rate(s):.4g}", compile_s=f"{s['compile_s']:.1f}", ok=True)


def check_conds() -> None:
    """Each cond would be a host round trip per update on an accelerator (module doc)."""
    cheap = cheap_conds(jax.default_backend())
    counts = {}
    for name, path in (
        ("dqn", "dqn/dqn_cartpole.yaml"),
        ("sac", "sac/sac_pendulum.yaml"),
        ("td3_brax", "td3/td3_brax_inverted_pendulum.yaml"),
    ):
        spec = load_spec(SPECS / path, ["meta.max_session=1"], shrink=True)
        agent = get_algorithm(spec.agent.algorithm.name).make(spec)
        state = jax.eval_shape(agent.init, jax.ShapeDtypeStruct((2,), jax.numpy.uint32))
        counts[name] = count_primitive(jax.make_jaxpr(agent.update)(state).jaxpr, "cond")
    spec = load_spec(SPECS / "dqn/dqn_cartpole.yaml", ["meta.max_session=1"], shrink=True)
    fpu = spec.derived.frames_per_update  # 3 updates in chunks of 2
    short = spec.replace(
        env=dataclasses.replace(spec.env, max_frame=3 * fpu),
        meta=dataclasses.replace(spec.meta, log_frequency=2 * fpu),
    )
    tail = Trial(short).group_limit(0) == 1  # chunk 0 may not take the tail along
    cpu_counts = {"dqn": 1, "sac": 1, "td3_brax": 2}  # learning_starts; the env restart
    ok = counts == (cpu_counts if cheap else dict.fromkeys(counts, 0)) and tail != cheap
    if not ok:
        FAILED.append("conds")
    emit("conds", **counts, tail_program=tail, cheap_conds=cheap, ok=ok)


def deterministic_fingerprint(seeds: int, size: dict[str, Any]) -> list[int]:
    spec = spec_at("ppo/ppo_cartpole.yaml", seeds, size, "meta.deterministic=true")
    return fingerprint(timed_train(spec)["state"])


def check_deterministic(seeds: int, size: dict[str, Any]) -> None:
    """Two reruns here and one in a fresh process give the same state, bit for bit."""
    first, second = deterministic_fingerprint(seeds, size), deterministic_fingerprint(seeds, size)
    flag = "--smoke" if size is SMOKE else "--full"
    other = subprocess.run(
        [sys.executable, __file__, flag, "--fingerprint-only", str(seeds)],
        capture_output=True, text=True, cwd=REPO, check=True, env=os.environ,
    ).stdout.splitlines()[-1]  # fmt: skip
    here, there = first == second, json.loads(other) == first
    if not (here and there):
        FAILED.append("deterministic")
    emit(
        "deterministic",
        seeds=seeds,
        in_process_equal=here,
        cross_process_equal=there,
        ok=here and there,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CPU, CI)")
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fingerprint-only", type=int, metavar="SEEDS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = SMOKE if args.smoke else FULL
    if args.fingerprint_only:
        print(json.dumps(deterministic_fingerprint(args.fingerprint_only, size)))
        return 0
    started = time.perf_counter()
    check_device()
    guarded("driver", lambda: check_driver(size))
    for seeds in size["ppo_seeds"]:
        guarded("ppo_cartpole", lambda s=seeds: check_ppo(s, size), seeds=seeds)
    guarded("sync", lambda: check_sync(size["sync_seeds"], size), seeds=size["sync_seeds"])
    guarded("minatar", lambda: check_minatar(size["conv_seeds"], size), seeds=size["conv_seeds"])
    for tag, path in (
        ("dqn_cartpole", "dqn/dqn_cartpole.yaml"),
        ("sac_pendulum", "sac/sac_pendulum.yaml"),
    ):
        for seeds in size[f"{tag[:3]}_seeds"]:
            check = lambda t=tag, p=path, s=seeds: check_offpolicy(t, p, s, size)  # noqa: E731
            guarded(tag, check, seeds=seeds)
    guarded("conds", check_conds)
    guarded(
        "deterministic",
        lambda: check_deterministic(size["ppo_seeds"][-1] if size is SMOKE else 64, size),
    )
    emit("total", seconds=f"{time.perf_counter() - started:.0f}", failed=",".join(FAILED) or "none")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
