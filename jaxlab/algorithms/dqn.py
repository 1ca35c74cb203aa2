"""Deep Q-Networks: DQN, Double DQN, dueling heads and prioritized replay, one session.

One update collects ``train_freq`` steps in each of ``num_envs`` envs with an
epsilon-greedy policy (``epsilon = explore_var`` at the session's frame count), writes the
``train_freq * num_envs`` transitions into the replay memory held in the state, and, once
the memory holds ``learning_starts`` transitions, takes ``gradient_steps`` minibatch steps:

    y     = r + gamma * (1 - terminated) * Q_targ(s', a*)
    a*    = argmax_a Q_targ(s', a)            (DQN)
          = argmax_a Q(s', a)                 (Double DQN, ``double: true``)
    delta = Q(s, a) - y
    L     = mean_i w_i * huber(delta_i)       (or 0.5 * delta^2 with ``loss: mse``)

``w_i = 1`` for uniform replay (``memory.name: Replay``); with ``PrioritizedReplay`` the
slots are drawn with ``P(i) ~ p_i^alpha``, ``w_i`` are the importance weights with ``beta``
annealed linearly from ``memory.beta`` to 1 over the run (frames), and each gradient step
sets ``p_i = |delta_i| + memory.epsilon``. Episodes cut by a time limit bootstrap: only
``terminated`` (not ``done``) zeroes the target's tail, and ``s'`` is the pre-reset
successor. The target network is a hard copy every ``target_update_frequency`` frames
(rounded to whole updates) or, with ``target_update: polyak``, moves
``theta' <- tau * theta + (1 - tau) * theta'`` every update. ``agent.net.dueling`` picks
the dueling head. Stored observations are normalised when ``env.normalize_obs`` is on with
the statistics at collection time (usually off for DQN).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxlab.algorithms.base import apply_gradients, clip_by_global_norm
from jaxlab.algorithms.registry import register
from jaxlab.algorithms.skeleton import Algorithm, AlgorithmConfig, check_replay
from jaxlab.config.parse import SpecError, require_positive, require_range
from jaxlab.config.tunable import tunable
from jaxlab.envs import Env, VecEnvState
from jaxlab.memory import Replay
from jaxlab.networks import QNetwork
from jaxlab.rl.branching import branch
from jaxlab.rl.exploration import epsilon_greedy, greedy
from jaxlab.rl.rollout import Normalizers, collect, episode_metrics, replay_items
from jaxlab.rl.schedules import ScheduleHyper, ScheduleSpec
from jaxlab.rl.targets import update_target
from jaxlab.rl.td import q_learning_target

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec


def default_explore() -> ScheduleSpec:
    return ScheduleSpec("linear_decay", 1.0, 0.05, 0, 50_000)


@dataclass(frozen=True)
class DQNConfig(AlgorithmConfig):
    """``agent.algorithm`` for DQN / Double DQN. ``learning_starts`` and
    ``target_update_frequency`` are in frames (transitions per session)."""

    name: Literal["DQN"] = "DQN"
    double: bool = False
    gamma: float = tunable(0.99)
    train_freq: int = 1  # env steps per env per update
    gradient_steps: int = 1  # minibatch steps per update
    learning_starts: int = 1_000
    target_update: Literal["hard", "polyak"] = "hard"
    target_update_frequency: int = 1_000
    tau: float = tunable(0.005)
    loss: Literal["huber", "mse"] = "huber"
    explore_var: ScheduleSpec = tunable(default_factory=default_explore)

    def validate(self, path: str) -> None:
        require_range(self, path, "gamma", 0.0, 1.0)
        require_range(self, path, "tau", 0.0, 1.0)
        require_positive(self, path, "train_freq", "gradient_steps", "target_update_frequency")
        if self.learning_starts < 0:
            raise SpecError(f"{path}.learning_starts", f"must be >= 0, got {self.learning_starts}")
        ev = self.explore_var
        for name in ("start_val", "end_val"):
            if not 0.0 <= getattr(ev, name) <= 1.0:
                raise SpecError(f"{path}.explore_var.{name}", "epsilon must lie in [0, 1]")

    MEMORIES = ("Replay", "PrioritizedReplay")
    STEP_FIELD = "train_freq"
    DISCRETE_ONLY = True

    def grad_steps_per_update(self) -> int:
        return self.gradient_steps

    def target_every(self, spec: Spec) -> int:
        """Updates between hard target copies (``target_update_frequency`` frames, >= 1)."""
        return max(1, round(self.target_update_frequency / self.frames_per_update(spec)))

    def check_spec(self, spec: Spec) -> None:
        check_replay(spec, self.learning_starts)

    def shrink(self) -> DQNConfig:
        return dataclasses.replace(
            self,
            train_freq=min(self.train_freq, 2),
            gradient_steps=min(self.gradient_steps, 2),
            learning_starts=0,
            target_update_frequency=min(self.target_update_frequency, 8),
        )


@struct.dataclass
class DQNHyper:
    """Tunable numbers, float32 scalars (``[S]`` once vmapped over sessions)."""

    lr: jax.Array
    lr_end: jax.Array
    gamma: jax.Array
    tau: jax.Array
    max_grad_norm: jax.Array
    epsilon: ScheduleHyper  # explore_var start/end
    alpha: jax.Array  # PER priority exponent
    beta: jax.Array  # PER importance exponent at frame 0 (annealed to 1)
    priority_eps: jax.Array  # PER p_i = |delta_i| + priority_eps


@struct.dataclass
class DQNState:
    params: Any
    target_params: Any
    opt_state: Any
    memory: Replay
    env: VecEnvState
    norm: Normalizers
    hyper: DQNHyper
    key: jax.Array
    update_step: jax.Array  # int32, updates done


class DQN(Algorithm):
    """DQN / Double DQN for one session; see the module docstring for the loss."""

    def __init__(self, spec: Spec, env: Env | None = None) -> None:
        super().__init__(spec, env)
        net = spec.agent.net
        self.net = QNetwork(self.env.action_spec.dim, self.torso(), net.dueling)
        self.prioritized = spec.agent.memory.name == "PrioritizedReplay"
        self.total_frames = max(1, self.num_updates * self.frames_per_update)
        self.target_every = self.cfg.target_every(spec)

    def hyper(self) -> DQNHyper:
        c, mem, f = self.cfg, self.spec.agent.memory, jnp.float32
        return DQNHyper(
            **self.net_hyper(), gamma=f(c.gamma), tau=f(c.tau), epsilon=c.explore_var.hyper(),
            alpha=f(mem.alpha), beta=f(mem.beta), priority_eps=f(mem.epsilon),
        )  # fmt: skip

    def init(self, key: jax.Array) -> DQNState:
        k_net, k_env, k_state = jax.random.split(key, 3)
        obs_dim = self.env.observation_spec.dim
        params = self.net.init(k_net, jnp.zeros((1, obs_dim), jnp.float32))
        return DQNState(
            params=params,
            target_params=params,
            opt_state=self.tx.init(params),
            memory=self.new_replay(),
            env=self.env.reset(k_env),
            norm=Normalizers.create(obs_dim, self.env.num_envs),
            hyper=self.hyper(),
            key=k_state,
            update_step=jnp.int32(0),
        )

    # ------------------------------------------------------------------ acting

    def epsilon(self, state: DQNState) -> jax.Array:
        return self.cfg.explore_var.value(state.hyper.epsilon, self.frame(state))

    def _act(self, params: Any, obs: jax.Array, key: jax.Array, eps: jax.Array) -> jax.Array:
        """Epsilon-greedy actions ``[N]`` for normalised ``obs [N, D]``."""
        q = self.net.apply(params, obs)
        return epsilon_greedy(key, q, eps, self.valid_actions(q))

    def policy(
        self, state: DQNState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Actions for raw ``obs [N, obs_dim]``: greedy, or epsilon-greedy at the current epsilon."""
        obs = state.norm.observe(obs, self.spec.env)
        if deterministic:
            return greedy(self.net.apply(state.params, obs))
        return self._act(state.params, obs, key, self.epsilon(state))

    def value(self, state: DQNState, obs: jax.Array) -> jax.Array:
        """``max_a Q(s, a)`` of the online network for raw ``obs [N, obs_dim]`` -> ``[N]``."""
        obs = state.norm.observe(obs, self.spec.env)
        return self.net.apply(state.params, obs).max(axis=-1)

    # ------------------------------------------------------------------ learning

    def loss(
        self, params: Any, target_params: Any, hp: DQNHyper, mb: dict, weight: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Weighted TD loss on a minibatch ``mb`` (leaves ``[B, ...]``), ``weight [B]``."""
        q = self.net.apply(params, mb["obs"])  # [B, A]
        q_sa = jnp.take_along_axis(q, mb["action"][:, None], axis=-1)[:, 0]
        q_next_target = self.net.apply(target_params, mb["next_obs"])
        q_next_online = self.net.apply(params, mb["next_obs"]) if self.cfg.double else q_next_target
        y = q_learning_target(
            q_next_target, q_next_online, mb["reward"], mb["terminated"], hp.gamma, self.cfg.double
        )
        td = q_sa - jax.lax.stop_gradient(y)
        huber = self.cfg.loss == "huber"
        per_item = optax.huber_loss(td, delta=1.0) if huber else 0.5 * td**2
        total = (weight * per_item).mean()
        aux = {"loss": total, "q_mean": q_sa.mean(), "td_abs_mean": jnp.abs(td).mean(), "td": td}
        return total, aux

    def _learn(self, state: DQNState, key: jax.Array, lr: jax.Array) -> tuple[DQNState, dict]:
        """``gradient_steps`` minibatch steps on the replay memory."""
        hp, mem_spec = state.hyper, self.spec.agent.memory
        batch = mem_spec.batch_size
        beta = hp.beta + (1.0 - hp.beta) * jnp.minimum(self.frame(state) / self.total_frames, 1.0)
        grad_fn = jax.grad(self.loss, has_aux=True)

        def step(carry: tuple, k: jax.Array) -> tuple:
            params, opt_state, memory = carry
            idx, mb, weight = memory.sample(k, batch, hp.alpha, beta)
            grads, aux = grad_fn(params, state.target_params, hp, mb, weight)
            grads, grad_norm = clip_by_global_norm(grads, hp.max_grad_norm)
            params, opt_state = apply_gradients(self.tx, params, opt_state, grads, lr)
            memory = memory.update(idx, aux.pop("td"), hp.priority_eps, hp.alpha)
            if self.prioritized:  # uniform replay's weights are all 1
                aux["weight_mean"] = weight.mean()
            aux["grad_norm"] = grad_norm
            return (params, opt_state, memory), aux

        carry = (state.params, state.opt_state, state.memory)
        keys = jax.random.split(key, self.cfg.gradient_steps)
        (params, opt_state, memory), aux = jax.lax.scan(step, carry, keys)
        metrics = jax.tree.map(jnp.mean, aux)
        if self.prioritized:
            metrics["beta"] = beta
        return state.replace(params=params, opt_state=opt_state, memory=memory), metrics

    def _update_target(self, state: DQNState) -> Any:
        """Polyak every update, or a hard copy when ``update_step % target_every == 0``."""
        return update_target(
            self.cfg.target_update, state.params, state.target_params,
            tau=state.hyper.tau, step=state.update_step, every=self.target_every,
        )  # fmt: skip

    def update(self, state: DQNState) -> tuple[DQNState, dict[str, jax.Array]]:
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        hp = state.hyper
        lr = self.learning_rate(hp, state.update_step)
        eps = self.epsilon(state)

        def act(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, dict]:
            return self._act(state.params, obs, k, eps), {}

        env, norm, ro = collect(
            self.env, state.env, state.norm, act, k_roll, self.cfg.train_freq, self.spec.env,
            hp.gamma,
        )  # fmt: skip
        with jax.named_scope("memory"):  # a phase of the profile (jaxlab.tools.profiling)
            memory = state.memory.add(replay_items(ro), hp.alpha)
            state = state.replace(env=env, norm=norm, memory=memory)

        def skip(s: DQNState, k: jax.Array, lr: jax.Array) -> tuple[DQNState, dict]:
            shapes = jax.eval_shape(self._learn, s, k, lr)[1]
            return s, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), shapes)

        ready = state.memory.size >= self.cfg.learning_starts
        with jax.named_scope("learn"):
            state, metrics = branch(ready, self._learn, skip, state, k_learn, lr)
        state = state.replace(
            update_step=state.update_step + 1, key=key, target_params=self._update_target(state)
        )
        return state, {**metrics, "epsilon": eps, "lr": lr, **episode_metrics(ro)}


# Spec keys that only set DQNHyper leaves (DQN.hyper); sizes and schedule windows stay static.
register("DQN", DQNConfig, DQN, hyper_sections=("agent.net", "agent.memory"))

__all__ = ["DQN", "DQNConfig", "DQNHyper", "DQNState"]
