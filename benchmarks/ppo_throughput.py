"""PPO CartPole training throughput: jaxlab vs rejax, side by side in one process.

For each seed count, jaxlab trains ``specs/ppo/ppo_cartpole.yaml`` through the full
``jaxlab.run.train`` path (CSV + TensorBoard logging and Orbax checkpoints on, to a
temporary directory) and rejax 0.1.3 trains the same PPO configuration
(``benchmarks/rejax_peer.py``) with its in-training evaluation switched off. Both are
timed after compilation; env-steps/s = seeds * frames per seed / run seconds.

    python benchmarks/ppo_throughput.py [--seeds 1 4 16 64] [--frames 500000] [--json out.json]

Needs the ``bench`` extra (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax

import jaxlab  # noqa: F401  (XLA flags first; they apply to both frameworks alike)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rejax_peer import time_rejax_ppo  # noqa: E402

from jaxlab.provenance import device_info, git_info, versions  # noqa: E402
from jaxlab.run import train  # noqa: E402
from jaxlab.spec import load_spec  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "specs" / "ppo" / "ppo_cartpole.yaml"


def time_jaxlab(num_seeds: int, frames: int) -> dict:
    spec = load_spec(SPEC, [f"meta.max_session={num_seeds}", f"env.max_frame={frames}"])
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        result = train(spec, root=root, progress=False)
        total = time.perf_counter() - start
    s = result.summary
    return {
        "compile_s": s["compile_s"],
        "run_s": s["wall_clock_s"],
        "total_s": total,
        "env_steps": s["frames_total"],
        "steps_per_s": s["fps_total"],
        "final_return_mean": s["final_return_mean"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--frames", type=int, default=500_000, help="frames per seed")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    dev = device_info()
    print(
        f"device: {dev['platform']} {dev['kind']} | jax {jax.__version__} | git {git_info()['sha']}"
    )
    header = f"{'seeds':>5} | {'jaxlab steps/s':>14} | {'rejax steps/s':>13} | {'ratio':>5} | {'jaxlab compile':>14} | {'rejax compile':>13} | {'jaxlab return':>13}"
    print(header)
    print("-" * len(header))
    rows = []
    for n in args.seeds:
        ours = time_jaxlab(n, args.frames)
        peer = time_rejax_ppo(n, args.frames, with_eval=False)
        ratio = ours["steps_per_s"] / peer["steps_per_s"]
        rows.append({"seeds": n, "jaxlab": ours, "rejax": peer, "ratio": ratio})
        print(
            f"{n:>5} | {ours['steps_per_s']:>14,.0f} | {peer['steps_per_s']:>13,.0f} | "
            f"{ratio:>5.2f} | {ours['compile_s']:>13.1f}s | {peer['compile_s']:>12.1f}s | "
            f"{ours['final_return_mean']:>13.1f}",
            flush=True,
        )
    if args.json:
        meta = {"device": dev, "versions": versions(), "git_sha": git_info()["sha"]}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
