"""The on-policy skeleton shared by PPO, A2C and REINFORCE.

One network ``self.net`` (an actor-critic, or an actor alone) trained from the last
rollout of ``time_horizon`` steps in ``num_envs`` envs. The state, ``init``, the acting
policy (observations normalised with the state's running statistics when
``env.normalize_obs`` is on) and the rollout are the same for all three; each algorithm
adds its network, its ``hyper()`` leaves, its losses and its ``update``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import struct

from jaxlab.algorithms.skeleton import Algorithm
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.envs import Env, VecEnvState, max_truncations
from jaxlab.networks import ActorCritic
from jaxlab.rl.distributions import Categorical, DiagGaussian
from jaxlab.rl.rollout import ActFn, Normalizers, Transition, collect, next_values

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec


@dataclass(frozen=True)
class SILSpec:
    """``agent.algorithm.sil``: self-imitation learning on top of PPO or A2C (Oh et al.,
    2018; :mod:`jaxlab.algorithms.sil`). ``updates`` extra minibatch steps per update
    (0: off) on ``batch_size`` steps drawn from a prioritized memory of ``capacity`` past
    steps with their Monte-Carlo returns (priority exponent ``alpha``, importance
    exponent ``beta``), with the value loss weighted ``value_coef``. Episodes longer than
    ``max_episode`` steps keep only their last ``max_episode`` steps."""

    updates: int = 0
    batch_size: int = 512
    capacity: int = 100_000
    value_coef: float = 0.01
    alpha: float = 0.6
    beta: float = 0.1
    max_episode: int = 1000

    def validate(self, path: str) -> None:
        require_positive(self, path, "batch_size", "capacity", "max_episode")
        if self.updates < 0 or self.value_coef < 0:
            name = "updates" if self.updates < 0 else "value_coef"
            raise SpecError(f"{path}.{name}", f"must be >= 0, got {getattr(self, name)!r}")
        require_range(self, path, "alpha", 0.0, 1.0)
        require_range(self, path, "beta", 0.0, 1.0)
        if self.updates and self.batch_size > self.capacity:
            raise SpecError(
                f"{path}.batch_size", f"{self.batch_size} is larger than capacity {self.capacity}"
            )


def check_self_imitation(spec: Spec) -> None:
    """``agent.algorithm.sil`` replays single steps: not with a recurrent network."""
    if spec.agent.algorithm.sil.updates and spec.agent.net.recurrent:
        raise SpecError(
            "agent.algorithm.sil.updates",
            "self-imitation replays single steps, so it cannot train a recurrent network "
            "(agent.net.recurrent); set one of them off",
        )


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

    def init_params(self, key: jax.Array) -> Any:
        """The network's initial parameters."""
        return self.net.init(key, jnp.zeros((1, self.env.observation_spec.dim), jnp.float32))

    def init(self, key: jax.Array) -> OnPolicyState:
        k_net, k_env, k_state = jax.random.split(key, 3)
        dim = self.env.observation_spec.dim
        params = self.init_params(k_net)
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


# decide(policy [N], value [N], key) -> (action, extra): what the sampling policy records
Decide = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


class ActorCriticOnPolicy(OnPolicy):
    """An on-policy agent with a critic: ``value``, the sampling rollout, bootstrapping
    and the network's outputs on a learning batch.

    PPO and A2C are written against the hooks below (:meth:`sample_rollout`,
    :meth:`bootstrap`, :meth:`sequences`, :meth:`learn_layout`, :meth:`forward`); the
    recurrent form (:mod:`jaxlab.algorithms.recurrent`) overrides them to carry the
    cell's state and learn on whole sequences.
    """

    def sample_rollout(
        self, state: OnPolicyState, decide: Decide, key: jax.Array
    ) -> tuple[OnPolicyState, Transition]:
        """A rollout whose actions ``decide`` draws from the network's policy and value."""

        def act(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
            pi, value = self.net.apply(state.params, obs)
            return decide(pi, value, k)

        return self.rollout(state, act, key)

    def bootstrap(self, state: OnPolicyState, ro: Transition) -> jax.Array:
        """``V(s'_t)`` ``[T, N]`` for a rollout whose values are in ``extra["value"]``
        (:func:`~jaxlab.rl.rollout.next_values`)."""
        return next_values(ro.extra["value"], ro, self.critic(state.params), self.truncations)

    def sequences(self, ro: Transition) -> Any:
        """What the update needs besides the steps to replay them: nothing here."""
        return ()

    def learn_layout(self, batch: Any) -> Any:
        """A ``[T, N, ...]`` learning batch with one leading batch axis: ``[T*N, ...]``."""
        size = self.frames_per_update
        return jax.tree.map(lambda x: x.reshape((size,) + x.shape[2:]), batch)

    def forward(self, params: Any, mb: Any) -> tuple[Categorical | DiagGaussian, jax.Array]:
        """The policy and value on a learning (mini)batch ``mb`` with field ``obs``."""
        return self.net.apply(params, mb.obs)

    def value(self, state: OnPolicyState, obs: jax.Array) -> jax.Array:
        """The critic's ``V(s)`` for raw observations ``[N, obs_dim]`` -> ``[N]``."""
        obs = state.norm.observe(obs, self.spec.env)
        return self.net.apply(state.params, obs, method=self.net.value)

    def critic(self, params: Any) -> Any:
        """``obs -> V(obs)`` with ``params`` (for bootstrapping a rollout)."""
        return lambda obs: self.net.apply(params, obs, method=self.net.value)


__all__ = [
    "ActorCriticOnPolicy",
    "Decide",
    "OnPolicy",
    "OnPolicyState",
    "SILSpec",
    "check_self_imitation",
]
