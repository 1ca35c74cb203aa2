"""Tiny gymnax environments whose right answers are known in closed form."""

from __future__ import annotations

import gymnax
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState(environment.EnvState):
    time: int


@struct.dataclass
class ProbeParams(environment.EnvParams):
    max_steps_in_episode: int = 5


class ConstantReward(environment.Environment):
    """One constant observation, one action, reward 1 every step, never terminates.

    Episodes end only by truncation after ``max_steps_in_episode`` steps. A learner that
    bootstraps through time limits learns V = 1 / (1 - gamma) everywhere; one that treats
    truncation as termination cannot (the observation does not reveal the time step),
    and lands on the average of the truncated partial sums instead.
    """

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    def step_env(self, key, state, action, params):
        state = ProbeState(time=state.time + 1)
        obs = self.get_obs(state)
        return obs, state, jnp.float32(1.0), jnp.bool_(False), {}

    def reset_env(self, key, params):
        state = ProbeState(time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.zeros((1,), jnp.float32)

    def is_terminated(self, state, params):
        return jnp.bool_(False)

    @property
    def num_actions(self) -> int:
        return 1

    def action_space(self, params=None):
        return spaces.Discrete(1)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


@struct.dataclass
class KindState(environment.EnvState):
    time: int
    obs: jnp.ndarray  # [1]


@struct.dataclass
class KindParams(environment.EnvParams):
    kind: int = 1
    max_steps_in_episode: int = 10


PROBE_KINDS = {
    1: "constant reward",
    2: "observation-dependent reward",
    3: "two-step discounting",
    4: "action-dependent reward",
    5: "observation-and-action-dependent reward",
}
# The action that earns the most in kinds 4 and 5, as a function of the observation.
CONTINUOUS_TARGET = 0.5


class Probe(environment.Environment):
    """The five probe environments of the conformance suite, one class, chosen by
    ``params.kind`` (an array leaf, so a test can vmap over kinds with one compile).

    Observations are ``[1]``; actions are 2 discrete ones, or one in ``[-1, 1]``
    (``continuous``). With ``o`` the observation and ``a`` the action:

    1. ``o = 0``, one step, ``r = 1``:                       ``V = 1``.
    2. ``o = +-1`` (random), one step, ``r = o``:           ``V(o) = o``.
    3. ``o = 0`` then ``o = 1``, two steps, ``r = 1`` at the end only:
       ``V(0) = gamma``, ``V(1) = 1``.
    4. ``o = 0``, one step; discrete ``r = +1`` for action 1, ``-1`` for 0; continuous
       ``r = 1 - 4 (a - 0.5)^2``: the best action is 1 (discrete) / 0.5.
    5. ``o = +-1``, one step; discrete ``r = +1`` when the action is ``o > 0``, else
       ``-1``; continuous ``r = 1 - 4 (a - 0.5 o)^2``: best ``a = 0.5 o``.
    """

    def __init__(self, continuous: bool = False) -> None:
        super().__init__()
        self.continuous = continuous

    @property
    def default_params(self) -> KindParams:
        return KindParams()

    def _first_obs(self, key, params):
        sign = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        random_sign = (params.kind == 2) | (params.kind == 5)
        return jnp.where(random_sign, sign, 0.0).reshape(1).astype(jnp.float32)

    def step_env(self, key, state, action, params):
        o = state.obs[0]
        if self.continuous:
            a = jnp.asarray(action, jnp.float32).reshape(-1)[0]
            r4 = 1.0 - 4.0 * (a - CONTINUOUS_TARGET) ** 2
            r5 = 1.0 - 4.0 * (a - CONTINUOUS_TARGET * o) ** 2
        else:
            r4 = jnp.where(action == 1, 1.0, -1.0)
            r5 = jnp.where(action == (o > 0).astype(action.dtype), 1.0, -1.0)
        first = jnp.asarray(state.time == 0)
        r3 = jnp.where(first, 0.0, 1.0)
        reward = jnp.select(
            [params.kind == 1, params.kind == 2, params.kind == 3, params.kind == 4],
            [jnp.float32(1.0), o, r3, r4],
            r5,
        ).astype(jnp.float32)
        done = jnp.where(params.kind == 3, ~first, True)
        state = KindState(time=state.time + 1, obs=jnp.ones((1,), jnp.float32))
        return state.obs, state, reward, done, {}

    def reset_env(self, key, params):
        state = KindState(time=0, obs=self._first_obs(key, params))
        return state.obs, state

    def get_obs(self, state, params=None, key=None):
        return state.obs

    def is_terminated(self, state, params):
        return jnp.bool_(False)

    @property
    def num_actions(self) -> int:
        return 1 if self.continuous else 2

    def action_space(self, params=None):
        if self.continuous:
            return spaces.Box(-1.0, 1.0, (1,), jnp.float32)
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


def register_probes() -> None:
    if "ConstantReward-probe" not in gymnax.registered_envs:
        gymnax.register("ConstantReward-probe", lambda **kw: ConstantReward())
    if "Probe-discrete" not in gymnax.registered_envs:
        gymnax.register("Probe-discrete", lambda **kw: Probe(continuous=False))
        gymnax.register("Probe-continuous", lambda **kw: Probe(continuous=True))


__all__ = ["PROBE_KINDS", "ConstantReward", "KindParams", "Probe", "register_probes"]
