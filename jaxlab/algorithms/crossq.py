"""CrossQ (Bhatt et al., ICLR 2024): SAC without target networks, its critics
batch-renormalised and wide, one session; continuous actions.

The replay loop, the tanh-Gaussian actor, the temperature and their losses are SAC's
(:mod:`jaxlab.algorithms.sac`). What changes is the critic step: the current and the next
state-action batches go through the critics in one joint forward pass in training mode,

    [Q_j(s, a); Q_j(s', a')] = critic_j([s; s'], [a; sg(a')]),    a' ~ pi(s')
    y   = r + gamma (1 - term) (min_j sg(Q_j(s', a')) - alpha log pi(a'|s'))
    L_Q = sum_j mean_b w_b (Q_j(s_b, a_b) - y_b)^2

so the batch statistics of each layer (:class:`~jaxlab.networks.batchrenorm.BatchRenorm`)
cover both distributions, and the bootstrap needs no target copy. The running statistics
are updated by that pass and live in ``params["critic"]["batch_stats"]`` (checkpointed and
resumed like every state leaf); the actor's loss and ``value`` read the critics in
evaluation mode. Every ``policy_delay``-th critic step also updates the actor and the
temperature. The critics have their own layer sizes (``critic_layers``, wide by default);
the actor uses ``agent.net.hid_layers``. CrossQ's Adam has ``b1 = 0.5``
(``agent.net.optim.b1``, set by the shipped spec).
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
    when_due,
)
from jaxlab.algorithms.registry import register
from jaxlab.algorithms.sac import METRICS, SAC, SACHyper
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.envs import Env
from jaxlab.networks import SquashedActor, ensemble
from jaxlab.networks.batchrenorm import RenormQ
from jaxlab.rl.ops import ensemble_min
from jaxlab.rl.rollout import Normalizers
from jaxlab.rl.sac import soft_critic_loss, temperature_loss
from jaxlab.rl.td import bootstrap

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec

sg = jax.lax.stop_gradient


@dataclass(frozen=True)
class CrossQConfig(ReplayACConfig):
    """``agent.algorithm`` for CrossQ. ``target_entropy`` None: ``-action_dim``; ``*_lr``
    None: ``net.optim.lr``; ``renorm_warmup_steps`` counts critic steps."""

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
    actor_lr: float | None = tunable(None)
    critic_lr: float | None = tunable(None)
    alpha_lr: float | None = tunable(None)

    CONTINUOUS_ONLY = True

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
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
        net, c = spec.agent.net, self.cfg
        self.discrete = False
        self.actor = SquashedActor(self.env.action_spec.dim, *self.bounds(), self.torso())
        fields = dict(hid_layers=tuple(c.critic_layers), activation=net.activation,
                      kernel_init=net.kernel_init, momentum=c.bn_momentum,
                      warmup_steps=c.renorm_warmup_steps)  # fmt: skip
        self.critic_train = ensemble(RenormQ, 2, train=True, **fields)
        self.critic = ensemble(RenormQ, 2, train=False, **fields)  # evaluation mode

    def hyper(self) -> SACHyper:
        c, net, mem, f = self.cfg, self.spec.agent.net, self.spec.agent.memory, jnp.float32
        lr = net.optim.lr
        end = self.lr_end_frac()
        target = -float(self.env.action_spec.dim) if c.target_entropy is None else c.target_entropy
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
        critic = self.critic_train.init(k_critic, obs, jnp.zeros((1, self.env.action_spec.dim)))
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

    def value(self, state: ReplayACState, obs: jax.Array) -> jax.Array:
        """``min_j Q_j(s, tanh(mu(s)))`` (evaluation mode), raw ``obs [N, D]`` -> ``[N]``."""
        p, obs = state.params, state.norm.observe(obs, self.spec.env)
        return ensemble_min(
            self.critic.apply(p["critic"], obs, self.actor.apply(p["actor"], obs).mode())
        )

    def _joint_critic_loss(self, critic: Any, stats: Any, b: dict, a_next, v_bonus, w, hp):
        """The joint pass and ``L_Q``; aux: (|TD| [B], mean Q, the new batch statistics)."""
        obs = jnp.concatenate([b["obs"], b["next_obs"]])
        act = jnp.concatenate([b["action"], a_next])
        q, updates = self.critic_train.apply(
            {"params": critic, "batch_stats": stats}, obs, act, mutable=["batch_stats"]
        )
        size = b["reward"].shape[0]
        v_next = ensemble_min(sg(q[:, size:])) - v_bonus
        y = sg(bootstrap(b["reward"], b["terminated"], hp.gamma, v_next))
        loss, (td, q_mean) = soft_critic_loss(q[:, :size], y, w)
        return loss, (td, q_mean, updates["batch_stats"])

    def grad_step(self, lrn: tuple, b: dict, w: jax.Array, keys: jax.Array, hp: SACHyper, lrs):
        """A joint critic step; every ``policy_delay``-th, the actor and temperature too
        (:func:`~jaxlab.algorithms.offpolicy.when_due`); the actor's loss is SAC's, through
        the critics in evaluation mode (``self.critic``)."""
        p, target, opt = lrn
        k_next, k_pi = keys
        alpha = self._alpha(p["log_alpha"], hp)
        a_next, logp_next = self.actor.apply(p["actor"], b["next_obs"]).sample_and_log_prob(k_next)
        c_grad = jax.value_and_grad(self._joint_critic_loss, has_aux=True)
        crit = p["critic"]
        (c_loss, (td, q_mean, stats)), g = c_grad(
            crit["params"], crit["batch_stats"], b, sg(a_next), sg(alpha * logp_next), w, hp
        )
        g, c_norm = base.clip_by_global_norm(g, hp.max_grad_norm)
        c_params, critic_opt = base.apply_gradients(self.tx, crit["params"], opt.critic, g, lrs[0])
        critic = {"params": c_params, "batch_stats": stats}
        a_grad = jax.value_and_grad(self._actor_loss, has_aux=True)  # critics in eval mode
        (a_loss, (logp, entropy)), g = a_grad(p["actor"], critic, b["obs"], alpha, k_pi)
        g, a_norm = base.clip_by_global_norm(g, hp.max_grad_norm)
        actor, actor_opt = base.apply_gradients(self.tx, p["actor"], opt.actor, g, lrs[1])
        al_loss, g = jax.value_and_grad(temperature_loss)(p["log_alpha"], logp, hp.target_entropy)
        log_alpha, alpha_opt = p["log_alpha"], opt.alpha
        if self.cfg.auto_alpha:
            log_alpha, alpha_opt = base.apply_gradients(self.tx, log_alpha, alpha_opt, g, lrs[2])
        steps, delay = opt.critic_steps + 1, self.cfg.policy_delay
        moved = (actor, actor_opt, log_alpha, alpha_opt)
        kept = (p["actor"], opt.actor, p["log_alpha"], opt.alpha)
        actor, actor_opt, log_alpha, alpha_opt = when_due(steps, delay, moved, kept)
        params = {"actor": actor, "critic": critic, "log_alpha": log_alpha}
        lrn = (params, target, CrossQOpt(actor_opt, critic_opt, alpha_opt, steps))
        values = (c_loss, a_loss, alpha, al_loss, entropy, q_mean, c_norm, a_norm)
        return lrn, td, dict(zip(METRICS, values, strict=True))


register("CrossQ", CrossQConfig, CrossQ, hyper_sections=("agent.net", "agent.memory"))

__all__ = ["CrossQ", "CrossQConfig", "CrossQOpt"]
