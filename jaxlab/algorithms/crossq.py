"""CrossQ (Bhatt et al., ICLR 2024): SAC without target networks, its critics
batch-renormalised and wide, one session; continuous or discrete actions.

The replay loop, the tanh-Gaussian actor, the temperature and their losses are SAC's
(:mod:`jaxlab.algorithms.sac`). What changes is the critic step: the current and the next
state-action batches go through the critics in one joint forward pass in training mode,

    [Q_j(s, a); Q_j(s', a')] = critic_j([s; s'], [a; sg(a')]),    a' ~ pi(s')
    y   = r + gamma (1 - term) (min_j sg(Q_j(s', a')) - alpha log pi(a'|s'))
    L_Q = sum_j mean_b w_b (Q_j(s_b, a_b) - y_b)^2

Discrete actions take discrete SAC's exact expectations over the ``A`` actions: the
critics give ``Q_j(s, .) [A]`` for ``[s; s']`` in the joint pass, and

    y   = r + gamma (1 - term) sum_a pi(a|s') (min_j sg(Q_j(s', a)) - alpha log pi(a|s'))
    L_Q = sum_j mean_b w_b (Q_j(s_b, a_b) - y_b)^2

with the actor's and the temperature's losses those of discrete SAC
(:mod:`jaxlab.algorithms.sac`, ``target_entropy_scale``).

In both cases the batch statistics of each layer (:class:`~jaxlab.networks.batchrenorm.BatchRenorm`)
cover both distributions, and the bootstrap needs no target copy. The running statistics
are updated by that pass and live in ``params["critic"]["batch_stats"]`` (checkpointed and
resumed like every state leaf); the actor's loss and ``value`` read the critics in
evaluation mode. Every ``policy_delay``-th critic step also updates the actor and the
temperature. The critics have their own layer sizes (``critic_layers``, wide by default);
the actor uses ``agent.net.hid_layers``. CrossQ's Adam has ``b1 = 0.5``
(``agent.net.optim.b1``, set by the shipped spec).
"""

from __future__ import annotations

import math
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
from jaxlab.algorithms.sac import METRICS, SAC, SACHyper
from jaxlab.algorithms.skeleton import INT32_MAX
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.envs import Env
from jaxlab.networks import DiscreteActor, SquashedActor, ensemble
from jaxlab.networks.batchrenorm import RenormQ
from jaxlab.rl.ops import ensemble_min
from jaxlab.rl.rollout import Normalizers
from jaxlab.rl.sac import (
    discrete_soft_value,
    discrete_temperature_loss,
    soft_critic_loss,
    temperature_loss,
)
from jaxlab.rl.td import bootstrap

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec

sg = jax.lax.stop_gradient


@dataclass(frozen=True)
class CrossQConfig(ReplayACConfig):
    """``agent.algorithm`` for CrossQ. ``target_entropy`` None: ``-action_dim``
    (continuous) or ``target_entropy_scale * log(action_dim)`` (discrete); ``*_lr`` None:
    ``net.optim.lr``; ``renorm_warmup_steps`` counts critic steps."""

    name: Literal["CrossQ"] = "CrossQ"
    gamma: float = tunable(0.99)
    train_freq: int = 1
    gradient_steps: int = 1
    learning_starts: int = 1000
    policy_delay: int = 3
    critic_layers: tuple[int, ...] = (2048, 2048)
    bn_momentum: float = 0.99
    renorm_warmup_steps: int = 100_000
    auto_alpha: bool = True
    init_alpha: float = tunable(1.0)
    target_entropy: float | None = tunable(None)
    target_entropy_scale: float = tunable(0.5)
    actor_lr: float | None = tunable(None)
    critic_lr: float | None = tunable(None)
    alpha_lr: float | None = tunable(None)

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "target_entropy_scale", 0.0, 1.0)
        require_positive(self, path, "train_freq", "gradient_steps", "policy_delay")
        require_positive(self, path, "init_alpha", "actor_lr", "critic_lr", "alpha_lr")
        if self.learning_starts < 0:
            raise SpecError(f"{path}.learning_starts", f"must be >= 0, got {self.learning_starts}")
        if self.renorm_warmup_steps < 0:
            raise SpecError(f"{path}.renorm_warmup_steps", "must be >= 0")
        if not 0.0 < self.bn_momentum < 1.0:
            raise SpecError(f"{path}.bn_momentum", f"must lie in (0, 1), got {self.bn_momentum}")
        if not self.critic_layers or min(self.critic_layers) <= 0:
            raise SpecError(f"{path}.critic_layers", "must be a non-empty list of positive sizes")


@struct.dataclass
class CrossQOpt:
    """The actor's, critics' and temperature's optimizer states and the critic steps."""

    actor: Any
    critic: Any  # over params["critic"]["params"] (the batch statistics are not trained)
    alpha: Any
    critic_steps: jax.Array  # int32


class CrossQ(SAC):
    """CrossQ for one session; see the module docstring."""

    def __init__(self, spec: Spec, env: Env | None = None) -> None:
        ReplayActorCritic.__init__(self, spec, env)
        net, c, actions = spec.agent.net, self.cfg, self.env.action_spec
        self.discrete = actions.discrete
        if self.discrete:
            self.actor = DiscreteActor(actions.dim, self.torso())
        else:
            self.actor = SquashedActor(actions.dim, *self.bounds(), self.torso())
        fields = dict(hid_layers=tuple(c.critic_layers), activation=net.activation,
                      kernel_init=net.kernel_init, momentum=c.bn_momentum,
                      warmup_steps=c.renorm_warmup_steps,
                      action_dim=actions.dim if self.discrete else 0,
                      saturate=self.critic_steps_most() > INT32_MAX)  # fmt: skip
        self.critic_train = ensemble(RenormQ, 2, train=True, **fields)
        self.critic = ensemble(RenormQ, 2, train=False, **fields)  # evaluation mode

    def hyper(self) -> SACHyper:
        c, net, mem, f = self.cfg, self.spec.agent.net, self.spec.agent.memory, jnp.float32
        lr = net.optim.lr
        end, dim = self.lr_end_frac(), self.env.action_spec.dim
        target = c.target_entropy_scale * math.log(dim) if self.discrete else -float(dim)
        target = target if c.target_entropy is None else c.target_entropy
        return SACHyper(
            f(c.critic_lr or lr),
            f(c.actor_lr or lr),
            f(c.alpha_lr or lr),
            f(end),
            f(c.gamma),
            f(0.0),
            f(c.init_alpha),
            f(target),
            self.net_hyper()["max_grad_norm"],
            f(mem.alpha),
            f(mem.beta),
            f(mem.epsilon),
        )  # fmt: skip  (tau 0: no target network)

    def init(self, key: jax.Array) -> ReplayACState:
        k_actor, k_critic, k_env, k_state = jax.random.split(key, 4)
        obs = jnp.zeros((1, self.env.observation_spec.dim), jnp.float32)
        inputs = (obs,) if self.discrete else (obs, jnp.zeros((1, self.env.action_spec.dim)))
        critic = self.critic_train.init(k_critic, *inputs)
        log_alpha = jnp.log(jnp.float32(self.cfg.init_alpha))
        params = {"actor": self.actor.init(k_actor, obs), "critic": critic, "log_alpha": log_alpha}
        tx = self.tx
        opt = CrossQOpt(tx.init(params["actor"]), tx.init(critic["params"]), tx.init(log_alpha),
                        jnp.int32(0))  # fmt: skip
        return ReplayACState(
            params, {}, opt, self.new_replay(), self.env.reset(k_env),
            Normalizers.create(obs.shape[1], self.env.num_envs), self.hyper(), k_state,
            jnp.int32(0),
        )  # fmt: skip

    def _joint_critic_loss(self, critic: Any, stats: Any, b: dict, nxt: tuple, w, hp):
        """The joint pass and ``L_Q``; ``nxt``: the next policy's ``(a' [B, A], alpha log
        pi(a'|s') [B])`` sampled (continuous) or ``(log pi(.|s') [B, A], alpha)``
        (discrete). Aux: (|TD| [B], mean Q, the new batch statistics)."""
        size, variables = b["reward"].shape[0], {"params": critic, "batch_stats": stats}
        obs = jnp.concatenate([b["obs"], b["next_obs"]])
        if self.discrete:
            q, updates = self.critic_train.apply(variables, obs, mutable=["batch_stats"])
            logp_next, alpha = nxt
            v_next = discrete_soft_value(logp_next, ensemble_min(sg(q[:, size:])), alpha)
            onehot = jax.nn.one_hot(b["action"], self.env.action_spec.dim)
            q_taken = jnp.sum(q[:, :size] * onehot[None], axis=-1)
        else:
            act = jnp.concatenate([b["action"], nxt[0]])
            q, updates = self.critic_train.apply(variables, obs, act, mutable=["batch_stats"])
            v_next, q_taken = ensemble_min(sg(q[:, size:])) - nxt[1], q[:, :size]
        y = sg(bootstrap(b["reward"], b["terminated"], hp.gamma, v_next))
        loss, (td, q_mean) = soft_critic_loss(q_taken, y, w)
        return loss, (td, q_mean, updates["batch_stats"])

    def _next_policy(self, actor: Any, next_obs: jax.Array, alpha: jax.Array, key) -> tuple:
        """What the joint critic loss takes of ``pi(.|s')`` (no gradient), see there."""
        pi = self.actor.apply(actor, next_obs)
        if self.discrete:
            return sg(jax.nn.log_softmax(pi.logits)), alpha
        a_next, logp_next = pi.sample_and_log_prob(key)
        return sg(a_next), sg(alpha * logp_next)

    def grad_step(self, lrn: tuple, b: dict, w: jax.Array, keys: jax.Array, hp: SACHyper, lrs):
        """A joint critic step; every ``policy_delay``-th, the actor and temperature too
        (:func:`~jaxlab.algorithms.offpolicy.when_due`); the actor's loss is SAC's, through
        the critics in evaluation mode (``self.critic``)."""
        p, target, opt = lrn
        k_next, k_pi = keys
        alpha = self._alpha(p["log_alpha"], hp)
        nxt = self._next_policy(p["actor"], b["next_obs"], alpha, k_next)
        c_grad = jax.value_and_grad(self._joint_critic_loss, has_aux=True)
        crit = p["critic"]
        (c_loss, (td, q_mean, stats)), g = c_grad(
            crit["params"], crit["batch_stats"], b, nxt, w, hp
        )
        g, c_norm = base.clip_by_global_norm(g, hp.max_grad_norm)
        c_params, critic_opt = base.apply_gradients(self.tx, crit["params"], opt.critic, g, lrs[0])
        critic = {"params": c_params, "batch_stats": stats}
        a_grad = jax.value_and_grad(self._actor_loss, has_aux=True)  # critics in eval mode
        (a_loss, (logp, entropy)), g = a_grad(p["actor"], critic, b["obs"], alpha, k_pi)
        g, a_norm = base.clip_by_global_norm(g, hp.max_grad_norm)
        actor, actor_opt = base.apply_gradients(self.tx, p["actor"], opt.actor, g, lrs[1])
        t_loss = discrete_temperature_loss if self.discrete else temperature_loss
        al_loss, g = jax.value_and_grad(t_loss)(p["log_alpha"], logp, hp.target_entropy)
        log_alpha, alpha_opt = p["log_alpha"], opt.alpha
        if self.cfg.auto_alpha:
            log_alpha, alpha_opt = base.apply_gradients(self.tx, log_alpha, alpha_opt, g, lrs[2])
        delay = self.cfg.policy_delay
        steps = next_step(opt.critic_steps, delay, self.critic_steps_most())
        moved = (actor, actor_opt, log_alpha, alpha_opt)
        kept = (p["actor"], opt.actor, p["log_alpha"], opt.alpha)
        actor, actor_opt, log_alpha, alpha_opt = when_due(steps, delay, moved, kept)
        params = {"actor": actor, "critic": critic, "log_alpha": log_alpha}
        lrn = (params, target, CrossQOpt(actor_opt, critic_opt, alpha_opt, steps))
        values = (c_loss, a_loss, alpha, al_loss, entropy, q_mean, c_norm, a_norm)
        return lrn, td, dict(zip(METRICS, values, strict=True))


register("CrossQ", CrossQConfig, CrossQ, hyper_sections=("agent.net", "agent.memory"))

__all__ = ["CrossQ", "CrossQConfig", "CrossQOpt"]
