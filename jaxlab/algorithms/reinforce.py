"""REINFORCE: Monte-Carlo policy gradient (Williams, 1992), one session, pure and jittable.

One update collects a rollout of ``time_horizon`` steps in ``num_envs`` envs with the
policy, computes each step's reward-to-go within its episode
(:func:`jaxlab.rl.returns.discounted_returns`) and takes ``training_epoch`` full-batch
gradient steps on

    G_t   = sum_{k=t}^{end of episode} gamma^(k-t) r_k           (valid steps only)
    A_t   = G_t - mean_valid(G)          (return centring, when center_returns)
    A_t  /= std_valid(G) + 1e-8          (when normalize_returns)
    L     = -sum_t m_t log pi(a_t|s_t) A_t / sum_t m_t - entropy_coef(frame) * H_valid

where ``m_t = valid_t``: the step's episode ended (terminated or hit the time limit) at or
after ``t`` inside this rollout. Steps of episodes still running at the rollout's end have
no complete return and there is no critic to bootstrap them, so they are **dropped** from
the loss (not carried into the next rollout). Choose ``time_horizon`` well above the
typical episode length so most steps count; the ``valid_frac`` metric reports the share
used. A time-limit truncation ends the return like a termination.

The policy is an actor network only (no critic, so no ``value`` method): a categorical
head for discrete actions, a Gaussian with a state-independent ``log_std`` otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms.base import clipped_step
from jaxlab.algorithms.onpolicy import OnPolicy, OnPolicyState
from jaxlab.algorithms.registry import register
from jaxlab.algorithms.skeleton import AlgorithmConfig, frames_done
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.networks import Torso, TorsoDef
from jaxlab.networks.mlp import dense, mask_actions
from jaxlab.rl import losses
from jaxlab.rl.distributions import Categorical, DiagGaussian
from jaxlab.rl.returns import discounted_returns
from jaxlab.rl.rollout import episode_metrics
from jaxlab.rl.schedules import ScheduleHyper, ScheduleSpec, constant


@dataclass(frozen=True)
class ReinforceConfig(AlgorithmConfig):
    """``agent.algorithm`` for REINFORCE. Sizes are static; the rest are tunable leaves."""

    name: Literal["REINFORCE"] = "REINFORCE"
    gamma: float = tunable(0.99)
    entropy_coef: ScheduleSpec = tunable(default_factory=lambda: constant(0.01))
    time_horizon: int = 500
    training_epoch: int = 1
    center_returns: bool = True
    normalize_returns: bool = False

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_positive(self, path, "time_horizon", "training_epoch")
        ent = self.entropy_coef
        if min(ent.start_val, ent.end_val) < 0:
            raise SpecError(f"{path}.entropy_coef", "start_val and end_val must be >= 0")

    def grad_steps_per_update(self) -> int:
        return self.training_epoch

    def shrink(self) -> ReinforceConfig:
        return dataclasses.replace(
            self,
            time_horizon=min(self.time_horizon, 32),
            training_epoch=min(self.training_epoch, 2),
        )


class Actor(nn.Module):
    """``obs [..., D] ->`` a Categorical (discrete) or DiagGaussian (state-independent std)."""

    action_dim: int
    discrete: bool
    torso: TorsoDef = TorsoDef()

    @nn.compact
    def __call__(self, obs: jax.Array) -> Categorical | DiagGaussian:
        out = dense(self.action_dim, 0.01, self.torso.kernel_init)(Torso(self.torso)(obs))
        if self.discrete:
            return Categorical(mask_actions(out, obs, self.torso.mask_dim))
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return DiagGaussian(out, jnp.broadcast_to(log_std, out.shape))


@struct.dataclass
class ReinforceHyper:
    """Tunable numbers, float32 scalars (``[S]`` once vmapped over sessions)."""

    lr: jax.Array
    lr_end: jax.Array
    gamma: jax.Array
    entropy_coef: ScheduleHyper
    max_grad_norm: jax.Array


ReinforceState = OnPolicyState


class Reinforce(OnPolicy):
    """REINFORCE for one session; see the module docstring."""

    def make_net(self) -> Actor:
        actions = self.env.action_spec
        return Actor(actions.dim, actions.discrete, self.torso())

    def pi(self, params: Any, obs: jax.Array) -> Categorical | DiagGaussian:
        return self.net.apply(params, obs)

    def hyper(self) -> ReinforceHyper:
        c, f = self.cfg, jnp.float32
        return ReinforceHyper(
            **self.net_hyper(), gamma=f(c.gamma), entropy_coef=c.entropy_coef.hyper()
        )

    def loss(
        self, params: Any, obs: jax.Array, action: jax.Array, adv: jax.Array, mask: jax.Array,
        ent_coef: jax.Array,
    ) -> tuple[jax.Array, dict]:  # fmt: skip
        """Masked REINFORCE loss on flat ``[M]`` steps (``mask`` 1 for valid steps)."""
        pi = self.net.apply(params, obs)
        policy_loss = losses.reinforce_loss(pi.log_prob(action), adv, mask)
        entropy = losses.masked_mean(pi.entropy(), mask)
        return policy_loss - ent_coef * entropy, {"policy_loss": policy_loss, "entropy": entropy}

    def update(self, state: ReinforceState) -> tuple[ReinforceState, dict[str, jax.Array]]:
        c, hp = self.cfg, state.hyper
        key, k_roll = jax.random.split(state.key)
        lr = self.learning_rate(hp, state.update_step)
        frame = frames_done(state.update_step, self.frames_per_update, self.num_updates)
        ent_coef = c.entropy_coef.value(hp.entropy_coef, frame)

        def act(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
            return self.net.apply(state.params, obs).sample(k), {}

        state, ro = self.rollout(state, act, k_roll)
        with jax.named_scope("advantages"):  # a phase of the profile (jaxlab.tools.profiling)
            ret, valid = discounted_returns(ro.reward, ro.done, hp.gamma)
        mask = valid.astype(jnp.float32)
        count = jnp.maximum(mask.sum(), 1.0)
        mean = (ret * mask).sum() / count
        std = jnp.sqrt((((ret - mean) * mask) ** 2).sum() / count)
        adv = ret - mean if c.center_returns else ret
        if c.normalize_returns:
            adv = adv / (std + 1e-8)
        size = self.frames_per_update
        flat = lambda x: x.reshape((size,) + x.shape[2:])  # noqa: E731
        obs, action, adv, mask = flat(ro.obs), flat(ro.action), flat(adv), flat(mask)
        loss = partial(self.loss, obs=obs, action=action, adv=adv, mask=mask, ent_coef=ent_coef)

        def step(carry: tuple, _: None) -> tuple:
            params, opt_state, aux = clipped_step(self.tx, loss, *carry, lr, hp.max_grad_norm)
            return (params, opt_state), aux

        with jax.named_scope("learn"):
            (params, opt_state), aux = jax.lax.scan(
                step, (state.params, state.opt_state), None, length=c.training_epoch
            )
        metrics = {
            **jax.tree.map(jnp.mean, aux),
            "return_mean": mean,
            "valid_frac": mask.mean(),
            "entropy_coef": ent_coef,
            "lr": lr,
            **episode_metrics(ro),
        }
        state = state.replace(
            params=params, opt_state=opt_state, key=key, update_step=state.update_step + 1,
        )  # fmt: skip
        return state, metrics


register("REINFORCE", ReinforceConfig, Reinforce)

__all__ = ["Actor", "Reinforce", "ReinforceConfig", "ReinforceHyper", "ReinforceState"]
