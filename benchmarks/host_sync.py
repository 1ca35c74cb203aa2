"""Host work at thousands of seeds: one log point (CSV rows, TensorBoard, histograms of
actions), one flush and one histogram sync of a PPO CartPole Trial of S sessions, with
real shapes (one real chunk's metrics and parameters, tiled to S) and no training.

    S=8192 python benchmarks/host_sync.py            # this checkout
    PYTHONPATH=<a checkout of another commit> S=8192 python benchmarks/host_sync.py

Settings through the environment: S (sessions, default 8192), REPS (default 5),
OVERRIDES (one more ``-s`` override for the S-session spec, e.g.
``meta.detailed_sessions=64``). Prints the medians over REPS calls."""

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

import jaxlab  # noqa: F401  (XLA flags before jax starts)
from jaxlab.lab.seeds import default_keys
from jaxlab.lab.trial import Trial
from jaxlab.runtime.loop import Loop
from jaxlab.runtime.run import new_outputs, start
from jaxlab.spec import load_spec

SPEC = Path(__file__).resolve().parent.parent / "specs" / "ppo" / "ppo_cartpole.yaml"
S = int(os.environ.get("S", 8192))
REPS = int(os.environ.get("REPS", 5))
print("jaxlab from", jaxlab.__file__, "S =", S, "device", jax.devices()[0])
over = [
    "meta.max_session=2",
    "env.max_frame=2048",
    "meta.log_frequency=512",
    "meta.eval_frequency=0",
]
small = load_spec(SPEC, over)
trial = Trial(small, default_keys(small))
state, _ = start(trial, [small])
state, pending = trial.dispatch(state, 0, 1)
metrics = {k: np.asarray(v)[:, 0] for k, v in jax.device_get(pending).items()}
reps = -(-S // 2)
row = {k: np.repeat(v, reps, axis=0)[:S] for k, v in metrics.items()}
params = jax.tree.map(
    lambda x: jnp.asarray(np.repeat(np.asarray(x), reps, axis=0)[:S]), state.params
)
jax.block_until_ready(params)
print("row keys/shapes:", {k: v.shape for k, v in row.items()})
print("param leaves:", [x.shape for x in jax.tree.leaves(params)])

extra = os.environ.get("OVERRIDES", "")
big = load_spec(SPEC, over[1:] + [f"meta.max_session={S}"] + ([extra] if extra else []))
keys = jnp.zeros((S, 2), jnp.uint32)
root = Path(tempfile.mkdtemp(prefix="jaxlab_host_sync_"))
t0 = time.perf_counter()
(root / "run").mkdir()
out = new_outputs(trial, big, root / "run", keys, 0, 1)
print(f"outputs (writers) set-up: {time.perf_counter() - t0:.3f} s")

rec, fl, hist = [], [], []
for i in range(REPS):
    frame = 512 * (i + 1)
    t0 = time.perf_counter()
    out.record(i, frame, row, 1000.0)
    rec.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    out.flush()
    fl.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    Loop.sync(SimpleNamespace(outputs=[out]), i, frame, SimpleNamespace(params=params), False)
    hist.append(time.perf_counter() - t0)
out.flush()


def fmt(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.4f} s  (all: {', '.join(f'{x:.4f}' for x in xs)})"


print("record (one log point):", fmt(rec))
print("flush:", fmt(fl))
print("histogram sync:", fmt(hist))
tb = sum(1 for _ in (root / "run").glob("session_*/tb"))
print("session tb dirs:", tb)
shutil.rmtree(root)
