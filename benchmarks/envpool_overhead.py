"""EnvPool inside jaxlab: the adapter's step and PPO training against EnvPool's own loop.

    python benchmarks/envpool_overhead.py [--steps 500] [--repeats 3]
        [--cases HalfCheetah-v5:16 Pong-v5:8] [--train-updates 4] [--out bench_out/]

For each ``id:envs`` case, each a ``jit(lax.scan(...))`` over ``--steps`` steps of the same
uniform random actions, alternating ``--repeats`` times (best of each):

* **own**: EnvPool's own XLA loop, ``handle, recv, send, step = pool.xla()`` with
  ``step`` scanned, as EnvPool documents it (float64 actions under ``enable_x64``): no
  auto-reset handling, no episode statistics;
* **adapter**: jaxlab's ``Env.step`` (``env.name: envpool/<id>``): the same step, plus
  the immediate reset of ended envs, the true final observation, the episode statistics
  and the float32 casts.

Then **train**: PPO on the shipped spec (``specs/ppo/ppo_envpool_halfcheetah.yaml`` or
``ppo_envpool_pong.yaml``) with the case's env count and one session for
``--train-updates`` updates, its env-steps/s from ``trial_summary.json`` (training wall
clock, compile excluded): what a run gets with its updates in the loop. (On this CPU the
Nature CNN's gradients, inside the training loop's control flow, run about 9x slower
than the same gradients at a program's top level: an XLA CPU behaviour, see
``benchmarks/RESULTS.md``.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jaxlab  # noqa: E402, F401, I001  (sets jaxlab's XLA flags before jax starts)

import envpool  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxlab.envs import make_env  # noqa: E402
from jaxlab.spec.schema import EnvSpec  # noqa: E402

SPECS = {
    "HalfCheetah-v5": "ppo/ppo_envpool_halfcheetah.yaml",
    "Pong-v5": "ppo/ppo_envpool_pong.yaml",
}


def random_actions(env: Any, steps: int) -> jax.Array:
    spec, n, key = env.action_spec, env.num_envs, jax.random.PRNGKey(2)
    if spec.discrete:
        return jax.random.randint(key, (steps, n), 0, spec.dim)
    return jax.random.uniform(key, (steps, n, spec.dim), minval=-1.0, maxval=1.0)


def own_program(env: Any) -> tuple[Any, Any]:
    """EnvPool's documented XLA loop over a pool of the same config and size."""
    pool = envpool.make(env.env_id, "gymnasium", num_envs=env.num_envs, **env.config)
    pool.reset()
    with jax.enable_x64(True):
        handle, _, _, step = pool.xla()

    def run(handle: jax.Array, actions: jax.Array) -> Any:
        def body(h: jax.Array, a: jax.Array) -> tuple:
            with jax.enable_x64(True):
                h, (_, reward, *_rest) = step(h, a.astype(env.action_dtype))
                return h, reward.astype(jnp.float32)

        return jax.lax.scan(body, handle, actions)

    return jax.jit(run), (handle, pool)


def adapter_program(env: Any) -> Any:
    def run(state: Any, actions: jax.Array) -> Any:
        def body(s: Any, a: jax.Array) -> tuple:
            s, out = env.step(jax.random.PRNGKey(0), s, a)
            return s, out.reward

        return jax.lax.scan(body, state, actions)

    return jax.jit(run)


def timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def train_sps(env_id: str, envs: int, updates: int) -> float:
    """Env-steps/s of PPO training on the shipped spec (one session, compile excluded)."""
    from jaxlab.cli import main
    from jaxlab.spec import load_spec

    horizon = load_spec(REPO / "specs" / SPECS[env_id]).agent.algorithm.time_horizon
    frames = updates * envs * horizon
    sets = [f"env.num_envs={envs}", f"env.max_frame={frames}", "meta.max_session=1"]
    sets += ["meta.eval_frequency=0", f"meta.log_frequency={envs * horizon}"]
    with tempfile.TemporaryDirectory() as data:
        args = ["train", str(REPO / "specs" / SPECS[env_id]), "--data", data, "--no-progress"]
        assert main([*args, "--no-report", *[a for s in sets for a in ("-s", s)]]) == 0
        run = next(p for p in Path(data).iterdir() if p.is_dir())
        return float(json.loads((run / "trial_summary.json").read_text())["fps_total"])


def measure(env_id: str, envs: int, steps: int, repeats: int, updates: int) -> dict:
    env = make_env(EnvSpec(name=f"envpool/{env_id}", num_envs=envs))
    actions = random_actions(env, steps)
    own, (handle, _pool) = own_program(env)
    adapter = adapter_program(env)
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    args = {"own": (own, handle), "adapter": (adapter, state)}
    for fn, first in args.values():
        timed(fn, first, actions)  # compile
    best: dict[str, float] = {}
    for _ in range(repeats):
        for kind, (fn, first) in args.items():
            best[kind] = min(best.get(kind, float("inf")), timed(fn, first, actions))
    sps = {k: envs * steps / v for k, v in best.items()}
    sps["train"] = train_sps(env_id, envs, updates) if updates else float("nan")
    return {"env": env_id, "envs": envs, **{f"{k}_sps": v for k, v in sps.items()},
            "adapter_over_own": sps["adapter"] / sps["own"], "train_over_own": sps["train"] / sps["own"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["HalfCheetah-v5:16", "Pong-v5:8"])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-updates", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "bench_out")
    args = parser.parse_args(argv)
    rows = []
    print("| env | envs | own steps/s | adapter steps/s | adapter/own | PPO training steps/s | training/own |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for case in args.cases:
        env_id, envs = case.rsplit(":", 1)
        row = measure(env_id, int(envs), args.steps, args.repeats, args.train_updates)
        rows.append(row)
        print(
            f"| {row['env']} | {row['envs']} | {row['own_sps']:,.0f} | {row['adapter_sps']:,.0f} | "
            f"{row['adapter_over_own']:.2f} | {row['train_sps']:,.0f} | {row['train_over_own']:.2f} |",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "envpool_overhead.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
