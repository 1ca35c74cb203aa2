"""Environments behind one protocol (:mod:`jaxlab.envs.protocol`), built by :func:`make_env`.

``env.name`` is ``<suite>/<id>`` (e.g. ``gymnax/CartPole-v1``) or a bare id, which is
gymnax's. Each suite is one adapter module, imported when a spec first names it, so a
suite's package (and, on a GPU, whatever it allocates on import) is loaded only when used.
:func:`make_env` and :func:`check_env` are the only places that know which suite an id
belongs to.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from jaxlab.config.parse import SpecError, did_you_mean
from jaxlab.envs.adapter import check_reset
from jaxlab.envs.protocol import (
    ActionSpec,
    CannotRender,
    Env,
    ObservationSpec,
    StepOut,
    VecEnvState,
    max_truncations,
)
from jaxlab.envs.wrappers import ObservationWrapper, problem

DEFAULT_SUITE = "gymnax"
# The suites on the adapter core (``Suite.resets``) take ``env.params.reset``, its reset
# mode (:mod:`jaxlab.envs.adapter`); the suite modules never see it.
RESET = "reset"


@dataclass(frozen=True)
class Suite:
    """An env suite: ``module`` defines ``ids() -> ids``, ``param_fields(id) -> names``,
    ``check_param(id, key, value) -> problem or None`` and ``make(id, num_envs, params) ->
    Env``. It imports ``package``, which the pip extra ``extra`` installs. ``resets``:
    whether it takes the adapter core's ``env.params.reset``. ``host_state``: its envs keep
    their state outside jax (EnvPool's C++), so a resumed run restarts their episodes."""

    name: str
    module: str
    package: str
    extra: str | None = None  # None: a core dependency
    resets: bool = True
    host_state: bool = False

    def load(self) -> ModuleType:
        """The adapter module; SpecError naming the extra when its package is missing."""
        try:
            return importlib.import_module(self.module)
        except ModuleNotFoundError as e:
            if self.extra is None or (e.name or "").split(".")[0] != self.package:
                raise
            raise SpecError(
                "env.name",
                f"the {self.name} suite needs its extra: pip install -e '.[{self.extra}]' "
                f"(or '.[envs]' for every suite)",
            ) from None

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("gymnax", "jaxlab.envs.gymnax_suite", "gymnax", resets=False),
        Suite("brax", "jaxlab.envs.brax_suite", "brax", "brax"),
        Suite("playground", "jaxlab.envs.playground_suite", "mujoco_playground", "playground"),
        Suite("craftax", "jaxlab.envs.craftax_suite", "craftax", "craftax"),
        Suite("jumanji", "jaxlab.envs.jumanji_suite", "jumanji", "jumanji"),
        Suite("navix", "jaxlab.envs.navix_suite", "navix", "navix"),
        Suite("xminigrid", "jaxlab.envs.xminigrid_suite", "xminigrid", "xminigrid"),
        Suite("envpool", "jaxlab.envs.envpool_suite", "envpool", "envpool", False, True),
    )
}


class EnvSettings(Protocol):
    """What :func:`make_env` reads of a spec's ``env`` section."""

    name: str
    num_envs: int
    params: Mapping[str, Any]


def split_name(name: str) -> tuple[str, str]:
    """``'<suite>/<id>'`` -> ``(suite, id)``; a bare id is the default suite's."""
    suite, sep, env_id = name.partition("/")
    return (suite, env_id) if sep else (DEFAULT_SUITE, name)


def make_env(env: EnvSettings, num_envs: int | None = None, evaluation: bool = False) -> Env:
    """The spec's env, ``num_envs`` copies (default ``env.num_envs``). ``evaluation``: the
    env as scored, without the params its suite module lists as shaping training only
    (``TRAINING_ONLY``: EnvPool's episodic lives and clipped rewards)."""
    suite, env_id = split_name(env.name)
    count = env.num_envs if num_envs is None else num_envs
    params = dict(env.params)
    reset = params.pop(RESET, None) if SUITES[suite].resets else None
    module = SUITES[suite].load()
    if evaluation:
        params = {k: v for k, v in params.items() if k not in getattr(module, "TRAINING_ONLY", ())}
    made = module.make(env_id, count, params)
    made = made.with_reset(reset) if reset is not None else made
    return wrapped(made, getattr(env, "obs_dims", None), getattr(env, "frame_stack", 1))


def wrapped(env: Env, keep: Sequence[int] | None, stack: int) -> Env:
    """``env`` behind the spec's observation wrappers (:mod:`jaxlab.envs.wrappers`), if
    any; a SpecError naming the key when ``env`` cannot take them."""
    if keep is None and stack == 1:
        return env
    keep = None if keep is None else tuple(int(i) for i in keep)
    found = problem(env, keep, stack)
    if found is not None:
        raise SpecError(*found)
    return ObservationWrapper(env, keep, stack)


# Env seeds stay below 2**31 - 2**24, so EnvPool's per-env ``seed + j`` stays a C int for
# 16M envs.
SEED_RANGE = 2**31 - 2**24


def seeded_params(name: str, params: Mapping[str, Any], random_seed: int) -> dict[str, Any]:
    """``params``, and for a suite whose envs keep their state outside jax and are seeded
    when made (EnvPool: ``seed``) without a seed in the spec, one derived from the spec's
    ``meta.random_seed`` (a multiplicative hash, so nearby random seeds do not share env
    streams): ``meta.random_seed`` seeds the envs too, as it does every jax suite's."""
    if not SUITES[split_name(name)[0]].host_state or "seed" in params:
        return dict(params)
    return {**params, "seed": random_seed * 2654435761 % SEED_RANGE}


def resumed_params(name: str, params: Mapping[str, Any], keys: Any) -> dict[str, Any]:
    """``params`` for a resumed run: for a suite whose episodes restart on resume (envs
    seeded when made, state outside jax: :func:`resumes_exactly`), a fresh ``seed`` drawn
    from the checkpointed state's RNG keys ``keys`` (any array; they advance every
    update), so the restarted episodes are new ones, not a replay of the run's first,
    and resuming the same checkpoint again gives the same seed. Other suites: unchanged."""
    if resumes_exactly(name):
        return dict(params)
    digest = hashlib.sha256(np.ascontiguousarray(keys).tobytes()).digest()
    return {**params, "seed": int.from_bytes(digest[:8], "little") % SEED_RANGE}


def resumes_exactly(name: str) -> bool:
    """Whether a resumed run of env ``name`` is bit-identical to an uninterrupted one
    (not for suites whose env state lives outside jax: their episodes restart)."""
    return not SUITES[split_name(name)[0]].host_state


def shrink_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` for a tiny-scale run (``--shrink``): the suite's episode-length params
    (its module's ``SHRINK``, name -> cap) capped, so evaluation's scan stays short, and
    its ``SHRINK_SET`` params (name -> value) set, where a cheaper program serves a smoke
    run (Craftax restarts from its first world instead of generating new ones)."""
    suite_name, env_id = split_name(name)
    suite = SUITES[suite_name].load()
    fields = suite.param_fields(env_id)
    caps = {k: v for k, v in getattr(suite, "SHRINK", {}).items() if k in fields}
    sets = dict(getattr(suite, "SHRINK_SET", {}))  # suite options, not EnvParams fields
    return {**params, **{k: min(params.get(k, cap), cap) for k, cap in caps.items()}, **sets}


def _elsewhere(suite_name: str, env_id: str) -> str:
    """A ' (did you mean X?)' hint naming ``env_id``, or the id nearest it, in another
    installed suite (``ant`` -> ``brax/ant``), or ''."""
    full: dict[str, str] = {}
    for other in SUITES.values():
        if other.name != suite_name and other.installed():
            for i in other.load().ids():
                full.setdefault(i.lower(), f"{other.name}/{i}")
    close = difflib.get_close_matches(env_id.lower(), full, n=1, cutoff=0.6)
    match = full.get(env_id.lower()) or (full[close[0]] if close else None)
    return f" (did you mean '{match}'?)" if match else ""


def check_env(name: str, params: Mapping[str, Any], name_path: str, params_path: str) -> None:
    """Raise SpecError unless ``name`` is a known env and ``params`` are fields it has."""
    suite_name, env_id = split_name(name)
    if suite_name not in SUITES:
        hint = did_you_mean(suite_name, SUITES) or f" (known: {', '.join(sorted(SUITES))})"
        raise SpecError(name_path, f"unknown env suite '{suite_name}'{hint}")
    try:
        suite = SUITES[suite_name].load()
    except SpecError as e:
        raise SpecError(name_path, e.message) from None
    known = suite.ids()
    if env_id not in known:
        hint = did_you_mean(env_id, known) or _elsewhere(suite_name, env_id)
        raise SpecError(name_path, f"unknown {suite_name} environment '{env_id}'{hint}")
    core = (RESET,) if SUITES[suite_name].resets else ()
    fields = (*core, *suite.param_fields(env_id)) if params else ()
    for key, value in params.items():
        if key not in fields:
            raise SpecError(
                f"{params_path}.{key}", f"not a parameter of {name}" + did_you_mean(key, fields)
            )
        problem = check_reset(value) if key in core else suite.check_param(env_id, key, value)
        if problem:
            raise SpecError(f"{params_path}.{key}", problem)


__all__ = [
    "ActionSpec",
    "CannotRender",
    "Env",
    "EnvSettings",
    "ObservationSpec",
    "SUITES",
    "StepOut",
    "Suite",
    "VecEnvState",
    "check_env",
    "make_env",
    "max_truncations",
    "resumed_params",
    "resumes_exactly",
    "seeded_params",
    "shrink_params",
    "split_name",
]
