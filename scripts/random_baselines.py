"""Measure random-policy returns for every gymnax environment; write the shipped baselines JSON.

For each id in ``gymnax.registered_envs`` (sorted) this runs ``--episodes`` episodes of a
uniformly random policy (``env.action_space(params).sample``) fully vectorized: ``jax.vmap``
over episodes and one ``jax.lax.scan`` over ``params.max_steps_in_episode`` steps (capped at
``MAX_SCAN_STEPS``). gymnax >= 1.0 auto-resets inside ``step``, so each episode's return is
accumulated only up to its FIRST ``terminated | truncated`` and masked afterwards.

Usage::

    python scripts/random_baselines.py                      # all envs -> the shipped JSON
    python scripts/random_baselines.py --envs Pong-misc     # re-measure some, merge into file

Envs that fail to build or step (or have an action space other than Discrete/Box) are
skipped with a one-line reason, listed under ``_meta.skipped``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Import this checkout's jaxlab (a regular package whose __init__ sets jaxlab's XLA flags
# before jax starts its backend), not whatever an installed copy resolves to.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jaxlab  # noqa: E402, F401, I001

import gymnax  # noqa: E402, I001
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from gymnax.environments import spaces  # noqa: E402

DEFAULT_OUT = REPO / "jaxlab" / "analysis" / "random_baselines.json"
MAX_SCAN_STEPS = 10_000
META = "_meta"


class SkipEnv(Exception):
    """An env we cannot measure with a random policy (unsupported action space)."""


def scan_length(params: Any) -> tuple[int, bool]:
    """``(steps, capped)``: the env's ``max_steps_in_episode``, or ``MAX_SCAN_STEPS`` if absent/huge."""
    max_steps = getattr(params, "max_steps_in_episode", None)
    if max_steps is None:
        return MAX_SCAN_STEPS, True
    max_steps = int(max_steps)  # some envs store it as a float (BernoulliBandit-misc: 100.0)
    if max_steps > MAX_SCAN_STEPS:
        return MAX_SCAN_STEPS, True
    return max_steps, False


def rollout_random(
    env: Any, params: Any, episodes: int, steps: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``episodes`` random-policy episodes for at most ``steps`` steps each.

    Returns numpy ``(returns [E] float32, lengths [E] int32, finished [E] bool)``; an
    episode's return and length stop counting at its first ``terminated | truncated``.
    """
    space = env.action_space(params)
    if not isinstance(space, spaces.Discrete | spaces.Box):
        raise SkipEnv(f"unsupported action space {type(space).__name__}")

    def episode(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        key_reset, key_loop = jax.random.split(key)
        _, state = env.reset(key_reset, params)

        def body(carry: tuple, _: None) -> tuple[tuple, None]:
            state, key, ret, length, done = carry
            key, key_act, key_step = jax.random.split(key, 3)
            action = space.sample(key_act)
            _, state, reward, terminated, truncated, _ = env.step(key_step, state, action, params)
            alive = jnp.logical_not(done)
            reward = jnp.reshape(jnp.asarray(reward, jnp.float32), ())
            ret = ret + jnp.where(alive, reward, jnp.float32(0.0))
            length = length + alive.astype(jnp.int32)
            ended = jnp.logical_or(jnp.asarray(terminated, bool), jnp.asarray(truncated, bool))
            done = jnp.logical_or(done, jnp.reshape(ended, ()))
            return (state, key, ret, length, done), None

        init = (state, key_loop, jnp.float32(0.0), jnp.int32(0), jnp.bool_(False))
        (_, _, ret, length, done), _ = jax.lax.scan(body, init, None, length=steps)
        return ret, length, done

    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    ret, length, done = jax.jit(jax.vmap(episode))(keys)
    return np.asarray(ret), np.asarray(length), np.asarray(done)


def measure_env(env_id: str, episodes: int = 100, seed: int = 0) -> dict[str, Any]:
    """The random-policy baseline record of one gymnax env (see the module docstring).

    ``std`` is the population standard deviation (ddof=0) of the per-episode returns.
    Raises on envs that cannot be built/stepped; ``SkipEnv`` for unsupported action spaces.
    """
    env, params = gymnax.make(env_id)
    steps, capped = scan_length(params)
    returns, lengths, finished = rollout_random(env, params, episodes, steps, seed)
    returns = returns.astype(np.float64)
    record = {
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
        "episodes": int(episodes),
        "mean_length": float(lengths.astype(np.float64).mean()),
        "max_steps": int(steps),
        "capped": bool(capped),
    }
    unfinished = int((~finished).sum())
    if unfinished:
        print(
            f"  warning: {env_id}: {unfinished}/{episodes} episodes did not end within "
            f"{steps} steps (their returns are partial)",
            flush=True,
        )
    return record


def git_sha() -> str | None:
    """``git rev-parse HEAD`` of the jaxlab checkout, or None outside one."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= 200 else text[:197] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per env (100)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument(
        "--envs", nargs="+", metavar="ENV", help="measure only these ids, merging into --out"
    )
    args = parser.parse_args(argv)

    registered = sorted(gymnax.registered_envs)
    if args.envs:
        unknown = [e for e in args.envs if e not in registered]
        if unknown:
            parser.error(f"not gymnax envs: {', '.join(unknown)}")
        env_ids = sorted(set(args.envs))
    else:
        env_ids = registered

    data: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    episodes = args.episodes
    if args.envs and args.out.exists():
        data = json.loads(args.out.read_text())
        old_meta = data.pop(META, {})
        if old_meta.get("seed", args.seed) != args.seed:
            parser.error(
                f"{args.out} was measured with seed {old_meta['seed']}; merge with that seed"
            )
        skipped = {k: v for k, v in old_meta.get("skipped", {}).items() if k not in env_ids}
        # Per-env records carry their own episode counts; _meta keeps the full run's count.
        episodes = old_meta.get("episodes", episodes)

    total_start = time.perf_counter()
    for env_id in env_ids:
        start = time.perf_counter()
        try:
            record = measure_env(env_id, args.episodes, args.seed)
        except Exception as exc:  # any env that fails to build/step is skipped, not fatal
            reason = _reason(exc)
            skipped[env_id] = reason
            data.pop(env_id, None)
            print(f"{env_id:<26} SKIPPED ({time.perf_counter() - start:.1f}s): {reason}")
            continue
        data[env_id] = record
        cap = " capped" if record["capped"] else ""
        print(
            f"{env_id:<26} mean {record['mean']:>10.3f}  std {record['std']:>9.3f}  "
            f"len {record['mean_length']:>7.1f}/{record['max_steps']}{cap}  "
            f"E={record['episodes']}  {time.perf_counter() - start:.1f}s",
            flush=True,
        )

    data[META] = {
        "git_sha": git_sha(),
        "gymnax": _version("gymnax"),
        "jax": _version("jax"),
        "episodes": episodes,
        "seed": args.seed,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "skipped": dict(sorted(skipped.items())),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
    n_ok = len(env_ids) - len([e for e in env_ids if e in skipped])
    print(
        f"measured {n_ok}/{len(env_ids)} envs in {time.perf_counter() - total_start:.1f}s "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
