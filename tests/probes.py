"""Tiny gymnax environments whose right answers are known in closed form."""

from __future__ import annotations

import gymnax
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


def register_probes() -> None:
    if "ConstantReward-probe" not in gymnax.registered_envs:
        gymnax.register("ConstantReward-probe", lambda **kw: ConstantReward())


__all__ = ["ConstantReward", "register_probes"]
