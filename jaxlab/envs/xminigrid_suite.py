"""The XLand-MiniGrid suite (its ``MiniGrid-*`` envs) behind the env protocol.

``env.step(params, timestep, action)`` does not reset (only xminigrid's
``GymAutoResetWrapper`` does, which is not used), so
:class:`~jaxlab.envs.adapter.SuiteEnv` sees the true final timestep and resets itself
(``reset_mode="full"``). An episode ends on a LAST step: with discount 0 it reached its
goal (or, in Memory, either end tile): ``terminated``; with discount 1 it hit
``step_num == max_steps``: ``truncated``. Observations are the agent's view ``[V, V, 2]``
(tile id, colour id per cell; ``V = view_size``), flattened to ``[obs_dim]`` float32.
The ``XLand-MiniGrid-R*`` ids are left out: without a benchmark ruleset (downloaded by
``xminigrid.load_benchmark``) they have no goal. This is the only module importing xminigrid.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import xminigrid
from xminigrid.types import StepType

from jaxlab.config.parse import SpecError
from jaxlab.envs.adapter import SuiteEnv, check_count, flatten
from jaxlab.envs.protocol import ActionSpec, ObservationSpec

SHRINK = {"max_steps": 50}  # --shrink: short episodes (evaluation scans one)
# Grid sizes that may be set, by id prefix: (fields, smallest size the layout allows).
SIZED = {
    "MiniGrid-Empty": (("height", "width"), 5),
    "MiniGrid-DoorKey": (("height", "width"), 5),
    "MiniGrid-Memory": (("width",), 8),
}


class XMiniGridEnv(SuiteEnv):
    """``num_envs`` copies of one XLand-MiniGrid env; ``env_params`` is xminigrid's
    ``EnvParams`` (fixed when built). ``max_steps`` is ``time_limit`` and
    ``max_episode_steps``."""

    def __init__(self, env_id: str, num_envs: int, env: Any, env_params: Any) -> None:
        self.name = f"xminigrid/{env_id}"
        self.num_envs = num_envs
        self.env, self.env_params = env, env_params
        shape = env.observation_shape(env_params)
        self.observation_spec = ObservationSpec(tuple(int(d) for d in shape))
        self.action_spec = ActionSpec(discrete=True, dim=int(env.num_actions(env_params)))
        self.time_limit = self.max_episode_steps = int(env_params.max_steps)

    def reset_one(self, key: jax.Array) -> tuple[Any, jax.Array]:
        """One env: ``key -> (xminigrid TimeStep, obs [obs_dim])``."""
        timestep = self.env.reset(self.env_params, key)
        return timestep, flatten([timestep.observation])

    def step_one(self, key: jax.Array, state: Any, action: jax.Array) -> tuple:
        """One env, no reset: ``-> (TimeStep, obs [obs_dim], reward, terminated, truncated)``."""
        nxt = self.env.step(self.env_params, state, action)
        last = nxt.step_type == StepType.LAST
        return (
            nxt,
            flatten([nxt.observation]),
            jnp.asarray(nxt.reward, jnp.float32),
            last & (nxt.discount == 0),
            last & (nxt.discount > 0),
        )


def ids() -> tuple[str, ...]:
    """The registered ``MiniGrid-*`` ids (see the module docstring for XLand-MiniGrid-R*)."""
    return tuple(i for i in xminigrid.registered_environments() if i.startswith("MiniGrid-"))


def _sized(env_id: str) -> tuple[tuple[str, ...], int]:
    return next((v for k, v in SIZED.items() if env_id.startswith(k)), ((), 0))


def param_fields(env_id: str) -> tuple[str, ...]:
    """``max_steps``, ``view_size`` and, for Empty, DoorKey and Memory ids, the grid size
    (``height``/``width``, as their registrations vary it)."""
    return ("max_steps", "view_size", *_sized(env_id)[0])


def check_param(env_id: str, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be xminigrid param ``key`` (None when it can): integers;
    ``view_size`` odd and >= 3, grid sizes at least the smallest registered one."""
    problem = check_count(value)
    if problem or key == "max_steps":
        return problem
    if key == "view_size":
        return None if value >= 3 and value % 2 else f"must be an odd integer >= 3, got {value!r}"
    least = _sized(env_id)[1]
    return None if value >= least else f"must be >= {least}, got {value!r}"


def make(env_id: str, num_envs: int, params: dict[str, Any]) -> XMiniGridEnv:
    """``num_envs`` copies of xminigrid ``env_id`` with ``params`` over its registered
    settings; ``max_steps``, unless set, follows the env's own formula for the grid size."""
    if env_id.startswith("XLand-MiniGrid"):
        raise SpecError(
            "env.name",
            f"{env_id} needs a benchmark ruleset (xminigrid.load_benchmark), which jaxlab "
            "does not load; use a MiniGrid-* id",
        )
    env, registered = xminigrid.make(env_id)
    sizes = {k: getattr(registered, k) for k in ("height", "width", "view_size")}
    return XMiniGridEnv(env_id, num_envs, env, env.default_params(**{**sizes, **params}))
