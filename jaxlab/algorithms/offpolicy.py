"""The replay actor-critic skeleton shared by SAC and TD3 (DDPG).

One update collects ``train_freq`` steps in ``num_envs`` envs with the behaviour policy
(uniform random actions while the replay holds fewer than ``learning_starts``
transitions), adds them to the replay, then, once ``size >= learning_starts``, takes
``gradient_steps`` minibatch steps in a scan. Each step samples a minibatch (prioritized
replay: ``P(i) ~ p_i^alpha``, importance weights with ``beta`` annealed linearly from
``memory.beta`` to 1 over the run), runs the algorithm's :meth:`grad_step` on it and
writes the new priorities back.

The state (:class:`ReplayACState`) holds the online ``params``, their ``target`` copies,
the optimizer states ``opt``, the replay and the env. An algorithm adds its networks, its
``hyper()`` leaves (with ``per_alpha``, ``per_beta``, ``per_epsilon`` and ``lr_end_frac``,
the linear_decay end factor ``end_val / optim.lr``), its learning rates (:meth:`rates`),
its behaviour policy (:meth:`behaviour`) and its :meth:`grad_step`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms import base
from jaxlab.algorithms.skeleton import INT32_MAX, Algorithm, AlgorithmConfig, check_replay
from jaxlab.envs import VecEnvState
from jaxlab.memory import Replay
from jaxlab.rl.branching import branch
from jaxlab.rl.rollout import Normalizers, collect, episode_metrics, replay_items

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec


class ReplayACConfig(AlgorithmConfig):
    """The config rules of a replay actor-critic (its dataclass declares ``train_freq``,
    ``gradient_steps`` and ``learning_starts``): replay memories, ``train_freq`` steps
    per env per update, learning from within the run, and a shrunk form of at most 2 env
    steps and 2 gradient steps that learns from the first update."""

    MEMORIES = ("Replay", "PrioritizedReplay")
    STEP_FIELD = "train_freq"

    def grad_steps_per_update(self) -> int:
        return self.gradient_steps  # type: ignore[attr-defined]

    def check_spec(self, spec: Spec) -> None:
        check_replay(spec, self.learning_starts)  # type: ignore[attr-defined]

    def shrink(self) -> ReplayACConfig:
        freq = min(self.train_freq, 2)  # type: ignore[attr-defined]
        steps, starts = min(self.gradient_steps, 2), min(self.learning_starts, freq)  # type: ignore[attr-defined]
        return dataclasses.replace(
            self, train_freq=freq, gradient_steps=steps, learning_starts=starts
        )


@struct.dataclass
class ReplayACState:
    params: Any  # {"actor", "critic" (an ensemble, leading axis K), ...}
    target: Any  # target copies of (some of) the params
    opt: Any  # the optimizer states (one per trained part)
    memory: Replay
    env: VecEnvState
    norm: Normalizers
    hyper: Any  # the algorithm's tunable numbers (float32 leaves)
    key: jax.Array
    update_step: jax.Array  # int32


Learner = tuple[Any, Any, Any]  # (params, target, opt): what a gradient step changes


def when_due(steps: jax.Array, delay: int, new: Any, old: Any) -> Any:
    """``new`` where critic step ``steps`` is a multiple of ``delay`` (a delayed policy
    update is due), else ``old``, leaf by leaf. Vmapped over sessions a ``cond`` would
    compute both sides anyway, so callers compute ``new`` every step (its losses are
    logged at every step) and keep it when due."""
    due = steps % delay == 0
    return jax.tree.map(lambda n, o: jnp.where(due, n, o), new, old)


def next_step(steps: jax.Array, period: int, most: int) -> jax.Array:
    """``steps + 1`` for an int32 counter read only modulo ``period`` (:func:`when_due`)
    that a run takes to at most ``most`` (static), never wrapped.

    When ``most`` fits in int32 it is ``steps + 1``, the graph (and bits) of before.
    Otherwise (e.g. ``gradient_steps`` per update past one frame per update, at ~2**31
    frames) the count drops by ``span = (INT32_MAX // period) * period``, a multiple of
    ``period``, on reaching ``INT32_MAX``: ``steps % period`` keeps its cadence, and below
    ``INT32_MAX`` it is still exactly ``steps + 1``.
    """
    if most <= INT32_MAX:
        return steps + 1
    span = (INT32_MAX // period) * period
    return jnp.where(steps < INT32_MAX, steps, steps - span) + 1


class ReplayActorCritic(Algorithm):
    """Base of the replay actor-critics; see the module docstring. ``METRICS``: the names
    of the scalars :meth:`grad_step` returns (0 before learning starts)."""

    METRICS: ClassVar[tuple[str, ...]] = ()
    STEP_KEYS: ClassVar[int] = 1  # the PRNG keys a gradient step draws from, sampling aside

    def bounds(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The action box's ``low``, ``high`` as static floats (for the actor's fields)."""
        spec = self.env.action_spec
        return tuple(map(float, spec.low.reshape(-1))), tuple(map(float, spec.high.reshape(-1)))

    def box(self) -> tuple[jax.Array, jax.Array]:
        """The action box's ``low``, ``high`` ``[A]`` (continuous actions)."""
        spec = self.env.action_spec
        return jnp.asarray(spec.low.reshape(-1)), jnp.asarray(spec.high.reshape(-1))

    def random_actions(self, key: jax.Array, n: int) -> jax.Array:
        """Uniform actions ``[n]`` (discrete) or ``[n, A]`` in the box."""
        if self.env.action_spec.discrete:
            return jax.random.randint(key, (n,), 0, self.env.action_spec.dim)
        shape = (n, self.env.action_spec.dim)
        low, high = (jnp.broadcast_to(x, shape) for x in self.box())
        return low + (high - low) * jax.random.uniform(key, shape)

    def critic_steps_most(self) -> int:
        """The most gradient steps a run takes (``num_updates * gradient_steps``), which
        bounds the int32 critic-step counters (:func:`next_step`)."""
        return self.num_updates * self.cfg.gradient_steps

    def decay(self, hp: Any, step: jax.Array) -> jax.Array:
        """The learning rates' factor at update ``step``: 1, or linear to ``lr_end_frac``."""
        schedule = self.spec.agent.net.lr_schedule.name
        return base.learning_rate(schedule, 1.0, hp.lr_end_frac, step, self.num_updates)

    def rates(self, hp: Any, step: jax.Array) -> tuple[jax.Array, ...]:
        """The learning rates at update ``step``, critic's first (logged as ``lr``)."""
        raise NotImplementedError

    def behaviour(self, state: ReplayACState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """The exploring actions for (normalised) ``obs [N, D]`` once learning started."""
        raise NotImplementedError

    def grad_step(self, lrn: Learner, b: dict, w: jax.Array, keys: jax.Array, hp: Any, lrs):
        """One step on minibatch ``b`` (weights ``w [B]``, ``STEP_KEYS`` PRNG ``keys``) ->
        (learner, ``|TD| [B]`` for the new priorities, metrics)."""
        raise NotImplementedError

    def idle_metrics(self, lrn: Learner, hp: Any) -> dict[str, jax.Array]:
        """The metrics before ``learning_starts``: every loss reads 0."""
        return {k: jnp.float32(0.0) for k in self.METRICS}

    def _step(self, carry: tuple, key: jax.Array, memory: Any, hp: Any, lrs, beta):
        lrn, prio = carry
        keys = jax.random.split(key, 1 + self.STEP_KEYS)
        mem = memory.with_priorities(prio)
        idx, b, w = mem.sample(keys[0], self.spec.agent.memory.batch_size, hp.per_alpha, beta)
        lrn, td, metrics = self.grad_step(lrn, b, w, keys[1:], hp, lrs)
        prio = mem.update(idx, td, hp.per_epsilon, hp.per_alpha).priorities
        return (lrn, prio), metrics

    def _learn(self, lrn: Learner, prio: jax.Array, memory: Any, key, hp: Any, lrs, beta):
        """``gradient_steps`` steps in a scan; metrics averaged over them."""
        step = functools.partial(self._step, memory=memory, hp=hp, lrs=lrs, beta=beta)
        keys = jax.random.split(key, self.cfg.gradient_steps)
        (lrn, prio), metrics = jax.lax.scan(step, (lrn, prio), keys)
        return lrn, prio, jax.tree.map(jnp.mean, metrics)

    def _idle(self, lrn: Learner, prio: jax.Array, memory: Any, key, hp: Any, lrs, beta):
        return lrn, prio, self.idle_metrics(lrn, hp)

    def update(self, state: ReplayACState) -> tuple[ReplayACState, dict[str, jax.Array]]:
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        hp, c, step = state.hyper, self.cfg, state.update_step
        lrs = self.rates(hp, step)
        explore = state.memory.size < c.learning_starts

        def act(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, dict]:
            k_pi, k_rand = jax.random.split(k)
            action = self.behaviour(state, obs, k_pi)
            return jnp.where(explore, self.random_actions(k_rand, obs.shape[0]), action), {}

        env, norm, ro = collect(
            self.env, state.env, state.norm, act, k_roll, c.train_freq, self.spec.env, hp.gamma
        )
        with jax.named_scope("memory"):  # a phase of the profile (jaxlab.tools.profiling)
            memory = state.memory.add(replay_items(ro), hp.per_alpha)
        progress = jnp.minimum(step.astype(jnp.float32) / self.num_updates, 1.0)
        beta = hp.per_beta + (1.0 - hp.per_beta) * progress
        prio = memory.priorities
        with jax.named_scope("learn"):
            (params, target, opt), prio, metrics = branch(
                memory.size >= c.learning_starts, self._learn, self._idle,
                (state.params, state.target, state.opt), prio, memory, k_learn, hp, lrs, beta,
            )  # fmt: skip
        memory = memory.with_priorities(prio)
        state = ReplayACState(params, target, opt, memory, env, norm, hp, key, step + 1)
        return state, {**metrics, "lr": lrs[0], **episode_metrics(ro)}


__all__ = [
    "Learner",
    "ReplayACConfig",
    "ReplayACState",
    "ReplayActorCritic",
    "next_step",
    "when_due",
]
