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

from jaxlab.algorithms.base import (
    clipped_step,
    learning_rate,
    make_optimizer,
    register,
    require_memory,
)
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.envs import VecEnv, VecEnvState
from jaxlab.networks import ActorCritic, TorsoDef
from jaxlab.rl import gae, losses
from jaxlab.rl.returns import nstep_returns
from jaxlab.rl.rollout import Normalizers, Transition, collect, episode_metrics, next_values
from jaxlab.rl.schedules import ScheduleHyper, ScheduleSpec, constant, schedule_keys
from jaxlab.spec.schema import Spec


@dataclass(frozen=True)
class A2CConfig:
    """``agent.algorithm`` for A2C. Sizes are static; the rest are tunable array leaves."""

    name: Literal["A2C"] = "A2C"
    gamma: float = 0.99
    lam: float = 0.95
    advantage: Literal["gae", "nstep"] = "gae"
    entropy_coef: ScheduleSpec = field(default_factory=lambda: constant(0.01))
    val_loss_coef: float = 0.5
    time_horizon: int = 8
    training_epoch: int = 1
    normalize_advantages: bool = False

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "lam", 0.0, 1.0)
        require_positive(self, path, "time_horizon", "training_epoch")
        if self.val_loss_coef < 0:
            raise SpecError(f"{path}.val_loss_coef", f"must be >= 0, got {self.val_loss_coef!r}")
        ent = self.entropy_coef
        if min(ent.start_val, ent.end_val) < 0:
            raise SpecError(f"{path}.entropy_coef", "start_val and end_val must be >= 0")

    def frames_per_update(self, spec: Spec) -> int:
        return spec.env.num_envs * self.time_horizon

    def grad_steps_per_update(self) -> int:
        return self.training_epoch

    def validate_spec(self, spec: Spec) -> None:
        require_memory(spec, ("OnPolicyBatch",))
        if spec.env.max_frame < self.frames_per_update(spec):
            raise SpecError(
                "env.max_frame",
                f"{spec.env.max_frame} is less than one update "
                f"({self.frames_per_update(spec)} frames = num_envs * time_horizon)",
            )

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


@struct.dataclass
class A2CState:
    params: Any
    opt_state: Any
    env: VecEnvState
    norm: Normalizers
    hyper: A2CHyper
    key: jax.Array
    update_step: jax.Array  # int32, updates done


@struct.dataclass
class Batch:
    """One rollout's learning data, ``[T*N, ...]``."""

    obs: jax.Array
    action: jax.Array
    advantage: jax.Array
    target: jax.Array


class A2C:
    """A2C for one session on a :class:`VecEnv`; see the module docstring for the losses."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.cfg: A2CConfig = spec.agent.algorithm
        self.env = VecEnv(spec.env.name, spec.env.num_envs, spec.env.params)
        net = spec.agent.net
        self.net = ActorCritic(
            action_dim=self.env.action_dim,
            discrete=self.env.discrete,
            torso=TorsoDef.from_spec(net, self.env.obs_shape),
            shared=net.shared,
        )
        self.tx = make_optimizer(net)
        self.num_updates = spec.derived.num_updates
        self.truncations = self.env.max_truncations(self.cfg.time_horizon)
        self.frames_per_update = self.cfg.frames_per_update(spec)

    def hyper(self) -> A2CHyper:
        c, net = self.cfg, self.spec.agent.net
        lr_end = net.lr_schedule.end_val if net.lr_schedule.name == "linear_decay" else net.optim.lr
        clip = net.clip_grad_val if net.clip_grad_val is not None else float("inf")
        f = jnp.float32
        return A2CHyper(
            f(net.optim.lr), f(lr_end), f(c.gamma), f(c.lam), c.entropy_coef.hyper(),
            f(c.val_loss_coef), f(clip),
        )  # fmt: skip

    def init(self, key: jax.Array) -> A2CState:
        k_net, k_env, k_state = jax.random.split(key, 3)
        params = self.net.init(k_net, jnp.zeros((1, self.env.obs_dim), jnp.float32))
        return A2CState(
            params=params,
            opt_state=self.tx.init(params),
            env=self.env.reset(k_env),
            norm=Normalizers.create(self.env.obs_dim, self.env.num_envs),
            hyper=self.hyper(),
            key=k_state,
            update_step=jnp.int32(0),
        )

    def policy(
        self, state: A2CState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Actions for raw ``obs`` ``[N, obs_dim]``: the mode (greedy/mean) or a sample."""
        obs = state.norm.observe(obs, self.spec.env)
        pi = self.net.apply(state.params, obs, method=self.net.policy)
        return pi.mode() if deterministic else pi.sample(key)

    def value(self, state: A2CState, obs: jax.Array) -> jax.Array:
        """The critic's ``V(s)`` for raw observations ``[N, obs_dim]`` -> ``[N]``."""
        obs = state.norm.observe(obs, self.spec.env)
        return self.net.apply(state.params, obs, method=self.net.value)

    def _collect(self, state: A2CState, key: jax.Array) -> tuple[A2CState, Transition]:
        """``time_horizon`` env steps with the sampling policy -> ``[T, N]`` (values in extra)."""

        def act(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
            pi, value = self.net.apply(state.params, obs)
            return pi.sample(k), {"value": value}

        env, norm, rollout = collect(
            self.env, state.env, state.norm, act, key, self.cfg.time_horizon, self.spec.env,
            state.hyper.gamma,
        )  # fmt: skip
        return state.replace(env=env, norm=norm), rollout

    def _advantages(self, state: A2CState, ro: Transition) -> Batch:
        """``V(s'_t)`` (:func:`~jaxlab.rl.rollout.next_values`), then GAE or n-step returns
        on ``[T, N]``."""
        hp = state.hyper
        value = ro.extra["value"]
        critic = partial(self.net.apply, state.params, method=self.net.value)
        next_value = next_values(value, ro, critic, self.truncations)
        if self.cfg.advantage == "gae":
            adv, target = gae(
                ro.reward, value, next_value, ro.terminated, ro.done, hp.gamma, hp.lam
            )
        else:
            target = nstep_returns(ro.reward, next_value, ro.terminated, ro.done, hp.gamma)
            adv = target - value
        size = self.frames_per_update
        flat = lambda x: x.reshape((size,) + x.shape[2:])  # noqa: E731
        return Batch(flat(ro.obs), flat(ro.action), flat(adv), flat(target))

    def loss(
        self, params: Any, batch: Batch, ent_coef: jax.Array, hp: A2CHyper
    ) -> tuple[jax.Array, dict]:
        pi, value = self.net.apply(params, batch.obs)
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
        schedule = self.spec.agent.net.lr_schedule.name
        lr = learning_rate(schedule, hp.lr, hp.lr_end, state.update_step, self.num_updates)
        frame = state.update_step * self.frames_per_update
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


# Spec keys that only set A2CHyper leaves (A2C.hyper); schedule names/windows stay static.
HYPER_KEYS = (
    "agent.net.optim.lr",
    "agent.net.lr_schedule.end_val",
    "agent.net.clip_grad_val",
    *(f"agent.algorithm.{k}" for k in ("gamma", "lam", "val_loss_coef")),
    *schedule_keys("agent.algorithm.entropy_coef"),
)
register("A2C", A2CConfig, A2C, HYPER_KEYS)

__all__ = ["A2C", "A2CConfig", "A2CHyper", "A2CState"]
