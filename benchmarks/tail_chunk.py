"""A short last chunk on CPU: masked in the one group program (what the CPU does) against
a tail program of its own (what an accelerator does, :mod:`jaxlab.rl.branching`).

    python benchmarks/tail_chunk.py [--frames 50000] [--repeats 2]

PPO CartPole (4 seeds) through ``train``, its persistent compile cache off, each side in a
fresh process, the sides alternating. The default 5e4 frames are 97 updates in chunks of
20, so the last chunk holds 17. Prints ``compile_s`` (the tail's compile counts in it,
when the run has to wait for it) and ``wall_clock_s`` (training only) per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHILD = """
import json, sys, tempfile
import jaxlab
from jaxlab.lab import trial
from jaxlab.runtime.run import train
from jaxlab.spec import load_spec
if sys.argv[1] == "tail":
    trial.cheap_conds = lambda platform: False  # as on an accelerator
spec = load_spec(sys.argv[2], [f"env.max_frame={sys.argv[3]}"])
with tempfile.TemporaryDirectory() as root:
    s = train(spec, root=root, progress=False, report=False).summary
print(json.dumps({k: s[k] for k in ("compile_s", "wall_clock_s", "final_return_mean")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    spec = REPO / "specs" / "ppo" / "ppo_cartpole.yaml"
    env = {**os.environ, "JAXLAB_XLA_CACHE": "off"}
    for _ in range(args.repeats):
        for side in ("masked", "tail"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, side, str(spec), str(args.frames)],
                capture_output=True, text=True, check=True, env=env, cwd=REPO,
            )  # fmt: skip
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{side:6s} compile {row['compile_s']:.2f} s, run {row['wall_clock_s']:.2f} s, "
                f"final return {row['final_return_mean']:.2f}"
            )


if __name__ == "__main__":
    main()
