"""SARSA: on-policy TD control with a Q network, one session, pure and jittable.

One update collects a rollout of ``time_horizon`` steps in ``num_envs`` envs with the
exploration policy (``epsilon_greedy`` with epsilon, or ``boltzmann`` with temperature
``explore_var``, a schedule over the session's frames), builds targets once with the
rollout's parameters, and runs ``training_epoch`` passes of ``minibatch_count`` SGD steps
over the shuffled ``[T*N]`` batch:

    y_t = r_t + gamma * (1 - x_t) * Q(s'_t, a'_t)
    a'_t = a_{t+1} (the next action actually taken in that env)   if t < T-1 and not d_t
           a ~ explore(Q(s'_t, .))                                  otherwise
    L   = mean(huber(Q(s_t, a_t) - y_t))      (or 0.5 * mean((Q(s_t, a_t) - y_t)^2))

``x_t`` is termination and ``d_t`` episode end: after a truncation ``s'_t`` is the
pre-reset final observation, whose next action was never taken, so it is sampled from the
exploration policy (as at the rollout's last step) in one batched forward pass over
``next_obs``. With ``target_update: hard | polyak`` the bootstrap uses a target network,
``y_t = r_t + gamma * (1 - x_t) * Q_target(s'_t, a'_t)`` (``a'_t`` chosen as above, with the
online network); ``hard`` copies ``theta' <- theta`` after every ``target_update_frequency``
frames (rounded to whole updates, >= 1), ``polyak`` moves
``theta' <- tau * theta + (1 - tau) * theta'`` after every update. ``none`` (the default)
bootstraps from the online parameters of the rollout; ``target_params`` then tracks
``params``. The state always holds ``target_params``, so its structure never changes.
Exploration:

    epsilon_greedy: a = uniform action with probability eps, else argmax_a Q(s, a)
    boltzmann:      a ~ softmax(Q(s, .) / temperature)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxlab.algorithms.base import minibatch_epochs
from jaxlab.algorithms.registry import register
from jaxlab.algorithms.skeleton import Algorithm, AlgorithmConfig, frames_done
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.envs import Env, VecEnvState
from jaxlab.networks import QNetwork
from jaxlab.rl.exploration import boltzmann, epsilon_greedy, greedy
from jaxlab.rl.ops import pick
from jaxlab.rl.rollout import Normalizers, collect, episode_metrics
from jaxlab.rl.schedules import ScheduleHyper, ScheduleSpec
from jaxlab.rl.targets import update_target
from jaxlab.rl.td import bootstrap

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec


def default_explore() -> ScheduleSpec:
    return ScheduleSpec("linear_decay", 1.0, 0.01, 0, 100_000)


@dataclass(frozen=True)
class SarsaConfig(AlgorithmConfig):
    """``agent.algorithm`` for SARSA. Sizes are static; the rest are tunable leaves."""

    name: Literal["SARSA"] = "SARSA"
    gamma: float = tunable(0.99)
    explore: Literal["epsilon_greedy", "boltzmann"] = "epsilon_greedy"
    explore_var: ScheduleSpec = tunable(default_factory=default_explore)
    loss: Literal["huber", "mse"] = "huber"
    target_update: Literal["none", "hard", "polyak"] = "none"
    target_update_frequency: int = 1_000  # frames between hard copies
    tau: float = tunable(0.005)
    time_horizon: int = 16
    training_epoch: int = 1
    minibatch_count: int = 1

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "tau", 0.0, 1.0)
        require_positive(
            self, path, "time_horizon", "training_epoch", "minibatch_count",
            "target_update_frequency",
        )  # fmt: skip
        ev = self.explore_var
        lo, hi = min(ev.start_val, ev.end_val), max(ev.start_val, ev.end_val)
        if self.explore == "epsilon_greedy" and not (lo >= 0.0 and hi <= 1.0):
            raise SpecError(f"{path}.explore_var", "epsilon start_val/end_val must lie in [0, 1]")
        if self.explore == "boltzmann" and lo <= 0.0:
            raise SpecError(f"{path}.explore_var", "temperature start_val/end_val must be > 0")

    MINIBATCH_FIELD = "minibatch_count"
    DISCRETE_ONLY = True

    def grad_steps_per_update(self) -> int:
        return self.training_epoch * self.minibatch_count

    def target_every(self, spec: Spec) -> int:
        """Updates between hard target copies (``target_update_frequency`` frames, >= 1)."""
        return max(1, round(self.target_update_frequency / self.frames_per_update(spec)))

    def shrink(self) -> SarsaConfig:
        return dataclasses.replace(
            self,
            time_horizon=min(self.time_horizon, 4 * self.minibatch_count),
            training_epoch=min(self.training_epoch, 2),
            target_update_frequency=min(self.target_update_frequency, 8),
        )


@struct.dataclass
class SarsaHyper:
    """Tunable numbers, float32 scalars (``[S]`` once vmapped over sessions)."""

    lr: jax.Array
    lr_end: jax.Array
    gamma: jax.Array
    tau: jax.Array
    explore_var: ScheduleHyper
    max_grad_norm: jax.Array


@struct.dataclass
class SarsaState:
    params: Any
    target_params: Any  # == params unless target_update is hard/polyak
    opt_state: Any
    env: VecEnvState
    norm: Normalizers
    hyper: SarsaHyper
    key: jax.Array
    update_step: jax.Array  # int32, updates done


class Sarsa(Algorithm):
    """SARSA for one session on a discrete-action env; see the module docstring."""

    def __init__(self, spec: Spec, env: Env | None = None) -> None:
        super().__init__(spec, env)
        net = spec.agent.net
        self.net = QNetwork(self.env.action_spec.dim, self.torso(), net.dueling)
        self.target_every = self.cfg.target_every(spec)

    def hyper(self) -> SarsaHyper:
        c, f = self.cfg, jnp.float32
        return SarsaHyper(
            **self.net_hyper(), gamma=f(c.gamma), tau=f(c.tau), explore_var=c.explore_var.hyper()
        )

    def init(self, key: jax.Array) -> SarsaState:
        k_net, k_env, k_state = jax.random.split(key, 3)
        params = self.net.init(k_net, jnp.zeros((1, self.env.observation_spec.dim), jnp.float32))
        return SarsaState(
            params=params,
            target_params=params,
            opt_state=self.tx.init(params),
            env=self.env.reset(k_env),
            norm=Normalizers.create(self.env.observation_spec.dim, self.env.num_envs),
            hyper=self.hyper(),
            key=k_state,
            update_step=jnp.int32(0),
        )

    def explore_var(self, state: SarsaState) -> jax.Array:
        """Epsilon or temperature at the session's current frame (a scalar)."""
        frame = frames_done(state.update_step, self.frames_per_update, self.num_updates)
        return self.cfg.explore_var.value(state.hyper.explore_var, frame)

    def explore(self, q: jax.Array, var: jax.Array, key: jax.Array) -> jax.Array:
        """Exploratory actions ``[...]`` int32 from ``Q [..., A]`` (see the module docstring)."""
        if self.cfg.explore == "boltzmann":
            return boltzmann(key, q, var)
        return epsilon_greedy(key, q, var, self.valid_actions(q))

    def policy(
        self, state: SarsaState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Greedy actions for raw ``obs`` ``[N, obs_dim]``, or exploratory ones at the current
        epsilon/temperature."""
        q = self.net.apply(state.params, state.norm.observe(obs, self.spec.env))
        return greedy(q) if deterministic else self.explore(q, self.explore_var(state), key)

    def value(self, state: SarsaState, obs: jax.Array) -> jax.Array:
        """The greedy value ``max_a Q(s, a)`` for raw observations ``[N, obs_dim]`` -> ``[N]``."""
        return self.net.apply(state.params, state.norm.observe(obs, self.spec.env)).max(axis=-1)

    def loss(
        self, params: Any, obs: jax.Array, action: jax.Array, target: jax.Array
    ) -> tuple[jax.Array, dict]:
        q_sa = pick(self.net.apply(params, obs), action)
        err = q_sa - target
        if self.cfg.loss == "huber":
            loss = optax.huber_loss(err, delta=1.0).mean()
        else:
            loss = 0.5 * (err**2).mean()
        return loss, {"loss": loss, "q_mean": q_sa.mean()}

    def update(self, state: SarsaState) -> tuple[SarsaState, dict[str, jax.Array]]:
        c, hp = self.cfg, state.hyper
        key, k_roll, k_next, k_learn = jax.random.split(state.key, 4)
        lr = self.learning_rate(hp, state.update_step)
        var = self.explore_var(state)

        def act(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
            return self.explore(self.net.apply(state.params, obs), var, k), {}

        env, norm, ro = collect(
            self.env, state.env, state.norm, act, k_roll, c.time_horizon, self.spec.env, hp.gamma
        )
        # a'_t: the action taken next in the env when its episode continues inside the
        # rollout, else sampled at s'_t (truncation, termination - masked anyway - and t = T-1).
        with jax.named_scope("targets"):  # a phase of the profile (jaxlab.tools.profiling)
            q_next = self.net.apply(state.params, ro.next_obs)  # [T, N, A]
            sampled = self.explore(q_next, var, k_next)
            taken_next = jnp.concatenate([ro.action[1:], sampled[-1:]], axis=0)
            within = jnp.arange(c.time_horizon)[:, None] < c.time_horizon - 1
            next_action = jnp.where(within & ~ro.done, taken_next, sampled)
            if c.target_update != "none":
                q_next = self.net.apply(state.target_params, ro.next_obs)
            target = bootstrap(ro.reward, ro.terminated, hp.gamma, pick(q_next, next_action))

        size = self.frames_per_update
        flat = lambda x: x.reshape((size,) + x.shape[2:])  # noqa: E731
        data = (flat(ro.obs), flat(ro.action), flat(target))
        params, opt_state, aux = minibatch_epochs(
            self.tx, lambda p, mb: self.loss(p, *mb), state.params, state.opt_state, data,
            k_learn, c.training_epoch, c.minibatch_count, lr, hp.max_grad_norm,
        )  # fmt: skip
        var_name = "epsilon" if c.explore == "epsilon_greedy" else "temperature"
        metrics = {**aux, var_name: var, "lr": lr, **episode_metrics(ro)}
        step = state.update_step + 1
        state = state.replace(
            params=params, opt_state=opt_state, env=env, norm=norm, key=key, update_step=step,
            target_params=update_target(  # after update number ``step`` (1-based)
                c.target_update, params, state.target_params, tau=hp.tau, step=step,
                every=self.target_every,
            ),
        )  # fmt: skip
        return state, metrics


# Spec keys that only set SarsaHyper leaves; the schedule's name/window stay static.
register("SARSA", SarsaConfig, Sarsa)

__all__ = ["Sarsa", "SarsaConfig", "SarsaHyper", "SarsaState"]
