"""Proximal Policy Optimisation (clipped surrogate), one session, pure and jittable.

One update has three phases (``scripts/profile_chunk.py`` times them apart): ``_collect``,
a rollout of ``time_horizon`` steps in ``num_envs`` envs; ``_advantages``, GAE on ``[T, N]``;
``_learn``, ``training_epoch`` passes over the shuffled batch in ``minibatch_count``
minibatches:

    ratio   = exp(log pi(a|s) - log pi_old(a|s))
    L_pi    = -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A))
    L_v     = 0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))
    L       = L_pi + val_loss_coef * L_v - entropy_coef * H[pi]

with advantages normalised per minibatch. Every number that does not fix a shape
(lr, gamma, lam, clip_eps, coefficients, grad clip) lives in ``state.hyper`` as an
array leaf, so a Trial can vmap it and changing it never recompiles.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms.base import minibatch_epochs
from jaxlab.algorithms.onpolicy import (
    ActorCriticOnPolicy,
    OnPolicyState,
    SILSpec,
    check_self_imitation,
)
from jaxlab.algorithms.skeleton import AlgorithmConfig
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.rl import gae, losses
from jaxlab.rl.rollout import Transition, episode_metrics


@dataclass(frozen=True)
class PPOConfig(AlgorithmConfig):
    """``agent.algorithm`` for PPO. Sizes are static; the rest are tunable array leaves."""

    name: Literal["PPO"] = "PPO"
    RECURRENT = True  # agent.net.recurrent builds RecurrentPPO (jaxlab.algorithms.forms)
    gamma: float = tunable(0.99)
    lam: float = tunable(0.95)
    clip_eps: float = tunable(0.2)
    entropy_coef: float = tunable(0.01)
    val_loss_coef: float = tunable(0.5)
    time_horizon: int = 128
    minibatch_count: int = 4
    training_epoch: int = 4
    normalize_advantages: bool = True
    clip_value_loss: bool = True
    sil: SILSpec = field(default_factory=SILSpec)

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "lam", 0.0, 1.0)
        require_positive(self, path, "clip_eps", "time_horizon", "minibatch_count")
        require_positive(self, path, "training_epoch")
        for name in ("entropy_coef", "val_loss_coef"):
            if getattr(self, name) < 0:
                raise SpecError(f"{path}.{name}", f"must be >= 0, got {getattr(self, name)!r}")

    MINIBATCH_FIELD = "minibatch_count"

    def fit_envs(self, spec: Any) -> PPOConfig:
        """Recurrent minibatches are whole env sequences: as many as divide the envs."""
        if not spec.agent.net.recurrent:
            return self
        return dataclasses.replace(
            self, minibatch_count=math.gcd(self.minibatch_count, spec.env.num_envs)
        )

    def check_spec(self, spec: Any) -> None:
        check_self_imitation(spec)
        envs = spec.env.num_envs
        if spec.agent.net.recurrent and envs % self.minibatch_count:
            raise SpecError(
                "agent.algorithm.minibatch_count",
                f"a recurrent update's minibatches are whole env sequences: env.num_envs "
                f"{envs} does not divide into {self.minibatch_count}",
            )

    def grad_steps_per_update(self) -> int:
        return self.training_epoch * self.minibatch_count

    def shrink(self) -> PPOConfig:
        return dataclasses.replace(
            self,
            time_horizon=min(self.time_horizon, 4 * self.minibatch_count),
            training_epoch=min(self.training_epoch, 2),
        )


@struct.dataclass
class PPOHyper:
    """Tunable numbers, float32 scalars (``[S]`` once vmapped over sessions)."""

    lr: jax.Array
    lr_end: jax.Array
    gamma: jax.Array
    lam: jax.Array
    clip_eps: jax.Array
    entropy_coef: jax.Array
    val_loss_coef: jax.Array
    max_grad_norm: jax.Array


PPOState = OnPolicyState


@struct.dataclass
class Batch:
    """One rollout, time-major ``[T, N, ...]`` (flattened to ``[T*N, ...]`` for learning)."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    seq: Any = ()  # a recurrent update's sequence starts (ActorCriticOnPolicy.sequences)


class PPO(ActorCriticOnPolicy):
    """PPO for one session; see the module docstring for the losses."""

    def hyper(self) -> PPOHyper:
        c, f = self.cfg, jnp.float32
        return PPOHyper(
            **self.net_hyper(), gamma=f(c.gamma), lam=f(c.lam), clip_eps=f(c.clip_eps),
            entropy_coef=f(c.entropy_coef), val_loss_coef=f(c.val_loss_coef),
        )  # fmt: skip

    # ------------------------------------------------------------------ rollout

    def _collect(self, state: PPOState, key: jax.Array) -> tuple[PPOState, Transition]:
        """Phase 1: ``time_horizon`` env steps with the sampling policy -> ``[T, N]``."""

        def decide(pi: Any, value: jax.Array, k: jax.Array) -> tuple[jax.Array, dict]:
            action = pi.sample(k)
            return action, {"log_prob": pi.log_prob(action), "value": value}

        return self.sample_rollout(state, decide, key)

    def _advantages(self, state: PPOState, ro: Transition) -> Batch:
        """Phase 2: ``V(s'_t)`` for every step (:meth:`bootstrap`: the rollout's own values,
        plus one critic pass over the last and the truncated steps), then GAE on ``[T, N]``.

        The pre-reset next observation is the true successor, so truncated steps bootstrap
        from it (see :mod:`jaxlab.rl.gae`).
        """
        hp = state.hyper
        value = ro.extra["value"]
        next_value = self.bootstrap(state, ro)
        adv, target = gae(ro.reward, value, next_value, ro.terminated, ro.done, hp.gamma, hp.lam)
        log_prob = ro.extra["log_prob"]
        return Batch(ro.obs, ro.action, log_prob, value, adv, target, self.sequences(ro))

    # ------------------------------------------------------------------ learning

    def loss(self, params: Any, hp: PPOHyper, mb: Batch) -> tuple[jax.Array, dict]:
        pi, value = self.forward(params, mb)
        ratio, log_ratio = losses.importance_ratio(pi.log_prob(mb.action), mb.log_prob)
        adv = mb.advantage
        if self.cfg.normalize_advantages:
            adv = losses.normalize_advantages(adv)
        policy_loss = losses.clipped_surrogate_loss(ratio, adv, hp.clip_eps)
        clip_v = hp.clip_eps if self.cfg.clip_value_loss else None
        value_loss = losses.value_loss(value, mb.target, mb.value, clip_v)
        entropy = pi.entropy().mean()
        total = policy_loss + hp.val_loss_coef * value_loss - hp.entropy_coef * entropy
        aux = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": losses.approx_kl(ratio, log_ratio),
            "clip_frac": losses.clip_fraction(ratio, hp.clip_eps),
        }
        return total, aux

    def _learn(self, state: PPOState, batch: Batch, key: jax.Array, lr: jax.Array) -> tuple:
        c, hp = self.cfg, state.hyper
        data = self.learn_layout(batch)  # [T*N, ...], or whole sequences [N, T, ...]
        params, opt_state, aux = minibatch_epochs(
            self.tx, lambda p, mb: self.loss(p, hp, mb), state.params, state.opt_state, data,
            key, c.training_epoch, c.minibatch_count, lr, hp.max_grad_norm,
        )  # fmt: skip
        return state.replace(params=params, opt_state=opt_state), aux

    def update(self, state: PPOState) -> tuple[PPOState, dict[str, jax.Array]]:
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        hp = state.hyper
        lr = self.learning_rate(hp, state.update_step)
        state, rollout = self._collect(state, k_roll)  # phase "rollout" (in collect)
        with jax.named_scope("advantages"):  # a phase of the profile (jaxlab.tools.profiling)
            batch = self._advantages(state, rollout)
        state, metrics = self._learn(state, batch, k_learn, lr)  # "learn" (minibatch_epochs)
        episodes = episode_metrics(rollout)
        state = state.replace(key=key, update_step=state.update_step + 1)
        return state, {**metrics, "lr": lr, **episodes}


__all__ = ["PPO", "PPOConfig", "PPOHyper", "PPOState"]
