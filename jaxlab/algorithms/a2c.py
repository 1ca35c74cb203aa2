"""Advantage actor-critic (synchronous A2C), one session, pure and jittable.

One update collects a rollout of ``time_horizon`` steps in ``num_envs`` envs with the
sampling policy, estimates advantages on ``[T, N]`` and takes ``training_epoch`` full-batch
gradient steps (default 1, the classic A2C):

    advantage gae:    A_t, R_t from jaxlab.rl.gae (lam-weighted TD errors, R_t = A_t + V(s_t))
    advantage nstep:  R_t from jaxlab.rl.returns.nstep_returns (bootstrapped at the rollout
                      end and at truncation), A_t = R_t - V(s_t)

    L_pi = -mean(log pi(a_t|s_t) * A_t)           (A_t normalised when normalize_advantages)
    L_v  = 0.5 * mean((V(s_t) - R_t)^2)
    L    = L_pi + val_loss_coef * L_v - entropy_coef(frame) * mean(H[pi(.|s_t)])

Advantages and targets are computed once per rollout (held fixed across epochs).
``entropy_coef`` is a schedule over the session's frames. Every number that does not fix
a shape lives in ``state.hyper``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms.base import clipped_step
from jaxlab.algorithms.onpolicy import (
    ActorCriticOnPolicy,
    OnPolicyState,
    SILSpec,
    check_self_imitation,
)
from jaxlab.algorithms.skeleton import AlgorithmConfig, frames_done
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.rl import gae, losses
from jaxlab.rl.returns import nstep_returns
from jaxlab.rl.rollout import Transition, episode_metrics
from jaxlab.rl.schedules import ScheduleHyper, ScheduleSpec, constant


@dataclass(frozen=True)
class A2CConfig(AlgorithmConfig):
    """``agent.algorithm`` for A2C. Sizes are static; the rest are tunable array leaves."""

    name: Literal["A2C"] = "A2C"
    RECURRENT = True  # agent.net.recurrent builds RecurrentA2C (jaxlab.algorithms.forms)
    gamma: float = tunable(0.99)
    lam: float = tunable(0.95)
    advantage: Literal["gae", "nstep"] = "gae"
    entropy_coef: ScheduleSpec = tunable(default_factory=lambda: constant(0.01))
    val_loss_coef: float = tunable(0.5)
    time_horizon: int = 8
    training_epoch: int = 1
    normalize_advantages: bool = False
    sil: SILSpec = field(default_factory=SILSpec)

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "lam", 0.0, 1.0)
        require_positive(self, path, "time_horizon", "training_epoch")
        if self.val_loss_coef < 0:
            raise SpecError(f"{path}.val_loss_coef", f"must be >= 0, got {self.val_loss_coef!r}")
        ent = self.entropy_coef
        if min(ent.start_val, ent.end_val) < 0:
            raise SpecError(f"{path}.entropy_coef", "start_val and end_val must be >= 0")

    def check_spec(self, spec: Any) -> None:
        check_self_imitation(spec)

    def grad_steps_per_update(self) -> int:
        return self.training_epoch

    def shrink(self) -> A2CConfig:
        return dataclasses.replace(
            self, time_horizon=min(self.time_horizon, 8), training_epoch=min(self.training_epoch, 2)
        )


@struct.dataclass
class A2CHyper:
    """Tunable numbers, float32 scalars (``[S]`` once vmapped over sessions)."""

    lr: jax.Array
    lr_end: jax.Array
    gamma: jax.Array
    lam: jax.Array
    entropy_coef: ScheduleHyper
    val_loss_coef: jax.Array
    max_grad_norm: jax.Array


A2CState = OnPolicyState


@struct.dataclass
class Batch:
    """One rollout's learning data, ``[T*N, ...]``."""

    obs: jax.Array
    action: jax.Array
    advantage: jax.Array
    target: jax.Array
    seq: Any = ()  # a recurrent update's sequence starts (ActorCriticOnPolicy.sequences)


class A2C(ActorCriticOnPolicy):
    """A2C for one session; see the module docstring for the losses."""

    def hyper(self) -> A2CHyper:
        c, f = self.cfg, jnp.float32
        return A2CHyper(
            **self.net_hyper(), gamma=f(c.gamma), lam=f(c.lam),
            entropy_coef=c.entropy_coef.hyper(), val_loss_coef=f(c.val_loss_coef),
        )  # fmt: skip

    def _collect(self, state: A2CState, key: jax.Array) -> tuple[A2CState, Transition]:
        """``time_horizon`` env steps with the sampling policy -> ``[T, N]`` (values in extra)."""

        def decide(pi: Any, value: jax.Array, k: jax.Array) -> tuple[jax.Array, dict]:
            return pi.sample(k), {"value": value}

        return self.sample_rollout(state, decide, key)

    def _advantages(self, state: A2CState, ro: Transition) -> Batch:
        """``V(s'_t)`` (:meth:`bootstrap`), then GAE or n-step returns on ``[T, N]``,
        laid out for learning (:meth:`learn_layout`)."""
        hp = state.hyper
        value = ro.extra["value"]
        next_value = self.bootstrap(state, ro)
        if self.cfg.advantage == "gae":
            adv, target = gae(
                ro.reward, value, next_value, ro.terminated, ro.done, hp.gamma, hp.lam
            )
        else:
            target = nstep_returns(ro.reward, next_value, ro.terminated, ro.done, hp.gamma)
            adv = target - value
        return self.learn_layout(Batch(ro.obs, ro.action, adv, target, self.sequences(ro)))

    def loss(
        self, params: Any, batch: Batch, ent_coef: jax.Array, hp: A2CHyper
    ) -> tuple[jax.Array, dict]:
        pi, value = self.forward(params, batch)
        adv = batch.advantage
        if self.cfg.normalize_advantages:
            adv = losses.normalize_advantages(adv)
        policy_loss = losses.policy_gradient_loss(pi.log_prob(batch.action), adv)
        value_loss = losses.value_loss(value, batch.target)
        entropy = pi.entropy().mean()
        total = policy_loss + hp.val_loss_coef * value_loss - ent_coef * entropy
        aux = {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}
        return total, aux

    def update(self, state: A2CState) -> tuple[A2CState, dict[str, jax.Array]]:
        key, k_roll = jax.random.split(state.key)
        hp = state.hyper
        lr = self.learning_rate(hp, state.update_step)
        frame = frames_done(state.update_step, self.frames_per_update, self.num_updates)
        ent_coef = self.cfg.entropy_coef.value(hp.entropy_coef, frame)
        state, rollout = self._collect(state, k_roll)
        with jax.named_scope("advantages"):  # a phase of the profile (jaxlab.tools.profiling)
            batch = self._advantages(state, rollout)
        loss = partial(self.loss, batch=batch, ent_coef=ent_coef, hp=hp)

        def step(carry: tuple, _: None) -> tuple:
            params, opt_state, aux = clipped_step(self.tx, loss, *carry, lr, hp.max_grad_norm)
            return (params, opt_state), aux

        with jax.named_scope("learn"):
            (params, opt_state), aux = jax.lax.scan(
                step, (state.params, state.opt_state), None, length=self.cfg.training_epoch
            )
        metrics = {
            **jax.tree.map(jnp.mean, aux),
            "v_mean": rollout.extra["value"].mean(),
            "entropy_coef": ent_coef,
            "lr": lr,
            **episode_metrics(rollout),
        }
        state = state.replace(
            params=params, opt_state=opt_state, key=key, update_step=state.update_step + 1
        )
        return state, metrics


__all__ = ["A2C", "A2CConfig", "A2CHyper", "A2CState"]
