"""The on-policy skeleton shared by PPO, A2C and REINFORCE.

One network ``self.net`` (an actor-critic, or an actor alone) trained from the last
rollout of ``time_horizon`` steps in ``num_envs`` envs. The state, ``init``, the acting
policy (observations normalised with the state's running statistics when
``env.normalize_obs`` is on) and the rollout are the same for all three; each algorithm
adds its network, its ``hyper()`` leaves, its losses and its ``update``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import struct

from jaxlab.algorithms.skeleton import Algorithm
from jaxlab.envs import Env, VecEnvState, max_truncations
from jaxlab.networks import ActorCritic
from jaxlab.rl.distributions import Categorical, DiagGaussian
from jaxlab.rl.rollout import ActFn, Normalizers, Transition, collect

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec


@struct.dataclass
class OnPolicyState:
    params: Any
    opt_state: Any
    env: VecEnvState
    norm: Normalizers  # obs/return statistics (used when env.normalize_obs/_reward)
    hyper: Any  # the algorithm's tunable numbers (float32 leaves)
    key: jax.Array
    update_step: jax.Array  # int32, updates done


class OnPolicy(Algorithm):
    """Base of the on-policy agents; see the module docstring. Subclasses build
    ``self.net`` in :meth:`make_net` and say how it gives the policy in :meth:`pi`."""

    def __init__(self, spec: Spec, env: Env | None = None) -> None:
        super().__init__(spec, env)
        self.net = self.make_net()
        self.truncations = max_truncations(self.env, self.cfg.time_horizon)

    def make_net(self) -> nn.Module:
        """An :class:`~jaxlab.networks.ActorCritic` (``agent.net.shared`` or separate)."""
        actions = self.env.action_spec
        return ActorCritic(
            action_dim=actions.dim,
            discrete=actions.discrete,
            torso=self.torso(),
            shared=self.spec.agent.net.shared,
        )

    def pi(self, params: Any, obs: jax.Array) -> Categorical | DiagGaussian:
        """The policy's distribution at (already normalised) ``obs``."""
        return self.net.apply(params, obs, method=self.net.policy)

    def init(self, key: jax.Array) -> OnPolicyState:
        k_net, k_env, k_state = jax.random.split(key, 3)
        dim = self.env.observation_spec.dim
        params = self.net.init(k_net, jnp.zeros((1, dim), jnp.float32))
        return OnPolicyState(
            params=params,
            opt_state=self.tx.init(params),
            env=self.env.reset(k_env),
            norm=Normalizers.create(dim, self.env.num_envs),
            hyper=self.hyper(),
            key=k_state,
            update_step=jnp.int32(0),
        )

    def policy(
        self, state: OnPolicyState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Actions for raw ``obs`` ``[N, obs_dim]``: the mode (greedy/mean) or a sample."""
        pi = self.pi(state.params, state.norm.observe(obs, self.spec.env))
        return pi.mode() if deterministic else pi.sample(key)

    def rollout(
        self, state: OnPolicyState, act: ActFn, key: jax.Array
    ) -> tuple[OnPolicyState, Transition]:
        """``time_horizon`` env steps with ``act`` -> the new state and ``[T, N]`` rollout."""
        env, norm, rollout = collect(
            self.env, state.env, state.norm, act, key, self.cfg.time_horizon, self.spec.env,
            state.hyper.gamma,
        )  # fmt: skip
        return state.replace(env=env, norm=norm), rollout


class ActorCriticOnPolicy(OnPolicy):
    """An on-policy agent with a critic: ``value`` and the sampling ``act`` that records
    the critic's value (and, when asked, the action's log-probability)."""

    def value(self, state: OnPolicyState, obs: jax.Array) -> jax.Array:
        """The critic's ``V(s)`` for raw observations ``[N, obs_dim]`` -> ``[N]``."""
        obs = state.norm.observe(obs, self.spec.env)
        return self.net.apply(state.params, obs, method=self.net.value)

    def critic(self, params: Any) -> Any:
        """``obs -> V(obs)`` with ``params`` (for bootstrapping a rollout)."""
        return lambda obs: self.net.apply(params, obs, method=self.net.value)


__all__ = ["ActorCriticOnPolicy", "OnPolicy", "OnPolicyState"]
