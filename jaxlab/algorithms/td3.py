"""Twin Delayed DDPG (Fujimoto et al., 2018), and DDPG (Lillicrap et al., 2016) as its
special case, one session; continuous actions only.

The replay loop is :mod:`jaxlab.algorithms.offpolicy`'s. The behaviour policy is the
deterministic actor plus Gaussian noise, ``sigma = explore_var`` (a schedule over the
session's frames, in units of the action box's half-range). Each gradient step:

1. regresses the ``K`` critics (``twin_critics``: ``K = 2``, else 1) on
   ``y = r + gamma (1 - term) min_k Q'_k(s', a')`` with the smoothed target action
   ``a' = clip(mu'(s') + h clip(target_noise * eps, -target_noise_clip, target_noise_clip))``;
2. every ``policy_delay``-th critic step (counted over the whole run), moves the actor
   along ``-mean_b Q_1(s_b, mu(s_b))`` against the just-updated critics and
   polyak-averages both targets, ``theta' <- tau theta + (1 - tau) theta'``.

The maths is in :mod:`jaxlab.rl.td3`. DDPG is ``twin_critics: false, policy_delay: 1,
target_noise: 0`` (``specs/td3/ddpg_pendulum.yaml``). Actor and critics have separate
optimizer states (the spec's optimizer) and rates ``actor_lr``, ``critic_lr`` (default
``net.optim.lr``); ``lr_schedule`` linear_decay scales both by the same factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms import base
from jaxlab.algorithms.offpolicy import (
    ReplayACConfig,
    ReplayACState,
    ReplayActorCritic,
    next_step,
    when_due,
)
from jaxlab.algorithms.registry import register
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.envs import Env
from jaxlab.networks import DeterministicActor, StateActionQ, ensemble
from jaxlab.rl.ops import ensemble_min
from jaxlab.rl.rollout import Normalizers
from jaxlab.rl.schedules import ScheduleHyper, ScheduleSpec, constant
from jaxlab.rl.targets import polyak_update
from jaxlab.rl.td3 import critic_loss, deterministic_actor_loss, noisy_action, td3_target

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec

sg = jax.lax.stop_gradient


def default_explore() -> ScheduleSpec:
    return constant(0.1)


@dataclass(frozen=True)
class TD3Config(ReplayACConfig):
    """``agent.algorithm`` for TD3 / DDPG. ``learning_starts`` counts transitions in the
    replay; noises are in units of the action box's half-range; ``*_lr`` None:
    ``net.optim.lr``."""

    name: Literal["TD3"] = "TD3"
    gamma: float = tunable(0.99)
    tau: float = tunable(0.005)
    train_freq: int = 1
    gradient_steps: int = 1
    learning_starts: int = 1000
    twin_critics: bool = True
    policy_delay: int = 2
    explore_var: ScheduleSpec = tunable(default_factory=default_explore)
    target_noise: float = tunable(0.2)
    target_noise_clip: float = tunable(0.5)
    actor_lr: float | None = tunable(None)
    critic_lr: float | None = tunable(None)

    CONTINUOUS_ONLY = True

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "tau", 0.0, 1.0)
        require_positive(self, path, "tau", "train_freq", "gradient_steps", "policy_delay")
        require_positive(self, path, "target_noise_clip", "actor_lr", "critic_lr")
        if self.learning_starts < 0:
            raise SpecError(f"{path}.learning_starts", f"must be >= 0, got {self.learning_starts}")
        if self.target_noise < 0:
            raise SpecError(f"{path}.target_noise", f"must be >= 0, got {self.target_noise}")
        if min(self.explore_var.start_val, self.explore_var.end_val) < 0:
            raise SpecError(f"{path}.explore_var", "the noise's start_val/end_val must be >= 0")


@struct.dataclass
class TD3Hyper:
    """Tunable numbers, float32 scalars (``[S]`` once vmapped over sessions)."""

    critic_lr: jax.Array
    actor_lr: jax.Array
    lr_end_frac: jax.Array  # linear_decay end factor, end_val / optim.lr
    gamma: jax.Array
    tau: jax.Array
    explore: ScheduleHyper  # the behaviour noise's sigma, start/end
    target_noise: jax.Array
    target_noise_clip: jax.Array
    max_grad_norm: jax.Array
    per_alpha: jax.Array
    per_beta: jax.Array  # annealed linearly to 1 over the run
    per_epsilon: jax.Array  # prioritized replay's p_i = |delta_i| + per_epsilon


@struct.dataclass
class TD3Opt:
    """The actor's and critics' optimizer states and the critic steps taken (int32)."""

    actor: Any
    critic: Any
    critic_steps: jax.Array


METRICS = ("critic_loss", "actor_loss", "q_mean", "critic_grad_norm", "actor_grad_norm")


class TD3(ReplayActorCritic):
    """TD3 / DDPG for one session; see the module docstring."""

    METRICS = METRICS
    STEP_KEYS = 1  # the target smoothing noise

    def __init__(self, spec: Spec, env: Env | None = None) -> None:
        super().__init__(spec, env)
        torso = self.torso()
        self.actor = DeterministicActor(self.env.action_spec.dim, *self.bounds(), torso)
        self.critic = ensemble(StateActionQ, 2 if self.cfg.twin_critics else 1, torso=torso)

    def hyper(self) -> TD3Hyper:
        c, net, mem, f = self.cfg, self.spec.agent.net, self.spec.agent.memory, jnp.float32
        lr = net.optim.lr
        end = self.lr_end_frac()
        return TD3Hyper(
            f(c.critic_lr or lr), f(c.actor_lr or lr), f(end), f(c.gamma), f(c.tau),
            c.explore_var.hyper(), f(c.target_noise), f(c.target_noise_clip),
            self.net_hyper()["max_grad_norm"], f(mem.alpha), f(mem.beta), f(mem.epsilon),
        )  # fmt: skip

    def init(self, key: jax.Array) -> ReplayACState:
        k_actor, k_critic, k_env, k_state = jax.random.split(key, 4)
        obs = jnp.zeros((1, self.env.observation_spec.dim), jnp.float32)
        action = jnp.zeros((1, self.env.action_spec.dim), jnp.float32)
        params = {
            "actor": self.actor.init(k_actor, obs),
            "critic": self.critic.init(k_critic, obs, action),
        }
        opt = TD3Opt(self.tx.init(params["actor"]), self.tx.init(params["critic"]), jnp.int32(0))
        return ReplayACState(
            params, jax.tree.map(jnp.copy, params), opt, self.new_replay(),
            self.env.reset(k_env), Normalizers.create(obs.shape[1], self.env.num_envs),
            self.hyper(), k_state, jnp.int32(0),
        )  # fmt: skip

    # ------------------------------------------------------------------ acting

    def sigma(self, state: ReplayACState) -> jax.Array:
        """The behaviour noise at the session's frame count (a scalar)."""
        return self.cfg.explore_var.value(state.hyper.explore, self.frame(state))

    def _noisy(self, state: ReplayACState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """``clip(mu(s) + h sigma eps)`` for (normalised) ``obs [N, D]``."""
        mu = self.actor.apply(state.params["actor"], obs)
        noise = self.sigma(state) * jax.random.normal(key, mu.shape)
        return noisy_action(mu, noise, *self.box())

    def behaviour(self, state: ReplayACState, obs: jax.Array, key: jax.Array) -> jax.Array:
        return self._noisy(state, obs, key)

    def policy(
        self, state: ReplayACState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Actions for raw ``obs [N, D]``: ``mu(s)``, or with the current behaviour noise."""
        obs = state.norm.observe(obs, self.spec.env)
        if deterministic:
            return self.actor.apply(state.params["actor"], obs)
        return self._noisy(state, obs, key)

    def value(self, state: ReplayACState, obs: jax.Array) -> jax.Array:
        """``min_k Q_k(s, mu(s))`` for raw ``obs [N, D]`` -> ``[N]``."""
        p, obs = state.params, state.norm.observe(obs, self.spec.env)
        return ensemble_min(self.critic.apply(p["critic"], obs, self.actor.apply(p["actor"], obs)))

    # ------------------------------------------------------------------ learning

    def rates(self, hp: TD3Hyper, step: jax.Array) -> tuple[jax.Array, ...]:
        decay = self.decay(hp, step)
        return hp.critic_lr * decay, hp.actor_lr * decay

    def _target(self, target: Any, b: dict, key: jax.Array, hp: TD3Hyper) -> jax.Array:
        """``y [B]`` at the smoothed target action (no gradient)."""
        mu_next = self.actor.apply(target["actor"], b["next_obs"])
        noise = hp.target_noise * jax.random.normal(key, mu_next.shape)
        a_next = noisy_action(mu_next, noise, *self.box(), hp.target_noise_clip)
        q_next = self.critic.apply(target["critic"], b["next_obs"], a_next)
        return sg(td3_target(b["reward"], b["terminated"], hp.gamma, q_next))

    def _critic_loss(self, critic: Any, b: dict, y: jax.Array, w: jax.Array):
        return critic_loss(self.critic.apply(critic, b["obs"], b["action"]), y, w)

    def _actor_loss(self, actor: Any, critic: Any, obs: jax.Array) -> jax.Array:
        return deterministic_actor_loss(
            self.critic.apply(critic, obs, self.actor.apply(actor, obs))
        )

    def grad_step(self, lrn: tuple, b: dict, w: jax.Array, keys: jax.Array, hp: TD3Hyper, lrs):
        """A critic step; every ``policy_delay``-th, an actor step and the target moves
        (:func:`~jaxlab.algorithms.offpolicy.when_due`)."""
        p, target, opt = lrn
        y = self._target(target, b, keys[0], hp)
        c_grad = jax.value_and_grad(self._critic_loss, has_aux=True)
        (c_loss, (td, q_mean)), g = c_grad(p["critic"], b, y, w)
        g, c_norm = base.clip_by_global_norm(g, hp.max_grad_norm)
        critic, critic_opt = base.apply_gradients(self.tx, p["critic"], opt.critic, g, lrs[0])
        a_loss, g = jax.value_and_grad(self._actor_loss)(p["actor"], critic, b["obs"])
        g, a_norm = base.clip_by_global_norm(g, hp.max_grad_norm)
        actor, actor_opt = base.apply_gradients(self.tx, p["actor"], opt.actor, g, lrs[1])
        new = {"actor": actor, "critic": critic}
        moved = (actor, actor_opt, polyak_update(new, target, hp.tau))
        steps = next_step(opt.critic_steps, self.cfg.policy_delay, self.critic_steps_most())
        kept = (p["actor"], opt.actor, target)
        actor, actor_opt, target = when_due(steps, self.cfg.policy_delay, moved, kept)
        params = {"actor": actor, "critic": critic}
        lrn = (params, target, TD3Opt(actor_opt, critic_opt, steps))
        values = (c_loss, a_loss, q_mean, c_norm, a_norm)
        return lrn, td, dict(zip(METRICS, values, strict=True))


# Spec keys that only set TD3Hyper leaves; sizes, the delay and the schedule window stay static.
register("TD3", TD3Config, TD3, hyper_sections=("agent.net", "agent.memory"))

__all__ = ["TD3", "TD3Config", "TD3Hyper", "TD3Opt"]
