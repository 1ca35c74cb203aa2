"""Measure random-policy returns for every gymnax environment and every shipped spec's
suite env; write the shipped baselines JSON.

gymnax: for each id in ``gymnax.registered_envs`` (sorted) this runs ``--episodes`` episodes
of a uniformly random policy (``env.action_space(params).sample``) fully vectorized:
``jax.vmap`` over episodes and one ``jax.lax.scan`` over ``params.max_steps_in_episode``
steps (capped at ``MAX_SCAN_STEPS``). gymnax >= 1.0 auto-resets inside ``step``, so each
episode's return is accumulated only up to its FIRST ``terminated | truncated`` and masked
afterwards.

Suite envs: every ``specs/**/*.yaml`` whose ``env.name`` is ``<suite>/<id>`` (not a bare
gymnax id) is built through the env protocol (``jaxlab.envs.make_env``) with the spec's
``env.params`` and ``--suite-episodes`` envs (default 16: MuJoCo envs step only ~1-2k
env-steps/s on a CPU), each playing one episode of a uniformly random policy through
:func:`jaxlab.lab.evaluate.make_episodes` (discrete: uniform over the actions the env's
action mask allows, else over all; continuous: uniform in ``[low, high]``). Its record,
under the key ``env.name``, also holds ``params``. ``max_steps`` is the env's
``max_episode_steps``; ``capped`` is true when the env has no time limit of its own and
some episode ran that whole bound (its return may be partial). When two specs name one env
with different params, the first spec (sorted by path) wins, with a warning.

Usage::

    python scripts/random_baselines.py                      # everything -> the shipped JSON
    python scripts/random_baselines.py --envs Pong-misc     # re-measure some, merge into file
    python scripts/random_baselines.py --envs brax/ant      # a spec's suite env, merged
    python scripts/random_baselines.py --suites-only        # all spec suite envs, merged

Envs that fail to build or step (or have an action space other than Discrete/Box) are
skipped with a one-line reason, listed under ``_meta.skipped`` (gymnax) or
``_meta.suite_skipped`` (suite envs). ``--suites-only`` replaces every suite record and
keeps the gymnax ones; ``--envs`` replaces only the envs it names.
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
from types import SimpleNamespace
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

from jaxlab.envs import SUITES, Env, make_env, split_name  # noqa: E402
from jaxlab.lab.evaluate import make_episodes  # noqa: E402
from jaxlab.spec import load_spec  # noqa: E402

DEFAULT_OUT = REPO / "jaxlab" / "analysis" / "random_baselines.json"
SPECS_DIR = REPO / "specs"
MAX_SCAN_STEPS = 10_000
SUITE_EPISODES = 16  # suite envs: one episode per env of one batched env
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


def summarize(
    returns: np.ndarray, lengths: np.ndarray, episodes: int, steps: int, capped: bool
) -> dict[str, Any]:
    """The record fields shared by both paths; ``std`` is the population std (ddof=0)."""
    returns = np.asarray(returns, np.float64)
    return {
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
        "episodes": int(episodes),
        "mean_length": float(np.asarray(lengths, np.float64).mean()),
        "max_steps": int(steps),
        "capped": bool(capped),
    }


def measure_env(env_id: str, episodes: int = 100, seed: int = 0) -> dict[str, Any]:
    """The random-policy baseline record of one gymnax env (see the module docstring).

    ``std`` is the population standard deviation (ddof=0) of the per-episode returns.
    Raises on envs that cannot be built/stepped; ``SkipEnv`` for unsupported action spaces.
    """
    env, params = gymnax.make(env_id)
    steps, capped = scan_length(params)
    returns, lengths, finished = rollout_random(env, params, episodes, steps, seed)
    record = summarize(returns, lengths, episodes, steps, capped)
    unfinished = int((~finished).sum())
    if unfinished:
        print(
            f"  warning: {env_id}: {unfinished}/{episodes} episodes did not end within "
            f"{steps} steps (their returns are partial)",
            flush=True,
        )
    return record


class RandomAgent:
    """A uniformly random policy over an env's actions, for :func:`make_episodes`.

    Discrete: uniform over the actions the env's mask allows (the last ``mask_dim`` entries
    of each observation, 1 = allowed; all actions where none is), else over all.
    Continuous: uniform in ``[low, high]`` per dimension.
    """

    def __init__(self, env: Env) -> None:
        self.spec = env.action_spec
        self.mask_dim = env.observation_spec.mask_dim
        if not self.spec.discrete:
            low, high = np.asarray(self.spec.low), np.asarray(self.spec.high)
            if not (np.isfinite(low).all() and np.isfinite(high).all()):
                raise SkipEnv("continuous action bounds are not finite")
            self.low = low.reshape(-1).astype(np.float32)
            self.high = high.reshape(-1).astype(np.float32)

    def policy(self, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        del state, deterministic  # random either way
        n = obs.shape[0]
        if not self.spec.discrete:
            shape = (n, self.low.shape[0])
            return jax.random.uniform(key, shape, jnp.float32, self.low, self.high)
        if self.mask_dim == 0:
            return jax.random.randint(key, (n,), 0, self.spec.dim, jnp.int32)
        allowed = obs[:, -self.mask_dim :] > 0.5
        allowed = allowed | ~allowed.any(axis=-1, keepdims=True)
        logits = jnp.where(allowed, 0.0, -jnp.inf)
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def measure_suite_env(
    name: str, params: dict[str, Any], episodes: int = SUITE_EPISODES, seed: int = 0
) -> dict[str, Any]:
    """The random-policy record of a suite env through the env protocol: ``episodes``
    envs of ``name`` built with ``params``, one episode each (see the module docstring)."""
    env = make_env(SimpleNamespace(name=name, num_envs=episodes, params=params), evaluation=True)
    run = jax.jit(make_episodes(RandomAgent(env), env, deterministic=False))
    result = run(None, jax.random.PRNGKey(seed))
    returns, lengths = np.asarray(result.returns), np.asarray(result.lengths)
    steps = int(env.max_episode_steps)
    full = int((lengths >= steps).sum()) if env.time_limit is None else 0
    if full:
        print(
            f"  warning: {name}: {full}/{episodes} episodes ran all {steps} steps with no time "
            "limit of the env's own (their returns may be partial)",
            flush=True,
        )
    return {**summarize(returns, lengths, episodes, steps, full > 0), "params": dict(params)}


def spec_envs(root: Path = SPECS_DIR) -> dict[str, dict[str, Any]]:
    """``env.name -> env.params`` of every spec under ``root`` whose env is a suite's
    (``<suite>/<id>``); the first spec (sorted by path) wins a name. Specs that fail to
    load are reported and left out."""
    envs: dict[str, dict[str, Any]] = {}
    source: dict[str, str] = {}
    for path in sorted(root.glob("**/*.yaml")):
        rel = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        try:
            env = load_spec(path).env
        except Exception as exc:  # a spec being written, or broken: not fatal here
            print(f"  warning: {rel}: cannot load spec ({_reason(exc)}); its env is left out")
            continue
        if "/" not in env.name:
            continue  # a bare gymnax id: the gymnax path measures it
        params = json.loads(json.dumps(dict(env.params)))  # plain JSON values
        if env.name not in envs:
            envs[env.name], source[env.name] = params, rel
        elif envs[env.name] != params:
            print(
                f"  warning: {rel}: {env.name} params {params} differ from "
                f"{source[env.name]}'s {envs[env.name]}; keeping the first"
            )
    return envs


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


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per gymnax env (100)")
    parser.add_argument(
        "--suite-episodes",
        type=int,
        default=SUITE_EPISODES,
        help=f"episodes per spec suite env ({SUITE_EPISODES}; MuJoCo envs are slow on a CPU)",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--specs", type=Path, default=SPECS_DIR, help="spec folder (specs/)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--envs",
        nargs="+",
        metavar="ENV",
        help="measure only these (gymnax ids, or <suite>/<id> of a spec), merging into --out",
    )
    which.add_argument(
        "--suites-only",
        action="store_true",
        help="measure only the specs' suite envs, keeping --out's gymnax records",
    )
    return parser, parser.parse_args(argv)


def select(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """``(gymnax ids, suite env name -> params)`` to measure."""
    registered = sorted(gymnax.registered_envs)
    if args.suites_only:
        return [], spec_envs(args.specs)
    if not args.envs:
        return registered, spec_envs(args.specs)
    names = sorted(set(args.envs))
    suite_names = [e for e in names if "/" in e]
    known = spec_envs(args.specs) if suite_names else {}
    unknown = [e for e in names if e not in known and e not in registered]
    if unknown:
        parser.error(f"neither gymnax envs nor spec suite envs: {', '.join(unknown)}")
    return [e for e in names if "/" not in e], {e: known[e] for e in suite_names}


def load_existing(
    parser: argparse.ArgumentParser, args: argparse.Namespace, gym_ids: list[str], suite: dict
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(records, meta)`` to merge into: ``--out``'s, less what this run re-measures and
    its stale skips; empty for a full run."""
    if not (args.envs or args.suites_only) or not args.out.exists():
        return {}, {}
    data = json.loads(args.out.read_text())
    meta = data.pop(META, {})
    if meta.get("seed", args.seed) != args.seed:
        parser.error(f"{args.out} was measured with seed {meta['seed']}; merge with that seed")
    redo = set(gym_ids) | set(suite)
    if args.suites_only:  # every suite record is replaced by this run's
        redo |= {k for k in data if "/" in k}
        meta["suite_skipped"] = {}
    for key in ("skipped", "suite_skipped"):
        meta[key] = {k: v for k, v in meta.get(key, {}).items() if k not in redo}
    return {k: v for k, v in data.items() if k not in redo}, meta


def measure_all(
    names: list[str], measure: Any, data: dict[str, Any], skipped: dict[str, str]
) -> int:
    """``measure(name) -> record`` for each name into ``data`` (failures into ``skipped``,
    one printed line each); returns how many succeeded."""
    ok = 0
    for name in names:
        start = time.perf_counter()
        try:
            record = measure(name)
        except Exception as exc:  # any env that fails to build/step is skipped, not fatal
            reason = _reason(exc)
            skipped[name] = reason
            data.pop(name, None)
            print(f"{name:<26} SKIPPED ({time.perf_counter() - start:.1f}s): {reason}")
            continue
        data[name], ok = record, ok + 1
        skipped.pop(name, None)
        cap = " capped" if record["capped"] else ""
        print(
            f"{name:<26} mean {record['mean']:>10.3f}  std {record['std']:>9.3f}  "
            f"len {record['mean_length']:>7.1f}/{record['max_steps']}{cap}  "
            f"E={record['episodes']}  {time.perf_counter() - start:.1f}s",
            flush=True,
        )
    return ok


def suite_versions(names: Any) -> dict[str, str | None]:
    """The version of each suite package behind ``names`` (``<suite>/<id>``), by its
    distribution's name (``mujoco_playground`` is installed as ``playground``)."""
    packages = {SUITES[split_name(n)[0]].package for n in names if split_name(n)[0] in SUITES}
    dists = metadata.packages_distributions()
    return {p: _version((dists.get(p) or [p])[0]) for p in sorted(packages)}


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(argv)
    gym_ids, suite = select(parser, args)
    data, meta = load_existing(parser, args, gym_ids, suite)
    skipped, suite_skipped = meta.get("skipped", {}), meta.get("suite_skipped", {})
    # Per-env records carry their own episode counts; _meta keeps the full runs' counts.
    merging = bool(args.envs or args.suites_only)
    episodes = meta.get("episodes", args.episodes) if merging else args.episodes
    suite_episodes = meta.get("suite_episodes", args.suite_episodes) if args.envs else None

    total_start = time.perf_counter()
    n_ok = measure_all(gym_ids, lambda e: measure_env(e, args.episodes, args.seed), data, skipped)
    n_ok += measure_all(
        sorted(suite),
        lambda e: measure_suite_env(e, suite[e], args.suite_episodes, args.seed),
        data,
        suite_skipped,
    )
    data[META] = {
        "git_sha": git_sha(),
        "gymnax": _version("gymnax"),
        "jax": _version("jax"),
        "episodes": episodes,
        "suite_episodes": suite_episodes or args.suite_episodes,
        "suite_versions": suite_versions(k for k in data if "/" in k),
        "seed": args.seed,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "skipped": dict(sorted(skipped.items())),
        "suite_skipped": dict(sorted(suite_skipped.items())),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
    total = len(gym_ids) + len(suite)
    print(f"measured {n_ok}/{total} envs in {time.perf_counter() - total_start:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
