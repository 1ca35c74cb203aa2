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
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms.base import (
    learning_rate,
    make_optimizer,
    minibatch_epochs,
    register,
    require_memory,
)
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.envs import VecEnv, VecEnvState
from jaxlab.networks import ActorCritic, TorsoDef
from jaxlab.rl import gae, losses
from jaxlab.rl.rollout import Normalizers, Transition, collect, episode_metrics, next_values
from jaxlab.spec.schema import Spec


@dataclass(frozen=True)
class PPOConfig:
    """``agent.algorithm`` for PPO. Sizes are static; the rest are tunable array leaves."""

    name: Literal["PPO"] = "PPO"
    gamma: float = 0.99
    lam: float = 0.95
    clip_eps: float = 0.2
    entropy_coef: float = 0.01
    val_loss_coef: float = 0.5
    time_horizon: int = 128
    minibatch_count: int = 4
    training_epoch: int = 4
    normalize_advantages: bool = True
    clip_value_loss: bool = True

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "lam", 0.0, 1.0)
        require_positive(self, path, "clip_eps", "time_horizon", "minibatch_count")
        require_positive(self, path, "training_epoch")
        for name in ("entropy_coef", "val_loss_coef"):
            if getattr(self, name) < 0:
                raise SpecError(f"{path}.{name}", f"must be >= 0, got {getattr(self, name)!r}")

    def frames_per_update(self, spec: Spec) -> int:
        return spec.env.num_envs * self.time_horizon

    def grad_steps_per_update(self) -> int:
        return self.training_epoch * self.minibatch_count

    def validate_spec(self, spec: Spec) -> None:
        require_memory(spec, ("OnPolicyBatch",))
        batch = self.frames_per_update(spec)
        if batch % self.minibatch_count:
            raise SpecError(
                "agent.algorithm.minibatch_count",
                f"batch num_envs * time_horizon = {spec.env.num_envs} * {self.time_horizon} = "
                f"{batch} does not divide into {self.minibatch_count} minibatches",
            )
        if spec.env.max_frame < batch:
            raise SpecError(
                "env.max_frame",
                f"{spec.env.max_frame} is less than one update ({batch} frames = "
                "num_envs * time_horizon)",
            )

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


@struct.dataclass
class PPOState:
    params: Any
    opt_state: Any
    env: VecEnvState
    norm: Normalizers  # obs/return statistics (used when env.normalize_obs/_reward)
    hyper: PPOHyper
    key: jax.Array
    update_step: jax.Array  # int32, updates done


@struct.dataclass
class Batch:
    """One rollout, time-major ``[T, N, ...]`` (flattened to ``[T*N, ...]`` for learning)."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array


class PPO:
    """PPO for one session on a :class:`VecEnv`; see the module docstring for the losses."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.cfg: PPOConfig = spec.agent.algorithm
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

    def hyper(self) -> PPOHyper:
        c, net = self.cfg, self.spec.agent.net
        lr_end = net.lr_schedule.end_val if net.lr_schedule.name == "linear_decay" else net.optim.lr
        clip = net.clip_grad_val if net.clip_grad_val is not None else float("inf")
        f = jnp.float32
        return PPOHyper(
            f(net.optim.lr), f(lr_end), f(c.gamma), f(c.lam), f(c.clip_eps),
            f(c.entropy_coef), f(c.val_loss_coef), f(clip),
        )  # fmt: skip

    def init(self, key: jax.Array) -> PPOState:
        k_net, k_env, k_state = jax.random.split(key, 3)
        params = self.net.init(k_net, jnp.zeros((1, self.env.obs_dim), jnp.float32))
        return PPOState(
            params=params,
            opt_state=self.tx.init(params),
            env=self.env.reset(k_env),
            norm=Normalizers.create(self.env.obs_dim, self.env.num_envs),
            hyper=self.hyper(),
            key=k_state,
            update_step=jnp.int32(0),
        )

    def policy(
        self, state: PPOState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Actions for ``obs`` ``[N, obs_dim]``: the mode (greedy/mean) or a sample."""
        obs = state.norm.observe(obs, self.spec.env)
        pi = self.net.apply(state.params, obs, method=self.net.policy)
        return pi.mode() if deterministic else pi.sample(key)

    # ------------------------------------------------------------------ rollout

    def _collect(self, state: PPOState, key: jax.Array) -> tuple[PPOState, Transition]:
        """Phase 1: ``time_horizon`` env steps with the sampling policy -> ``[T, N]``."""

        def act(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
            pi, value = self.net.apply(state.params, obs)
            action = pi.sample(k)
            return action, {"log_prob": pi.log_prob(action), "value": value}

        env, norm, rollout = collect(
            self.env, state.env, state.norm, act, key, self.cfg.time_horizon, self.spec.env,
            state.hyper.gamma,
        )  # fmt: skip
        return state.replace(env=env, norm=norm), rollout

    def _advantages(self, state: PPOState, ro: Transition) -> Batch:
        """Phase 2: ``V(s'_t)`` for every step (:func:`~jaxlab.rl.rollout.next_values`: the
        rollout's own values, plus one critic pass over the last and the truncated steps),
        then GAE on ``[T, N]``.

        The pre-reset next observation is the true successor, so truncated steps bootstrap
        from it (see :mod:`jaxlab.rl.gae`).
        """
        hp = state.hyper
        value = ro.extra["value"]
        critic = partial(self.net.apply, state.params, method=self.net.value)
        next_value = next_values(value, ro, critic, self.truncations)
        adv, target = gae(ro.reward, value, next_value, ro.terminated, ro.done, hp.gamma, hp.lam)
        return Batch(ro.obs, ro.action, ro.extra["log_prob"], value, adv, target)

    def value(self, state: PPOState, obs: jax.Array) -> jax.Array:
        """The critic's ``V(s)`` for raw observations ``[N, obs_dim]`` -> ``[N]``."""
        obs = state.norm.observe(obs, self.spec.env)
        return self.net.apply(state.params, obs, method=self.net.value)

    # ------------------------------------------------------------------ learning

    def loss(self, params: Any, hp: PPOHyper, mb: Batch) -> tuple[jax.Array, dict]:
        pi, value = self.net.apply(params, mb.obs)
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
        c = self.cfg
        size = c.time_horizon * self.env.num_envs
        flat = jax.tree.map(lambda x: x.reshape((size,) + x.shape[2:]), batch)
        hp = state.hyper
        params, opt_state, aux = minibatch_epochs(
            self.tx, lambda p, mb: self.loss(p, hp, mb), state.params, state.opt_state, flat,
            key, c.training_epoch, c.minibatch_count, lr, hp.max_grad_norm,
        )  # fmt: skip
        return state.replace(params=params, opt_state=opt_state), aux

    def update(self, state: PPOState) -> tuple[PPOState, dict[str, jax.Array]]:
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        hp = state.hyper
        schedule = self.spec.agent.net.lr_schedule.name
        lr = learning_rate(schedule, hp.lr, hp.lr_end, state.update_step, self.num_updates)
        state, rollout = self._collect(state, k_roll)  # phase "rollout" (in collect)
        with jax.named_scope("advantages"):  # a phase of the profile (jaxlab.tools.profiling)
            batch = self._advantages(state, rollout)
        state, metrics = self._learn(state, batch, k_learn, lr)  # "learn" (minibatch_epochs)
        episodes = episode_metrics(rollout)
        state = state.replace(key=key, update_step=state.update_step + 1)
        return state, {**metrics, "lr": lr, **episodes}


# Spec keys that only set PPOHyper leaves (PPO.hyper); lr_schedule.name stays static.
HYPER_KEYS = (
    "agent.net.optim.lr",
    "agent.net.lr_schedule.end_val",
    "agent.net.clip_grad_val",
    *(
        f"agent.algorithm.{k}"
        for k in ("gamma", "lam", "clip_eps", "entropy_coef", "val_loss_coef")
    ),
)
register("PPO", PPOConfig, PPO, HYPER_KEYS)

__all__ = ["PPO", "PPOConfig", "PPOHyper", "PPOState"]
