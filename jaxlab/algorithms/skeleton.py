"""What every algorithm shares: its config's spec rules and the agent's common parts.

:class:`AlgorithmConfig` is the base of every ``agent.algorithm`` config. A subclass
states its rules as class attributes and the shared :meth:`~AlgorithmConfig.validate_spec`
applies them, with one wording for every algorithm:

* ``MEMORIES``: the ``agent.memory.name`` values it can use;
* ``STEP_FIELD``: the field giving env steps per env per update, so one update consumes
  ``num_envs * STEP_FIELD`` frames (``env.max_frame`` must hold at least one update);
* ``MINIBATCH_FIELD``: the field the update's batch must divide into, if any;
* ``DISCRETE_ONLY`` / ``CONTINUOUS_ONLY``: the env must have discrete / continuous actions;
* ``RECURRENT``: it accepts a recurrent network (``agent.net.recurrent``);
* replay algorithms also get the replay rules (:func:`check_replay`).

:class:`Algorithm` is the base of every agent: the spec, the config, the env (built by
:func:`jaxlab.envs.make_env`, or given: the probe tests pass one with traced params), the
optimizer, the update count, and the tunable numbers of ``agent.net`` (:meth:`net_hyper`)
with the learning rate they schedule (:meth:`learning_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp

from jaxlab.algorithms.base import learning_rate, make_optimizer
from jaxlab.algorithms.registry import get_algorithm, registered
from jaxlab.config.parse import SpecError
from jaxlab.envs import Env, make_env
from jaxlab.memory import Replay, make_replay
from jaxlab.networks import TorsoDef, allowed

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    from jaxlab.spec.schema import Spec

# The largest int32: update, frame and chunk counters are int32 in jitted code (no x64).
INT32_MAX = 2**31 - 1


def frames_done(update_step: jax.Array, frames_per_update: int, num_updates: int) -> jax.Array:
    """Frames ``update_step * frames_per_update`` for schedules, never wrapped.

    A run's ``update_step`` is at most ``num_updates``. When ``num_updates *
    frames_per_update`` fits in int32 (every spec within ``env.max_frame``'s cap), no
    reachable product wraps and this is the int32 product itself: the very graph, and so
    the very bits, the algorithms computed before. Past that (a run longer than 2**31 - 1
    frames) it is a float32 scalar: the int32 product rounded once while it fits, else
    ``float32(update_step) * frames_per_update`` (within a few ulp of the true count).
    The choice is static (Python ints), so a normal run's program does not change.
    """
    if num_updates * frames_per_update <= INT32_MAX:
        return update_step * frames_per_update
    fits = update_step <= INT32_MAX // frames_per_update
    exact = (update_step * frames_per_update).astype(jnp.float32)  # wraps only where unused
    return jnp.where(fits, exact, update_step.astype(jnp.float32) * frames_per_update)


@dataclass(frozen=True)
class AlgorithmConfig:
    """Base of the ``agent.algorithm`` configs; see the module docstring."""

    MEMORIES: ClassVar[tuple[str, ...]] = ("OnPolicyBatch",)
    STEP_FIELD: ClassVar[str] = "time_horizon"
    MINIBATCH_FIELD: ClassVar[str | None] = None
    DISCRETE_ONLY: ClassVar[bool] = False
    CONTINUOUS_ONLY: ClassVar[bool] = False
    RECURRENT: ClassVar[bool] = False

    def frames_per_update(self, spec: Spec) -> int:
        return spec.env.num_envs * getattr(self, self.STEP_FIELD)

    def validate_spec(self, spec: Spec) -> None:
        """The shared rules (module docstring), then :meth:`check_spec`."""
        algo, memory = spec.agent.algorithm.name, spec.agent.memory.name
        if memory not in self.MEMORIES:
            raise SpecError(
                "agent.memory.name", f"{algo} uses {' or '.join(self.MEMORIES)}, not {memory!r}"
            )
        if spec.agent.net.recurrent and not self.RECURRENT:
            have = [n for n in registered() if get_algorithm(n).config_cls.RECURRENT]
            raise SpecError(
                "agent.net.recurrent", f"{algo} has no recurrent form ({', '.join(have)} have)"
            )
        batch = self.frames_per_update(spec)
        how = f"num_envs * {self.STEP_FIELD}"
        if self.MINIBATCH_FIELD is not None:
            count = getattr(self, self.MINIBATCH_FIELD)
            if batch % count:
                raise SpecError(
                    f"agent.algorithm.{self.MINIBATCH_FIELD}",
                    f"batch {how} = {spec.env.num_envs} * {getattr(self, self.STEP_FIELD)} = "
                    f"{batch} does not divide into {count} minibatches",
                )
        if spec.env.max_frame < batch:
            raise SpecError(
                "env.max_frame",
                f"{spec.env.max_frame} is less than one update ({batch} frames = {how})",
            )
        one_kind = self.DISCRETE_ONLY or self.CONTINUOUS_ONLY
        conv = spec.agent.net.type == "Conv"
        env = make_env(spec.env, 1) if one_kind or spec.env.normalize_obs or conv else None
        if conv:
            check_conv(spec.agent.net, env.observation_spec.shape, spec.env.name)
        if self.DISCRETE_ONLY and not env.action_spec.discrete:
            raise SpecError("env.name", f"{algo} needs discrete actions; {spec.env.name} has none")
        if self.CONTINUOUS_ONLY and env.action_spec.discrete:
            raise SpecError(
                "env.name", f"{algo} needs continuous actions; {spec.env.name} has discrete ones"
            )
        if env is not None and spec.env.normalize_obs and env.observation_spec.mask_dim:
            raise SpecError(
                "env.normalize_obs",
                f"{spec.env.name} appends its action mask to the observation, which "
                "normalisation would scale; leave normalize_obs off",
            )
        self.check_spec(spec)

    def check_spec(self, spec: Spec) -> None:
        """The algorithm's own cross-section rules (none by default)."""

    def fit_envs(self, spec: Spec) -> AlgorithmConfig:
        """This config for ``spec``'s env count (after :func:`~jaxlab.spec.smoke.shrink`
        cut it): itself, unless a size must divide into the envs."""
        return self


def check_conv(net: Any, shape: tuple[int, ...], env_name: str) -> None:
    """A Conv torso needs image observations, ``[H, W]`` or ``[H, W, C]``, that each of its
    ``conv_layers`` leaves at least one pixel of (VALID padding shrinks them:
    ``(size - kernel) // stride + 1``; SAME gives ``ceil(size / stride)``)."""
    if len(shape) not in (2, 3):
        raise SpecError(
            "agent.net.type",
            f"Conv needs image observations ([height, width] or [height, width, channels]); "
            f"{env_name} gives shape {list(shape)}: use MLP",
        )
    size = shape[:2]
    for i, (_, kernel, stride) in enumerate(net.conv_layers):
        if net.conv_padding == "VALID":
            size = tuple((s - kernel) // stride + 1 for s in size)
        else:
            size = tuple(-(-s // stride) for s in size)
        if min(size) < 1:
            raise SpecError(
                f"agent.net.conv_layers[{i}]",
                f"leaves no pixels of {env_name}'s {shape[0]}x{shape[1]} image "
                f"({net.conv_padding} padding): use smaller kernels or strides",
            )


def check_replay(spec: Spec, learning_starts: int) -> None:
    """Replay rules: a minibatch fits the memory, one update's transitions fit it, and
    learning starts within the run and the memory's size."""
    mem, frames = spec.agent.memory, spec.agent.algorithm.frames_per_update(spec)
    how = f"num_envs * {spec.agent.algorithm.STEP_FIELD}"
    if mem.batch_size > mem.capacity:
        raise SpecError(
            "agent.memory.batch_size",
            f"{mem.batch_size} is larger than agent.memory.capacity {mem.capacity}",
        )
    if frames > mem.capacity:
        raise SpecError(
            "agent.memory.capacity",
            f"{mem.capacity} cannot hold one update's {frames} transitions ({how})",
        )
    if learning_starts > min(spec.env.max_frame, mem.capacity):
        raise SpecError(
            "agent.algorithm.learning_starts",
            f"{learning_starts} exceeds env.max_frame ({spec.env.max_frame}) or "
            f"agent.memory.capacity ({mem.capacity}), so learning would never start",
        )


class Algorithm:
    """Base of every agent; see the module docstring."""

    def __init__(self, spec: Spec, env: Env | None = None) -> None:
        self.spec = spec
        self.cfg = spec.agent.algorithm
        self.env = make_env(spec.env) if env is None else env
        self.tx = make_optimizer(spec.agent.net)
        self.num_updates = spec.derived.num_updates
        self.frames_per_update = self.cfg.frames_per_update(spec)

    def new_replay(self) -> Replay:
        """An empty replay memory (``agent.memory``) for this env's transitions
        (:func:`jaxlab.rl.rollout.replay_items`)."""
        spec, actions = self.env.observation_spec, self.env.action_spec
        discrete = actions.discrete
        action = jnp.zeros((), jnp.int32) if discrete else jnp.zeros((actions.dim,), jnp.float32)
        obs, zero = jnp.zeros((spec.dim,), spec.dtype), jnp.float32(0)
        item = {"obs": obs, "action": action, "reward": zero, "terminated": zero, "next_obs": obs}
        mem = self.spec.agent.memory
        return make_replay(mem.name == "PrioritizedReplay", item, mem.capacity, mem.batch_size)

    def torso(self) -> TorsoDef:
        """The spec's torso (``agent.net``) for this env's observations."""
        obs = self.env.observation_spec
        return TorsoDef.from_spec(self.spec.agent.net, obs.shape, obs.mask_dim)

    def valid_actions(self, q: jax.Array) -> jax.Array | None:
        """The allowed actions ``[..., A]`` behind masked Q values or logits ``q``, or None
        when the env has no action mask (:func:`jaxlab.networks.mask_actions`)."""
        return allowed(q) if self.env.observation_spec.mask_dim else None

    def net_hyper(self) -> dict[str, jax.Array]:
        """``agent.net``'s tunable numbers as float32 leaves: ``lr``, ``lr_end`` (``lr``
        when the schedule is constant) and ``max_grad_norm`` (inf when clipping is off)."""
        net = self.spec.agent.net
        lr_end = net.lr_schedule.end_val if net.lr_schedule.name == "linear_decay" else net.optim.lr
        clip = net.clip_grad_val if net.clip_grad_val is not None else float("inf")
        return {"lr": jnp.float32(net.optim.lr), "lr_end": jnp.float32(lr_end),
                "max_grad_norm": jnp.float32(clip)}  # fmt: skip

    def frame(self, state: Any) -> jax.Array:
        """Frames collected so far by this session (float32 scalar), for schedules: the
        float32 product ``float32(update_step) * frames_per_update``, which cannot wrap.
        (Past 2**24 updates it may round differently in the last bit from
        :func:`frames_done`, which A2C, SARSA and REINFORCE use to keep their int32
        frames; each algorithm keeps the values it always had.)"""
        return state.update_step.astype(jnp.float32) * self.frames_per_update

    def lr_end_frac(self) -> float:
        """The linear_decay end factor ``end_val / optim.lr`` (1 when the rate is constant)."""
        net = self.spec.agent.net
        return (
            net.lr_schedule.end_val / net.optim.lr
            if net.lr_schedule.name == "linear_decay"
            else 1.0
        )

    def learning_rate(self, hyper: Any, step: jax.Array) -> jax.Array:
        """The learning rate at update ``step`` from ``hyper.lr``/``hyper.lr_end``."""
        schedule = self.spec.agent.net.lr_schedule.name
        return learning_rate(schedule, hyper.lr, hyper.lr_end, step, self.num_updates)


__all__ = ["INT32_MAX", "Algorithm", "AlgorithmConfig", "check_replay", "frames_done"]
