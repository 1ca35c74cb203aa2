"""Env-suite adapter overhead: the adapter's batched step against the suite's own step.

    python benchmarks/suite_overhead.py [--envs 64] [--steps 200] [--repeats 5] [--out DIR]
        [--suites brax playground craftax jumanji jumanji-maze navix xminigrid]

For one cheap env per suite, and Jumanji's Maze (``CASES``: its reset generates a maze),
three programs over the same random actions, each ``jit(lax.scan(...))`` over ``--steps``
steps of ``--envs`` envs:

* **own**: the suite's own batched, auto-resetting step, as the suite ships it
  (:func:`own_step`): Brax's ``training.wrap`` (episode and auto-reset wrappers, reset to
  the first state), Playground's ``wrap_for_brax_training``, Craftax's auto-reset env,
  Jumanji's ``VmapAutoResetWrapper`` with ``next_obs_in_extras`` (the true final
  observation, which the adapter also returns: the only suite here that can), navix's ``step`` (it resets ended episodes
  itself), xminigrid's ``GymAutoResetWrapper``; each ``vmap``ped where the suite does
  not batch itself;
* **raw**: the suite's bare step, ``vmap``ped, with no reset at all (the adapter's
  ``step_one`` hook): a lower bound no usable env reaches, as ended episodes run on;
* **adapter**: the adapter's ``Env.step`` (what training runs): the step plus the time
  limit, auto-reset in the env's default reset mode, the true final observation and the
  episode statistics.

The three alternate ``--repeats`` times (a shared machine's load hits all alike); the
table gives the best env-steps/s of each, the ratios adapter / own (the issue's target:
at least 0.95) and adapter / raw, and the compile seconds of each program (the first
call less a steady call).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jaxlab  # noqa: E402, F401, I001  (sets jaxlab's XLA flags before jax starts)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxlab.envs import make_env  # noqa: E402
from jaxlab.envs.adapter import suite_code  # noqa: E402
from jaxlab.spec.schema import EnvSpec  # noqa: E402

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "brax": ("brax/inverted_pendulum", {"backend": "mjx"}),
    "playground": ("playground/CartpoleBalance", {"impl": "jax"}),
    "craftax": ("craftax/Craftax-Classic-Symbolic-v1", {}),
    "jumanji": ("jumanji/Snake-v1", {}),
    "jumanji-maze": ("jumanji/Maze-v0", {}),  # a costly reset: generating a maze
    "navix": ("navix/Navix-Empty-5x5-v0", {}),
    "xminigrid": ("xminigrid/MiniGrid-Empty-5x5", {}),
}


def random_actions(env: Any, key: jax.Array, steps: int) -> jax.Array:
    """``[steps, N]`` discrete or ``[steps, N, A]`` continuous uniform actions."""
    spec, n = env.action_spec, env.num_envs
    if spec.discrete:
        return jax.random.randint(key, (steps, n), 0, spec.dim)
    low, high = jnp.asarray(spec.low.reshape(-1)), jnp.asarray(spec.high.reshape(-1))
    return jax.random.uniform(key, (steps, n, spec.dim), minval=low, maxval=high)


def own_step(suite: str, name: str, env: Any) -> tuple[Any, Any]:
    """The suite's own batched auto-resetting ``(reset(key), step(state, action, key) ->
    (state, reward))`` for ``env``'s id and ``num_envs`` (see the module docstring)."""
    env_id, n = name.split("/", 1)[1], env.num_envs
    if suite in ("brax", "playground"):
        if suite == "brax":
            from brax.envs import get_environment, training

            own = training.wrap(get_environment(env_id, backend="mjx"), episode_length=1000)
        else:
            from mujoco_playground import registry, wrapper

            task = registry.load(env_id, config_overrides={"impl": "jax"})
            own = wrapper.wrap_for_brax_training(task, episode_length=1000)
        return (
            lambda key: own.reset(jax.random.split(key, n)),
            lambda s, a, k: (lambda t: (t, t.reward))(own.step(s, a)),
        )
    if suite == "craftax":
        from craftax.craftax_env import make_craftax_env_from_name

        cx = make_craftax_env_from_name(env_id, auto_reset=True)
        p = cx.default_params
        reset = jax.vmap(lambda k: cx.reset(k, p)[1])
        step = jax.vmap(lambda k, s, a: cx.step(k, s, a, p)[1:3])
        return lambda key: reset(jax.random.split(key, n)), lambda s, a, k: step(
            jax.random.split(k, n), s, a
        )
    if suite == "jumanji":
        import jumanji
        from jumanji.wrappers import VmapAutoResetWrapper

        jm = VmapAutoResetWrapper(jumanji.make(env_id), next_obs_in_extras=True)
        return lambda key: jm.reset(jax.random.split(key, n)), lambda s, a, k: (
            lambda out: (out, out[1].reward)
        )(jm.step(s[0], a))
    if suite == "navix":
        nav = env.env
        return lambda key: jax.vmap(nav.reset)(jax.random.split(key, n)), lambda s, a, k: (
            lambda t: (t, t.reward)
        )(jax.vmap(nav.step)(s, a))
    from xminigrid.wrappers import GymAutoResetWrapper

    xm, p = GymAutoResetWrapper(env.env), env.env_params
    reset = jax.vmap(lambda k: xm.reset(p, k))
    step = jax.vmap(lambda t, a: xm.step(p, t, a))
    return lambda key: reset(jax.random.split(key, n)), lambda s, a, k: (lambda t: (t, t.reward))(
        step(s, a)
    )


def programs(env: Any) -> dict[str, Any]:
    """``name -> jitted (state, actions) -> (final state, rewards)`` for the suite and the
    adapter (the final state is returned so XLA cannot drop the physics: a constant reward,
    as inverted_pendulum's, would otherwise be all that is left)."""

    def suite(state: Any, actions: jax.Array) -> jax.Array:
        def body(inner: Any, xs: tuple) -> tuple:
            key, action = xs
            keys = jax.random.split(key, env.num_envs)
            with suite_code():
                inner, _, reward, _, _ = jax.vmap(env.step_one)(keys, inner, action)
            return inner, reward

        keys = jax.random.split(jax.random.PRNGKey(1), actions.shape[0])
        return jax.lax.scan(
            body, state.env_state.current, (keys, jax.vmap(env.env_action)(actions))
        )

    def adapter(state: Any, actions: jax.Array) -> jax.Array:
        def body(s: Any, xs: tuple) -> tuple:
            key, action = xs
            s, out = env.step(key, s, action)
            return s, out.reward

        keys = jax.random.split(jax.random.PRNGKey(1), actions.shape[0])
        return jax.lax.scan(body, state, (keys, actions))

    return {"raw": jax.jit(suite), "adapter": jax.jit(adapter)}


def own_program(reset: Any, step: Any) -> Any:
    """The suite's own step scanned like the others: ``(key, actions) -> (state, rewards)``."""

    def run(key: jax.Array, actions: jax.Array) -> tuple:
        def body(s: Any, xs: tuple) -> tuple:
            k, action = xs
            with suite_code():
                return step(s, action, k)

        with suite_code():
            state = reset(key)
        keys = jax.random.split(jax.random.PRNGKey(1), actions.shape[0])
        return jax.lax.scan(body, state, (keys, actions))

    return jax.jit(run)


def measure(suite: str, envs: int, steps: int, repeats: int) -> dict:
    name, params = CASES[suite]
    env = make_env(EnvSpec(name=name, num_envs=envs, params=params))
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    actions = random_actions(env, jax.random.PRNGKey(2), steps)
    args = {"raw": (state, actions), "adapter": (state, actions)}
    args["own"] = (jax.random.PRNGKey(0), jax.vmap(env.env_action)(actions))
    fns = {"own": own_program(*own_step(name.split("/")[0], name, env)), **programs(env)}
    best, compile_s = {}, {}
    for kind, fn in fns.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(*args[kind]))
        compile_s[kind] = time.perf_counter() - start - timed(fn, *args[kind])
    for _ in range(repeats):
        for kind, fn in fns.items():
            best[kind] = min(best.get(kind, float("inf")), timed(fn, *args[kind]))
    sps = {k: envs * steps / v for k, v in best.items()}
    return {"env": name, "envs": envs, "reset_mode": env.reset_mode, "compile_s": compile_s,
            **{f"{k}_sps": v for k, v in sps.items()},
            "ratio_own": sps["adapter"] / sps["own"], "ratio_raw": sps["adapter"] / sps["raw"]}  # fmt: skip


def timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--suites", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", type=Path, default=REPO / "bench_out")
    args = parser.parse_args(argv)
    rows = []
    print("| env | reset | own steps/s | raw steps/s | adapter steps/s | adapter/own | "
          "adapter/raw | compile s (own, raw, adapter) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for suite in args.suites:
        row = measure(suite, args.envs, args.steps, args.repeats)
        rows.append(row)
        c = row["compile_s"]
        print(
            f"| {row['env']} | {row['reset_mode']} | {row['own_sps']:,.0f} | "
            f"{row['raw_sps']:,.0f} | {row['adapter_sps']:,.0f} | {row['ratio_own']:.2f} | "
            f"{row['ratio_raw']:.2f} | {c['own']:.1f}, {c['raw']:.1f}, {c['adapter']:.1f} |",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "suite_overhead.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
