"""One benchmark line per algorithm: training env-steps/s on CartPole-v1 at 1 and 16 seeds.

    python benchmarks/algorithms.py [--seeds 1 16] [--frames 100000] [--out bench_out/algorithms]
        [--specs specs/dqn/dqn_cartpole.yaml ...]

By default every shipped CartPole-v1 spec under ``specs/<algorithm>/`` is measured (one per
variant: e.g. DQN and Double DQN + PER), trained through ``jaxlab.runtime.run.train`` exactly as
``python -m jaxlab train`` does (CSV/TensorBoard logging and checkpoints on), with
evaluation off and ``env.max_frame`` set to ``--frames`` (rounded down to whole updates by
the spec). Each (spec, seeds) runs in its own subprocess, so compile time is cold and a
failure is recorded without stopping the sweep.

Columns: compile s (init + chunk), run s (after compiling), env-steps/s = seeds x frames
/ run s, and the 16-vs-1 seed scaling ratio. Writes ``algorithms.json`` and
``algorithms.md`` into ``--out`` with the device, versions and git SHA.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def cartpole_specs() -> list[Path]:
    """Every shipped spec that trains on CartPole-v1 (search specs excluded)."""
    import yaml

    found = []
    for path in sorted((REPO / "specs").glob("*/*.yaml")):
        if path.parent.name == "search":
            continue
        raw = yaml.safe_load(path.read_text())
        if isinstance(raw, dict) and raw.get("env", {}).get("name") == "CartPole-v1":
            found.append(path)
    return found


def measure(spec_path: str, seeds: int, frames: int) -> dict[str, Any]:
    """Train once in this process and return the timing summary."""
    import jaxlab  # noqa: F401  (XLA flags before jax starts)
    from jaxlab.runtime.run import train
    from jaxlab.spec import load_spec

    sets = [f"meta.max_session={seeds}", f"env.max_frame={frames}", "meta.eval_frequency=0"]
    spec = load_spec(spec_path, sets)
    with tempfile.TemporaryDirectory() as root:
        s = train(spec, root=root, progress=False, report=False).summary
    return {
        "algorithm": spec.agent.algorithm.name,
        "compile_s": s["compile_s"],
        "run_s": s["wall_clock_s"],
        "env_steps": s["frames_total"],
        "steps_per_s": s["fps_total"],
        "final_return_mean": s["final_return_mean"],
    }


def run_job(spec: Path, seeds: int, frames: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", json.dumps([str(spec), seeds, frames])]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:.0f}s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"failed: {tail[:200]}"}
    return {**json.loads(lines[-1]), "status": "ok"}


def environment() -> dict[str, Any]:
    from jaxlab.runtime.provenance import device_info, git_info, versions

    git = git_info()
    return {
        "device": device_info(),
        "versions": versions(),
        "git_sha": git["sha"],
        "git_dirty": git["dirty"],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join(sys.argv),
    }


def markdown(rows: list[dict[str, Any]], seeds: list[int], meta: dict[str, Any]) -> str:
    head = ["spec", "algorithm"]
    for s in seeds:
        head += [f"compile s ({s})", f"env-steps/s ({s} seed{'s' * (s > 1)})"]
    head.append(f"{seeds[-1]} vs {seeds[0]} seeds")
    lines = [
        f"Device: {meta['device']['kind']} ({meta['device']['platform']}); git "
        f"{(meta.get('git_sha') or '?')[:10]}; frames per seed {meta['frames']}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        cells = [row["spec"], row.get("algorithm", "?")]
        rates = []
        for s in seeds:
            r = row["by_seeds"][str(s)]
            if r.get("status") == "ok":
                cells += [f"{r['compile_s']:.1f}", f"{r['steps_per_s']:,.0f}"]
                rates.append(r["steps_per_s"])
            else:
                cells += ["-", r.get("status", "?")]
        ok = len(rates) == len(seeds)
        cells.append(f"{rates[-1] / rates[0]:.1f}x" if ok else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--specs", nargs="*", default=None)
    parser.add_argument("--out", default="bench_out/algorithms")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec, seeds, frames = json.loads(args.worker)
        print(json.dumps(measure(spec, seeds, frames)), flush=True)
        return
    specs = [Path(p).resolve() for p in args.specs] if args.specs else cartpole_specs()
    rows = []
    for spec in specs:
        row: dict[str, Any] = {"spec": str(spec.relative_to(REPO)), "by_seeds": {}}
        for seeds in args.seeds:
            r = run_job(spec, seeds, args.frames, args.timeout)
            row["by_seeds"][str(seeds)] = r
            row.setdefault("algorithm", r.get("algorithm"))
            rate = f"{r['steps_per_s']:,.0f} env-steps/s" if r["status"] == "ok" else r["status"]
            print(f"{row['spec']:45s} {seeds:5d} seeds: {rate}", flush=True)
        rows.append(row)
    meta = {**environment(), "frames": args.frames, "seeds": args.seeds}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "algorithms.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = markdown(rows, args.seeds, meta)
    (out / "algorithms.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
