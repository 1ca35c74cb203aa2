"""The navix suite (MiniGrid in JAX) behind the env protocol.

navix's ``env.step(timestep, action)`` auto-resets lazily: given a timestep that already
ended, it returns a reset one instead of stepping. The adapter calls the non-resetting
``env._step`` instead, so :class:`~jaxlab.envs.adapter.SuiteEnv` sees the true final
timestep and resets itself (``reset_mode="full"``). navix's ``step_type`` maps exactly:
TERMINATION (2) -> ``terminated``, TRUNCATION (1, ``t >= max_steps``) -> ``truncated``,
TRANSITION (0) -> neither. The suite state is navix's ``Timestep``, which carries its
own PRNG key (the core's step key is not used). Observations keep navix's shape: ``[H, W,
3]`` for symbolic and rgb, ``[H, W]`` for categorical (``first_person`` variants crop to
the agent's view); flattened to ``[obs_dim]`` float32. The only module importing navix.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import navix
from navix import observations

from jaxlab.envs.adapter import SuiteEnv, check_count, flatten, suite_code
from jaxlab.envs.protocol import ActionSpec, ObservationSpec

OBSERVATIONS = {
    f.__name__: f
    for f in (
        observations.symbolic,
        observations.symbolic_first_person,
        observations.categorical,
        observations.categorical_first_person,
        observations.rgb,
        observations.rgb_first_person,
    )
}
FIELDS = ("max_steps", "observation", "penality_coeff")
SHRINK = {"max_steps": 50}  # --shrink: short episodes (evaluation scans one)


class NavixEnv(SuiteEnv):
    """``num_envs`` copies of one navix env (a navix ``Environment``, fixed when built).
    Its ``max_steps`` is both ``time_limit`` and ``max_episode_steps``."""

    def __init__(self, env_id: str, num_envs: int, env: Any) -> None:
        self.name = f"navix/{env_id}"
        self.num_envs = num_envs
        self.env = env
        with suite_code():  # some navix envs broadcast ranks implicitly
            first = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        self.observation_spec = ObservationSpec(tuple(int(d) for d in first.observation.shape))
        self.action_spec = ActionSpec(discrete=True, dim=len(env.action_set))
        self.time_limit = self.max_episode_steps = int(env.max_steps)
        self.draws_from_cache = env.observation_fn in (
            observations.rgb,
            observations.rgb_first_person,
        )

    def reset_one(self, key: jax.Array) -> tuple[Any, jax.Array]:
        """One env: ``key -> (navix Timestep, obs [obs_dim])``."""
        timestep = self.env.reset(key)
        return timestep, flatten([timestep.observation])

    def restart_one(self, key: jax.Array, state: Any) -> tuple[Any, jax.Array]:
        """:meth:`reset_one`, keeping the ended state's render cache (as navix's own
        auto-reset does) where the observation never reads it: building one draws every
        tile of the grid. rgb observations draw from it, so they get a fresh one (navix's
        own reuses a cache drawn for another episode's grid)."""
        if self.draws_from_cache:
            return self.reset_one(key)
        timestep = self.env.reset(key, state.state.cache)
        return timestep, flatten([timestep.observation])

    def step_one(self, key: jax.Array, state: Any, action: jax.Array) -> tuple:
        """One env, no reset: ``-> (Timestep, obs [obs_dim], reward, terminated, truncated)``."""
        nxt = self.env._step(state, action)
        return (
            nxt,
            flatten([nxt.observation]),
            jnp.asarray(nxt.reward, jnp.float32),
            nxt.step_type == navix.StepType.TERMINATION,
            nxt.step_type == navix.StepType.TRUNCATION,
        )


def ids() -> tuple[str, ...]:
    """Every registered navix id."""
    return tuple(navix.registry())


def param_fields(env_id: str) -> tuple[str, ...]:
    """``max_steps`` (int >= 1), ``observation`` (a name from :data:`OBSERVATIONS`;
    navix's default is ``symbolic``), ``penality_coeff`` (navix's spelling: a number
    times ``t / max_steps`` taken off the reward of a terminating step)."""
    return FIELDS


def check_param(env_id: str, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be navix param ``key`` (None when it can)."""
    if key == "max_steps":
        return check_count(value)
    if key == "observation":
        if isinstance(value, str) and value in OBSERVATIONS:
            return None
        return f"must be one of {', '.join(OBSERVATIONS)}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, got {value!r}"
    return None


def make(env_id: str, num_envs: int, params: dict[str, Any]) -> NavixEnv:
    """``num_envs`` copies of navix ``env_id`` with ``params`` over navix's defaults
    (``max_steps`` 100, symbolic observations)."""
    kwargs = dict(params)
    if "observation" in kwargs:
        kwargs["observation_fn"] = OBSERVATIONS[kwargs.pop("observation")]
    return NavixEnv(env_id, num_envs, navix.make(env_id, **kwargs))
