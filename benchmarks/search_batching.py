"""Trial batching: a 16-setting PPO CartPole search, batched vs one setting per Ray trial.

Both searches run ``specs/search/ppo_cartpole_search.yaml`` (16 settings of lr, gamma and
entropy_coef x 4 seeds, the same settings since they are drawn from the same seed) with
the same frames per session, one after the other in this process, under embedded Ray:

* batched: ``meta.search_batch: 0``, i.e. the settings split into as many compiled
  programs as the machine runs Ray trials at once (2 on a 2-core machine: 8 settings x 4
  seeds = 32 sessions per program);
* unbatched: ``meta.search_batch: 1``, one Ray trial (process, compile) per setting.

Wall-clock covers everything a user waits for: Ray start, worker start, compiles,
training, per-trial reports. The per-trial final returns of both searches are compared
(they agree up to float rounding).

    python benchmarks/search_batching.py [--frames 100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import jaxlab  # noqa: F401  (XLA flags first)
from jaxlab.experiment.driver import search
from jaxlab.runtime.provenance import device_info, git_info, versions
from jaxlab.spec import load_spec

SPEC = Path(__file__).resolve().parent.parent / "specs" / "search" / "ppo_cartpole_search.yaml"


def run(batch: int, frames: int, trials: int, root: str) -> dict:
    spec = load_spec(
        SPEC,
        [f"meta.search_batch={batch}", f"env.max_frame={frames}", f"meta.max_trial={trials}"],
    )
    start = time.perf_counter()
    result = search(spec, root=root)
    wall = time.perf_counter() - start
    exp = result.exp_dir
    plan = json.loads((exp / "experiment.json").read_text())
    finals, compile_s, frames_total = {}, [], 0
    for name in plan["settings"]:
        s = json.loads((exp / name / "trial_summary.json").read_text())
        finals[name] = s["final_return_mean"]
        compile_s.append(s["compile_s"])
        frames_total += s["frames_total"]
    return {
        "search_batch": batch,
        "ray_trials": len(plan["groups"]),
        "settings_per_ray_trial": [len(g) for g in plan["groups"]],
        "wall_s": wall,
        "env_steps": frames_total,
        "env_steps_per_s": frames_total / wall,
        "compile_s_per_ray_trial": sorted(set(round(c, 2) for c in compile_s)),
        "final_return_mean": finals,
        "best_trial": result.summary["best_trial"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000, help="frames per session")
    parser.add_argument("--trials", type=int, default=16, help="settings (meta.max_trial)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        batched = run(0, args.frames, args.trials, root)
        unbatched = run(1, args.frames, args.trials, root)
    a = np.array([batched["final_return_mean"][k] for k in sorted(batched["final_return_mean"])])
    b = np.array([unbatched["final_return_mean"][k] for k in sorted(batched["final_return_mean"])])
    out = {
        "benchmark": "search_batching",
        "spec": str(SPEC.relative_to(SPEC.parents[2])),
        "frames_per_session": args.frames,
        "settings": args.trials,
        "device": device_info(),
        "versions": versions(),
        "git_sha": git_info()["sha"],
        "batched": batched,
        "unbatched": unbatched,
        "speedup": unbatched["wall_s"] / batched["wall_s"],
        "final_return_max_abs_diff": float(np.max(np.abs(a - b))),
    }
    print(
        f"{args.trials} PPO CartPole settings x 4 seeds x {args.frames:,} frames "
        f"({batched['env_steps']:,} env steps), {out['device']['kind']}:\n"
        f"  batched   ({batched['ray_trials']} Ray trials): {batched['wall_s']:7.1f} s  "
        f"{batched['env_steps_per_s']:>10,.0f} env-steps/s\n"
        f"  unbatched ({unbatched['ray_trials']} Ray trials): {unbatched['wall_s']:7.1f} s  "
        f"{unbatched['env_steps_per_s']:>10,.0f} env-steps/s\n"
        f"  speedup {out['speedup']:.2f}x; per-trial final returns differ by at most "
        f"{out['final_return_max_abs_diff']:.3g}"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
