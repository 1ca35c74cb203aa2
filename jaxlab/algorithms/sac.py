"""Soft Actor-Critic (Haarnoja et al., 2018; discrete: Christodoulou, 2019), one session.

One update collects ``train_freq`` steps in ``num_envs`` envs with the stochastic policy
(uniform random actions while the replay holds fewer than ``learning_starts``
transitions), adds them to the replay, then, once ``size >= learning_starts``, takes
``gradient_steps`` minibatch steps. Each step updates the twin critics, then the actor
(against the just-updated critics), then the temperature, then polyak-averages the
target critics ``Q' <- tau Q + (1 - tau) Q'``. With ``alpha = exp(log_alpha)``:

continuous (tanh-Gaussian ``pi`` in the env's box, ``a ~ pi`` reparameterised):

    y       = r + gamma (1 - term) (min_j Q'_j(s', a') - alpha log pi(a'|s')),  a' ~ pi(s')
    L_Q     = sum_j mean_b w_b (Q_j(s, a) - y)^2           (w: PER weights, else 1)
    L_pi    = mean_b (alpha log pi(a|s) - min_j Q_j(s, a))
    L_alpha = -mean_b log_alpha * sg(log pi(a|s) + H_target),   H_target = -action_dim

discrete (exact expectations over the ``A`` actions):

    V(s')   = sum_a pi(a|s') (min_j Q'_j(s', a) - alpha log pi(a|s'))
    L_pi    = mean_b sum_a pi(a|s) (alpha log pi(a|s) - min_j Q_j(s, a))
    L_alpha = -mean_b log_alpha * sg(sum_a pi(a|s) (log pi(a|s) + H_target)),
              H_target = target_entropy_scale * log(A)

``auto_alpha: false`` keeps ``alpha = init_alpha`` fixed. Actor, critics and temperature
have separate optimizer states (the spec's optimizer) and rates ``actor_lr``,
``critic_lr``, ``alpha_lr`` (default ``net.optim.lr``); ``lr_schedule`` linear_decay
scales all three by the same factor, from 1 to ``end_val / optim.lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms import base
from jaxlab.algorithms.offpolicy import ReplayACConfig, ReplayACState, ReplayActorCritic
from jaxlab.algorithms.registry import register
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.envs import Env
from jaxlab.networks import DiscreteActor, QNetwork, SquashedActor, StateActionQ, twin
from jaxlab.rl.rollout import Normalizers
from jaxlab.rl.sac import (
    discrete_soft_actor_loss,
    discrete_soft_value,
    discrete_temperature_loss,
    soft_actor_loss,
    soft_critic_loss,
    temperature_loss,
    twin_min,
)
from jaxlab.rl.targets import polyak_update
from jaxlab.rl.td import bootstrap

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec

sg = jax.lax.stop_gradient


@dataclass(frozen=True)
class SACConfig(ReplayACConfig):
    """``agent.algorithm`` for SAC. ``learning_starts`` counts transitions in the replay;
    ``target_entropy`` None: ``-action_dim`` (continuous) or ``target_entropy_scale *
    log(action_dim)`` (discrete). ``*_lr`` None: ``net.optim.lr``."""

    name: Literal["SAC"] = "SAC"
    gamma: float = tunable(0.99)
    tau: float = tunable(0.005)
    train_freq: int = 1
    gradient_steps: int = 1
    learning_starts: int = 1000
    auto_alpha: bool = True
    init_alpha: float = tunable(1.0)
    target_entropy: float | None = tunable(None)
    target_entropy_scale: float = tunable(0.5)
    actor_lr: float | None = tunable(None)
    critic_lr: float | None = tunable(None)
    alpha_lr: float | None = tunable(None)

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "tau", 0.0, 1.0)
        require_range(self, path, "target_entropy_scale", 0.0, 1.0)
        require_positive(self, path, "tau", "train_freq", "gradient_steps", "init_alpha")
        require_positive(self, path, "actor_lr", "critic_lr", "alpha_lr")
        if self.learning_starts < 0:
            raise SpecError(f"{path}.learning_starts", f"must be >= 0, got {self.learning_starts}")


@struct.dataclass
class SACHyper:
    """Tunable numbers, float32 scalars (``[S]`` once vmapped over sessions)."""

    critic_lr: jax.Array
    actor_lr: jax.Array
    alpha_lr: jax.Array
    lr_end_frac: jax.Array  # linear_decay end factor, end_val / optim.lr
    gamma: jax.Array
    tau: jax.Array
    alpha: jax.Array  # the fixed temperature when auto_alpha is off
    target_entropy: jax.Array
    max_grad_norm: jax.Array
    per_alpha: jax.Array
    per_beta: jax.Array  # annealed linearly to 1 over the run
    per_epsilon: jax.Array  # prioritized replay's p_i = |delta_i| + per_epsilon


@struct.dataclass
class SACOpt:
    """The three optimizer states (each with its injected learning rate)."""

    actor: Any
    critic: Any
    alpha: Any


SACState = ReplayACState  # params {actor, critic (twin), log_alpha}; target critic


METRICS = ("critic_loss", "actor_loss", "alpha", "alpha_loss", "entropy", "q_mean")
METRICS += ("critic_grad_norm", "actor_grad_norm")


class SAC(ReplayActorCritic):
    """SAC for one session; see the module docstring for the losses."""

    METRICS = METRICS
    STEP_KEYS = 2  # the next action's sample, the actor's sample

    def __init__(self, spec: Spec, env: Env | None = None) -> None:
        super().__init__(spec, env)
        net, actions = spec.agent.net, self.env.action_spec
        dim = actions.dim
        torso = self.torso()
        self.discrete = actions.discrete
        if self.discrete:
            self.actor = DiscreteActor(dim, torso)
            self.critic = twin(QNetwork, action_dim=dim, torso=torso, dueling=net.dueling)
        else:
            self.actor = SquashedActor(dim, *self.bounds(), torso)
            self.critic = twin(StateActionQ, torso=torso)

    def hyper(self) -> SACHyper:
        c, net, mem = self.cfg, self.spec.agent.net, self.spec.agent.memory
        lr = net.optim.lr
        end = self.lr_end_frac()
        dim = self.env.action_spec.dim
        target = c.target_entropy_scale * math.log(dim) if self.discrete else -float(dim)
        target = target if c.target_entropy is None else c.target_entropy
        f, clip = jnp.float32, self.net_hyper()["max_grad_norm"]
        return SACHyper(
            f(c.critic_lr or lr), f(c.actor_lr or lr), f(c.alpha_lr or lr), f(end), f(c.gamma),
            f(c.tau), f(c.init_alpha), f(target), clip, f(mem.alpha), f(mem.beta),
            f(mem.epsilon),
        )  # fmt: skip

    def init(self, key: jax.Array) -> SACState:
        k_actor, k_critic, k_env, k_state = jax.random.split(key, 4)
        obs = jnp.zeros((1, self.env.observation_spec.dim), jnp.float32)
        inputs = (obs,) if self.discrete else (obs, jnp.zeros((1, self.env.action_spec.dim)))
        critic = self.critic.init(k_critic, *inputs)
        log_alpha = jnp.log(jnp.float32(self.cfg.init_alpha))
        params = {"actor": self.actor.init(k_actor, obs), "critic": critic, "log_alpha": log_alpha}
        opt = SACOpt(self.tx.init(params["actor"]), self.tx.init(critic), self.tx.init(log_alpha))
        return SACState(
            params, jax.tree.map(jnp.copy, critic), opt,
            self.new_replay(),
            self.env.reset(k_env), Normalizers.create(self.env.observation_spec.dim, self.env.num_envs),
            self.hyper(), k_state, jnp.int32(0),
        )  # fmt: skip

    def policy(
        self, state: SACState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Actions for raw ``obs [N, obs_dim]``: the mode (argmax / tanh(mean)) or a sample."""
        pi = self.actor.apply(state.params["actor"], state.norm.observe(obs, self.spec.env))
        return pi.mode() if deterministic else pi.sample(key)

    def value(self, state: SACState, obs: jax.Array) -> jax.Array:
        """``E_pi[min_j Q_j(s, a)]`` without the entropy bonus, raw ``obs [N, D]`` -> ``[N]``.

        Discrete: the exact sum over actions. Continuous: at the policy's mean action
        ``tanh(mu(s))`` (a one-point estimate; the deterministic policy's value)."""
        p, obs = state.params, state.norm.observe(obs, self.spec.env)
        pi = self.actor.apply(p["actor"], obs)
        if self.discrete:
            q = twin_min(self.critic.apply(p["critic"], obs))
            return jnp.sum(jax.nn.softmax(pi.logits) * q, axis=-1)
        return twin_min(self.critic.apply(p["critic"], obs, pi.mode()))

    def _alpha(self, log_alpha: jax.Array, hp: SACHyper) -> jax.Array:
        return jnp.exp(log_alpha) if self.cfg.auto_alpha else hp.alpha

    def _target(self, p: Any, target: Any, b: dict, alpha: jax.Array, key: jax.Array, hp):
        """The soft TD target ``y [B]`` (no gradient)."""
        pi = self.actor.apply(p["actor"], b["next_obs"])
        if self.discrete:
            q_next = twin_min(self.critic.apply(target, b["next_obs"]))
            v = discrete_soft_value(jax.nn.log_softmax(pi.logits), q_next, alpha)
        else:
            a, logp = pi.sample_and_log_prob(key)
            v = twin_min(self.critic.apply(target, b["next_obs"], a)) - alpha * logp
        return sg(bootstrap(b["reward"], b["terminated"], hp.gamma, v))

    def _critic_loss(self, critic: Any, b: dict, y: jax.Array, w: jax.Array):
        """``sum_j mean_b w (Q_j - y)^2``; aux: (|TD| averaged over the twins [B], mean Q)."""
        if self.discrete:
            onehot = jax.nn.one_hot(b["action"], self.env.action_spec.dim)
            q = jnp.sum(self.critic.apply(critic, b["obs"]) * onehot[None], axis=-1)
        else:
            q = self.critic.apply(critic, b["obs"], b["action"])
        return soft_critic_loss(q, y, w)

    def _actor_loss(self, actor: Any, critic: Any, obs: jax.Array, alpha: jax.Array, key):
        """The actor loss; aux: (what the temperature loss takes, entropy estimate)."""
        pi = self.actor.apply(actor, obs)
        if self.discrete:
            logp = jax.nn.log_softmax(pi.logits)
            q = twin_min(self.critic.apply(critic, obs))
            loss = discrete_soft_actor_loss(logp, q, alpha)
            return loss, (sg(logp), jnp.mean(pi.entropy()))
        a, logp = pi.sample_and_log_prob(key)
        q = twin_min(self.critic.apply(critic, obs, a))
        return soft_actor_loss(logp, q, alpha), (sg(logp), -jnp.mean(logp))

    def rates(self, hp: SACHyper, step: jax.Array) -> tuple[jax.Array, ...]:
        decay = self.decay(hp, step)
        return hp.critic_lr * decay, hp.actor_lr * decay, hp.alpha_lr * decay

    def behaviour(self, state: SACState, obs: jax.Array, key: jax.Array) -> jax.Array:
        return self.actor.apply(state.params["actor"], obs).sample(key)

    def grad_step(self, lrn: tuple, b: dict, w: jax.Array, keys: jax.Array, hp: SACHyper, lrs):
        """One critic, actor, temperature and target step on one minibatch."""
        p, target, opt = lrn
        k_next, k_pi = keys
        alpha = self._alpha(p["log_alpha"], hp)
        y = self._target(p, target, b, alpha, k_next, hp)
        c_grad = jax.value_and_grad(self._critic_loss, has_aux=True)
        (c_loss, (td, q_mean)), g = c_grad(p["critic"], b, y, w)
        g, c_norm = base.clip_by_global_norm(g, hp.max_grad_norm)
        critic, critic_opt = base.apply_gradients(self.tx, p["critic"], opt.critic, g, lrs[0])
        a_grad = jax.value_and_grad(self._actor_loss, has_aux=True)
        (a_loss, (logp, entropy)), g = a_grad(p["actor"], critic, b["obs"], alpha, k_pi)
        g, a_norm = base.clip_by_global_norm(g, hp.max_grad_norm)
        actor, actor_opt = base.apply_gradients(self.tx, p["actor"], opt.actor, g, lrs[1])
        t_loss = discrete_temperature_loss if self.discrete else temperature_loss
        al_loss, g = jax.value_and_grad(t_loss)(p["log_alpha"], logp, hp.target_entropy)
        log_alpha, alpha_opt = p["log_alpha"], opt.alpha
        if self.cfg.auto_alpha:
            log_alpha, alpha_opt = base.apply_gradients(self.tx, log_alpha, alpha_opt, g, lrs[2])
        target = polyak_update(critic, target, hp.tau)
        params = {"actor": actor, "critic": critic, "log_alpha": log_alpha}
        lrn = (params, target, SACOpt(actor_opt, critic_opt, alpha_opt))
        values = (c_loss, a_loss, alpha, al_loss, entropy, q_mean, c_norm, a_norm)
        return lrn, td, dict(zip(METRICS, values, strict=True))

    def idle_metrics(self, lrn: tuple, hp: SACHyper) -> dict[str, jax.Array]:
        metrics = super().idle_metrics(lrn, hp)
        metrics["alpha"] = self._alpha(lrn[0]["log_alpha"], hp).astype(jnp.float32)
        return metrics


# Spec keys that only set SACHyper leaves (init_alpha also sets log_alpha's start: static).
register("SAC", SACConfig, SAC, hyper_sections=("agent.net", "agent.memory"))

__all__ = ["SAC", "SACConfig", "SACHyper", "SACOpt", "SACState"]
