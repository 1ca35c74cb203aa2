"""PQN: parallelised Q-learning without replay or target network (Gallici et al., 2024),
one session, discrete actions.

One update collects ``time_horizon`` steps in ``num_envs`` envs with epsilon-greedy
actions (``epsilon = explore_var``, a schedule over the session's frames), computes
Q(lambda) targets once with the rollout's parameters and runs ``training_epoch`` passes
of ``minibatch_count`` steps over the shuffled ``[T*N]`` batch
(:func:`jaxlab.algorithms.base.minibatch_epochs`):

    R_t = r_t + gamma (1 - x_t) ( V(s'_t)                          if d_t or t = T - 1
                                 (1 - lam) V(s'_t) + lam R_{t+1}    otherwise )
    V(s') = max_a Q(s', a)
    L     = mean_b 0.5 (Q(s_b, a_b) - R_b)^2      (or huber with ``loss: huber``)

``s'_t`` is the true successor, so a step cut by a time limit bootstraps from it and only
termination ``x_t`` cuts the return (:func:`jaxlab.rl.returns.q_lambda_returns`). The
paper's network normalises every hidden layer: set ``agent.net.layer_norm: true`` (the
shipped specs do; off is the ablation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax import struct

from jaxlab.algorithms.base import minibatch_epochs
from jaxlab.algorithms.onpolicy import OnPolicy, OnPolicyState
from jaxlab.algorithms.registry import register
from jaxlab.algorithms.skeleton import AlgorithmConfig
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.networks import QNetwork
from jaxlab.rl.exploration import epsilon_greedy, greedy
from jaxlab.rl.ops import pick
from jaxlab.rl.returns import q_lambda_returns
from jaxlab.rl.rollout import episode_metrics
from jaxlab.rl.schedules import ScheduleHyper, ScheduleSpec

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    pass


def default_explore() -> ScheduleSpec:
    return ScheduleSpec("linear_decay", 1.0, 0.05, 0, 100_000)


@dataclass(frozen=True)
class PQNConfig(AlgorithmConfig):
    """``agent.algorithm`` for PQN. Sizes are static; the rest are tunable leaves."""

    name: Literal["PQN"] = "PQN"
    gamma: float = tunable(0.99)
    lam: float = tunable(0.65)
    explore_var: ScheduleSpec = tunable(default_factory=default_explore)
    loss: Literal["mse", "huber"] = "mse"
    time_horizon: int = 32
    training_epoch: int = 2
    minibatch_count: int = 4

    MINIBATCH_FIELD = "minibatch_count"
    DISCRETE_ONLY = True

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "lam", 0.0, 1.0)
        require_positive(self, path, "time_horizon", "training_epoch", "minibatch_count")
        ev = self.explore_var
        if not (min(ev.start_val, ev.end_val) >= 0.0 and max(ev.start_val, ev.end_val) <= 1.0):
            raise SpecError(f"{path}.explore_var", "epsilon start_val/end_val must lie in [0, 1]")

    def grad_steps_per_update(self) -> int:
        return self.training_epoch * self.minibatch_count

    def shrink(self) -> PQNConfig:
        return dataclasses.replace(
            self,
            time_horizon=min(self.time_horizon, 4 * self.minibatch_count),
            training_epoch=min(self.training_epoch, 2),
        )


@struct.dataclass
class PQNHyper:
    """Tunable numbers, float32 scalars (``[S]`` once vmapped over sessions)."""

    lr: jax.Array
    lr_end: jax.Array
    max_grad_norm: jax.Array
    gamma: jax.Array
    lam: jax.Array
    epsilon: ScheduleHyper


class PQN(OnPolicy):
    """PQN for one session; see the module docstring. The state is the on-policy one."""

    def make_net(self) -> nn.Module:
        return QNetwork(self.env.action_spec.dim, self.torso(), self.spec.agent.net.dueling)

    def hyper(self) -> PQNHyper:
        c, f = self.cfg, jnp.float32
        return PQNHyper(
            **self.net_hyper(), gamma=f(c.gamma), lam=f(c.lam), epsilon=c.explore_var.hyper()
        )

    def epsilon(self, state: OnPolicyState) -> jax.Array:
        """Epsilon at the session's frame count (a scalar)."""
        return self.cfg.explore_var.value(state.hyper.epsilon, self.frame(state))

    def _act(self, params, obs: jax.Array, key: jax.Array, eps: jax.Array) -> jax.Array:
        q = self.net.apply(params, obs)
        return epsilon_greedy(key, q, eps, self.valid_actions(q))

    def policy(
        self, state: OnPolicyState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Greedy actions for raw ``obs [N, D]``, or epsilon-greedy at the current epsilon."""
        obs = state.norm.observe(obs, self.spec.env)
        if deterministic:
            return greedy(self.net.apply(state.params, obs))
        return self._act(state.params, obs, key, self.epsilon(state))

    def value(self, state: OnPolicyState, obs: jax.Array) -> jax.Array:
        """``max_a Q(s, a)`` for raw ``obs [N, D]`` -> ``[N]``."""
        return self.net.apply(state.params, state.norm.observe(obs, self.spec.env)).max(-1)

    def loss(self, params, obs: jax.Array, action: jax.Array, target: jax.Array):
        q_sa = pick(self.net.apply(params, obs), action)
        err = q_sa - target
        if self.cfg.loss == "huber":
            loss = optax.huber_loss(err, delta=1.0).mean()
        else:
            loss = 0.5 * (err**2).mean()
        return loss, {"loss": loss, "q_mean": q_sa.mean()}

    def update(self, state: OnPolicyState) -> tuple[OnPolicyState, dict[str, jax.Array]]:
        c, hp = self.cfg, state.hyper
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        lr = self.learning_rate(hp, state.update_step)
        eps, params = self.epsilon(state), state.params

        def act(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
            return self._act(params, obs, k, eps), {}

        state, ro = self.rollout(state, act, k_roll)
        with jax.named_scope("targets"):  # a phase of the profile (jaxlab.tools.profiling)
            v_next = self.net.apply(params, ro.next_obs).max(axis=-1)  # [T, N]
            target = q_lambda_returns(ro.reward, v_next, ro.terminated, ro.done, hp.gamma, hp.lam)
        size = self.frames_per_update
        flat = lambda x: x.reshape((size,) + x.shape[2:])  # noqa: E731
        data = (flat(ro.obs), flat(ro.action), flat(target))
        params, opt_state, aux = minibatch_epochs(
            self.tx, lambda p, mb: self.loss(p, *mb), params, state.opt_state, data, k_learn,
            c.training_epoch, c.minibatch_count, lr, hp.max_grad_norm,
        )  # fmt: skip
        state = state.replace(
            params=params, opt_state=opt_state, key=key, update_step=state.update_step + 1
        )
        return state, {**aux, "epsilon": eps, "lr": lr, **episode_metrics(ro)}


register("PQN", PQNConfig, PQN)

__all__ = ["PQN", "PQNConfig", "PQNHyper"]
