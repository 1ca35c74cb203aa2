"""The spec: frozen, typed sections, validated once, and the quantities derived from them.

A spec has ``agent`` (``algorithm``, ``net``, ``memory``), ``env``, ``meta`` and an
optional ``search`` block. The ``agent.algorithm`` section is parsed by the registered
algorithm's own config class (see :mod:`jaxlab.algorithms`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from jaxlab.algorithms import get_algorithm
from jaxlab.algorithms.skeleton import AlgorithmConfig
from jaxlab.config.parse import SpecError, build, did_you_mean, join, require_positive, to_dict
from jaxlab.config.tunable import tunable
from jaxlab.envs import check_env, make_env, seeded_params
from jaxlab.logging.trackers import LOGGERS
from jaxlab.spec.search import check_search, parse_search

# The largest seed jax keeps whole, and the largest frame or env count (int32 counters).
MAX_SEED = 2**32 - 1
MAX_COUNT = 2**31 - 1


@dataclass(frozen=True)
class OptimSpec:
    """Optimizer: ``name`` in {adam, adamw, rmsprop, sgd}, learning rate and epsilon;
    ``b1``: Adam's (and AdamW's) first-moment decay (CrossQ uses 0.5)."""

    name: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    lr: float = tunable(2.5e-4)
    eps: float = 1.0e-5
    b1: float = 0.9

    def validate(self, path: str) -> None:
        require_positive(self, path, "lr", "eps")
        if not 0.0 <= self.b1 < 1.0:
            raise SpecError(join(path, "b1"), f"must lie in [0, 1), got {self.b1}")


@dataclass(frozen=True)
class LrScheduleSpec:
    """Learning-rate schedule over updates: constant or linear to ``end_val``."""

    name: Literal["no_decay", "linear_decay"] = "no_decay"
    end_val: float = tunable(0.0)

    def validate(self, path: str) -> None:
        if self.end_val < 0:
            raise SpecError(join(path, "end_val"), f"must be >= 0, got {self.end_val!r}")


@dataclass(frozen=True)
class NetSpec:
    """Network: torso, activation, actor/critic sharing, grad clipping, optimizer.

    ``type`` MLP: dense layers ``hid_layers`` on the flat observation. ``type`` Conv: the
    observation keeps its image shape (MinAtar: ``[10, 10, C]``) and goes through
    ``conv_layers`` (``[filters, kernel, stride]`` each, ``conv_padding`` SAME or VALID:
    the Nature CNN on 84x84 Atari frames is VALID) before the dense ``hid_layers``.
    ``conv_impl``: ``xla`` (XLA's convolution) or ``patches`` (each convolution as one
    matmul over the image's patches, im2col: the same function, rounded differently;
    XLA's CPU convolution gradients run about 5x slower inside the training loop's
    ``scan`` than at a program's top level, the matmul's do not).
    ``dueling``: Q heads split into ``V(s) + A(s, a) - mean_a A(s, a)``.
    ``layer_norm``: a LayerNorm after every hidden layer, before its activation (PQN's
    network; Gallici et al., 2024).
    ``recurrent``: a GRU or LSTM cell of ``recurrent_size`` units after the torso (PPO
    and A2C; :mod:`jaxlab.networks.recurrent`). The hidden state is carried through the
    rollout, reset at episode starts, and replayed over whole sequences in the update.
    ``kernel_init``: how every layer's kernel starts (biases start at zero): ``orthogonal``
    with CleanRL's gains (``sqrt(2)`` hidden, 0.01 policy heads, 1 value and Q heads), or
    flax's ``lecun_normal`` (flax's and rejax's default), ``glorot_uniform`` or
    ``he_normal`` as flax defines them, heads included
    (:func:`jaxlab.networks.init.kernel_init`).
    """

    type: Literal["MLP", "Conv"] = "MLP"
    hid_layers: tuple[int, ...] = (64, 64)
    conv_layers: tuple[tuple[int, ...], ...] = ((16, 3, 1),)
    conv_padding: Literal["SAME", "VALID"] = "SAME"
    conv_impl: Literal["xla", "patches"] = "xla"
    dueling: bool = False
    activation: Literal["tanh", "relu", "elu", "gelu", "silu"] = "tanh"
    layer_norm: bool = False
    kernel_init: Literal["orthogonal", "lecun_normal", "glorot_uniform", "he_normal"] = "orthogonal"
    shared: bool = False
    recurrent: Literal["GRU", "LSTM"] | None = None
    recurrent_size: int = 128
    clip_grad_val: float | None = tunable(0.5)
    optim: OptimSpec = tunable(default_factory=OptimSpec)
    lr_schedule: LrScheduleSpec = tunable(default_factory=LrScheduleSpec)

    def validate(self, path: str) -> None:
        for i, width in enumerate(self.hid_layers):
            if width <= 0:
                raise SpecError(
                    f"{join(path, 'hid_layers')}[{i}]", f"must be positive, got {width}"
                )
        require_positive(self, path, "clip_grad_val", "recurrent_size")
        for i, layer in enumerate(self.conv_layers):
            if len(layer) != 3 or any(v <= 0 for v in layer):
                raise SpecError(
                    f"{join(path, 'conv_layers')}[{i}]",
                    f"must be [filters, kernel, stride], all positive, got {list(layer)}",
                )


@dataclass(frozen=True)
class MemorySpec:
    """Experience storage, fixed-size arrays inside the training state (see :mod:`jaxlab.memory`).

    ``OnPolicyBatch``: the last rollout only (PPO, A2C, REINFORCE, SARSA). ``Replay``: a
    ring buffer of ``capacity`` transitions per session, sampled uniformly in minibatches
    of ``batch_size``. ``PrioritizedReplay``: sampled with probability ``p_i^alpha / sum
    p^alpha`` (``p_i = |TD error| + epsilon``, new transitions at the running maximum),
    with importance weights ``(n P(i))^-beta / max`` and ``beta`` annealed linearly from
    ``beta`` to 1 over the run.
    """

    name: Literal["OnPolicyBatch", "Replay", "PrioritizedReplay"] = "OnPolicyBatch"
    capacity: int = 100_000
    batch_size: int = 64
    alpha: float = tunable(0.6)
    beta: float = tunable(0.4)
    epsilon: float = tunable(1.0e-6)

    def validate(self, path: str) -> None:
        require_positive(self, path, "capacity", "batch_size", "epsilon")
        for name in ("alpha", "beta"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SpecError(join(path, name), f"must lie in [0, 1], got {getattr(self, name)}")

    @property
    def replay(self) -> bool:
        return self.name != "OnPolicyBatch"


@dataclass(frozen=True)
class EnvSpec:
    """Environment: ``name`` (``<suite>/<id>``, or a bare gymnax id; see
    :mod:`jaxlab.envs`), parallel envs per session, frame budget per session.

    ``normalize_obs``/``normalize_reward`` keep running statistics in the training state;
    ``params`` overrides fields of the suite's env params (gymnax's ``EnvParams``, e.g.
    ``max_steps_in_episode``). ``obs_dims`` keeps only those entries of the flat
    observation (CartPole without velocities: ``[0, 2]``); ``frame_stack`` stacks the
    last observations (:mod:`jaxlab.envs.wrappers`).
    """

    name: str
    num_envs: int = 4
    max_frame: int = 500_000
    normalize_obs: bool = False
    normalize_reward: bool = False
    clip_obs: float = 10.0
    clip_reward: float = 10.0
    params: dict[str, Any] = field(default_factory=dict)
    obs_dims: tuple[int, ...] | None = None
    frame_stack: int = 1

    def validate(self, path: str) -> None:
        require_positive(self, path, "num_envs", "max_frame", "clip_obs", "clip_reward")
        require_positive(self, path, "frame_stack")
        for key in ("num_envs", "max_frame"):
            if getattr(self, key) > MAX_COUNT:
                raise SpecError(
                    join(path, key),
                    f"must be at most {MAX_COUNT:,} (frames and steps count in int32)",
                )
        check_env(self.name, self.params, join(path, "name"), join(path, "params"))
        if self.obs_dims is not None or self.frame_stack != 1:
            make_env(self, 1)  # SpecError when the env's observations cannot be cut


@dataclass(frozen=True)
class SchedulerSpec:
    """``meta.search_scheduler``: ASHA early stopping of search trials on their per-chunk
    mean return. ``grace_frame``: frames per session a trial always gets (0: an eighth of
    ``env.max_frame``); ``reduction_factor``: the fraction 1/eta kept at each rung."""

    name: Literal["asha"] = "asha"
    grace_frame: int = 0
    reduction_factor: float = 3.0

    def validate(self, path: str) -> None:
        if self.grace_frame < 0:
            raise SpecError(join(path, "grace_frame"), "must be >= 0 (0 = max_frame / 8)")
        if self.reduction_factor <= 1:
            raise SpecError(join(path, "reduction_factor"), "must be > 1")


@dataclass(frozen=True)
class ResourcesSpec:
    """``meta.search_resources``: CPUs and GPUs one Ray trial holds (a GPU fraction < 1
    lets several trials share one device, each capped to that fraction of its memory)."""

    cpu: float = 1.0
    gpu: float = 0.0

    def validate(self, path: str) -> None:
        if self.cpu <= 0:
            raise SpecError(join(path, "cpu"), f"must be > 0, got {self.cpu!r}")
        if self.gpu < 0 or (self.gpu > 1 and not float(self.gpu).is_integer()):
            raise SpecError(
                join(path, "gpu"), f"must be a fraction <= 1 or a whole count, got {self.gpu!r}"
            )


@dataclass(frozen=True)
class MetaSpec:
    """Run settings: sessions (seeds) per trial, seeds, log/eval/checkpoint cadence in frames.

    Checkpoints are written at the first log point at or past each multiple of
    ``checkpoint_frequency`` frames and always at the end; the last ``checkpoint_keep``
    are kept. Every ``eval_frequency`` frames (rounded to whole log points; 0 = never)
    and at the end, each session plays ``eval_episodes`` episodes with its deterministic
    policy in separate envs; the Trial's best mean eval return is kept as the ``best``
    checkpoint.

    ``search`` mode (:mod:`jaxlab.experiment.driver`): ``max_trial`` settings per grid point;
    ``search_alg`` random (with grid keys) or optuna (TPE); ``search_scheduler`` ASHA or
    none; ``search_resources`` per Ray trial; ``search_batch`` settings trained as one
    compiled program (0: enough batches to fill the cluster; 1: no batching).

    ``compile``: ``optimized`` (XLA's optimisations; on CPU with LLVM at -O2, which
    compiles faster than XLA's default -O3 and runs as fast: ``jaxlab.lab.xla_options``'s
    ``OPTIMIZED_CPU_OPTIONS``) or ``fast`` (backend optimisation off:
    roughly half the compile time, slower to run; ``dev`` and ``--shrink`` runs use it).
    It is part of the saved spec because the two builds may differ in the last bits.

    ``loggers``: where the scalars go, any of csv, tensorboard, wandb, mlflow
    (:mod:`jaxlab.logging.trackers`), default ``[csv, tensorboard]``. ``csv`` is always
    listed (leaving it out is a SpecError): ``metrics.csv`` is what reports, resume and
    ``Run.metrics`` read. A listed tracker whose package is missing is refused, naming its
    pip extra, when a run starts (not here: a W&B run's spec still loads for ``enjoy``
    where wandb is not installed).

    ``detailed_sessions``: how many sessions (the first ones) get their own graphs,
    TensorBoard scalars, histograms and tracker runs; every session has its rows in
    ``metrics.csv`` and counts in the Trial's aggregates (at thousands of seeds, files and
    runs per session would cost more host time than training).

    ``deterministic``: build the programs so that a rerun on a GPU gives the same bits:
    XLA's deterministic ops, no autotuning, float32 matmuls at full precision (not TF32).
    Slower on a GPU; on CPU it changes nothing (its programs are deterministic already).
    """

    max_session: int = 4
    max_trial: int = 1
    random_seed: int = 42
    log_frequency: int = 10_000
    eval_frequency: int = 50_000
    eval_episodes: int = 10
    checkpoint_frequency: int = 100_000
    checkpoint_keep: int = 3
    search_alg: Literal["random", "optuna"] = "random"
    search_scheduler: SchedulerSpec | None = None
    search_resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    search_batch: int = 0
    compile: Literal["optimized", "fast"] = "optimized"
    loggers: tuple[str, ...] = ("csv", "tensorboard")
    detailed_sessions: int = 8
    deterministic: bool = False

    def validate(self, path: str) -> None:
        require_positive(self, path, "max_session", "max_trial", "log_frequency", "eval_episodes")
        if self.detailed_sessions < 0:
            raise SpecError(join(path, "detailed_sessions"), "must be >= 0")
        require_positive(self, path, "checkpoint_frequency", "checkpoint_keep")
        if self.eval_frequency < 0:
            raise SpecError(join(path, "eval_frequency"), "must be >= 0 (0 turns evaluation off)")
        if not 0 <= self.random_seed <= MAX_SEED:
            raise SpecError(
                join(path, "random_seed"),
                f"must lie in [0, {MAX_SEED}] (jax keeps a seed's low 32 bits, so larger seeds "
                f"repeat smaller ones), got {self.random_seed}",
            )
        if self.search_batch < 0:
            raise SpecError(join(path, "search_batch"), "must be >= 0 (0 = automatic)")
        check_loggers(self.loggers, join(path, "loggers"))


def check_loggers(loggers: tuple[str, ...], path: str) -> None:
    """``meta.loggers``: known names (did-you-mean), each once, csv among them."""
    for i, name in enumerate(loggers):
        if name not in LOGGERS:
            hint = did_you_mean(name, LOGGERS) or f" (one of {', '.join(LOGGERS)})"
            raise SpecError(f"{path}[{i}]", f"unknown logger {name!r}{hint}")
        if name in loggers[:i]:
            raise SpecError(f"{path}[{i}]", f"{name!r} is listed twice")
    if "csv" not in loggers:
        raise SpecError(
            path, "must include csv: metrics.csv is what reports, resume and Run.metrics read"
        )


@dataclass(frozen=True)
class AgentSpec:
    algorithm: AlgorithmConfig  # the registered algorithm's config (agent.algorithm.name)
    net: NetSpec = field(default_factory=NetSpec)
    memory: MemorySpec = field(default_factory=MemorySpec)


@dataclass(frozen=True)
class Derived:
    """Loop sizes computed once from a spec (all per session).

    frames_per_update = algorithm's frames per update (PPO: num_envs * time_horizon)
    num_updates       = max_frame // frames_per_update
    updates_per_chunk = max(1, round(log_frequency / frames_per_update))
    num_chunks        = ceil(num_updates / updates_per_chunk); the last chunk runs the
                        last_chunk_updates left (session module docstring).
    eval_every        = max(1, round(eval_frequency / frames per chunk)) chunks (0 = off);
                        the last chunk always evaluates when evaluation is on.
    """

    frames_per_update: int
    num_updates: int
    updates_per_chunk: int
    num_chunks: int
    eval_every: int = 0

    def is_eval_chunk(self, chunk: int) -> bool:
        if not self.eval_every:
            return False
        return (chunk + 1) % self.eval_every == 0 or chunk == self.num_chunks - 1

    @property
    def last_chunk_updates(self) -> int:
        """The updates the last chunk runs: ``updates_per_chunk`` unless fewer are left."""
        return self.num_updates - (self.num_chunks - 1) * self.updates_per_chunk

    @property
    def total_frames(self) -> int:
        return self.num_updates * self.frames_per_update


@dataclass(frozen=True)
class Spec:
    name: str
    agent: AgentSpec
    env: EnvSpec
    meta: MetaSpec = field(default_factory=MetaSpec)
    search: dict[str, Any] = field(default_factory=dict)

    @property
    def derived(self) -> Derived:
        fpu = self.agent.algorithm.frames_per_update(self)
        num_updates = self.env.max_frame // fpu
        upc = min(max(1, round(self.meta.log_frequency / fpu)), num_updates)
        freq = self.meta.eval_frequency
        eval_every = max(1, round(freq / (upc * fpu))) if freq else 0
        return Derived(fpu, num_updates, upc, math.ceil(num_updates / upc), eval_every)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain YAML-ready data (round-trips through :func:`parse_spec`)."""
        return to_dict(self)

    def replace(self, **changes: Any) -> Spec:
        return dataclasses.replace(self, **changes)


SECTIONS = ("name", "agent", "env", "meta", "search")
# A spec name becomes a folder name: ASCII letters, digits, '.', '_', '-', no leading dot.
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def check_name(name: Any) -> None:
    """SpecError unless ``name`` is a safe run-folder name (see ``NAME``): no path
    separators, ``..``, absolute paths, control or non-ASCII characters, at most 100."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpecError(
            "name",
            f"must be 1-100 ASCII letters, digits, '.', '_' or '-' (not starting with '.'): "
            f"it names the run folder; got {str(name)[:120]!r}",
        )


def parse_spec(raw: Any) -> Spec:
    """Validate a raw (already variable-resolved) mapping into a :class:`Spec`."""
    if not isinstance(raw, dict):
        raise SpecError("", f"a spec must be a mapping of sections, got {type(raw).__name__}")
    for key in raw:
        if key not in SECTIONS:
            raise SpecError(str(key), "unknown section" + did_you_mean(str(key), SECTIONS))
    for key in ("name", "agent", "env"):
        if key not in raw:
            raise SpecError(key, "is required")
    check_name(raw["name"])
    agent = raw["agent"]
    if not isinstance(agent, dict):
        raise SpecError("agent", f"must be a mapping, got {agent!r}")
    algo_raw = agent.get("algorithm")
    if not isinstance(algo_raw, dict) or "name" not in algo_raw:
        raise SpecError("agent.algorithm.name", "is required")
    algo = get_algorithm(algo_raw["name"], "agent.algorithm.name")
    algo_cfg = build(algo.config_cls, {k: v for k, v in algo_raw.items()}, "agent.algorithm")
    rest = {k: v for k, v in agent.items() if k != "algorithm"}
    agent_spec = build(AgentSpec, {"algorithm": {}, **rest}, "agent")
    agent_spec = dataclasses.replace(agent_spec, algorithm=algo_cfg)
    search = raw.get("search") or {}
    dims = parse_search(search)
    env = build(EnvSpec, raw["env"], "env")
    meta = build(MetaSpec, raw.get("meta"), "meta")
    env = dataclasses.replace(env, params=seeded_params(env.name, env.params, meta.random_seed))
    spec = Spec(name=raw["name"], agent=agent_spec, env=env, meta=meta, search=dict(search))
    algo_cfg.validate_spec(spec)
    if dims:
        check_search(dims, spec.to_dict(), parse_spec)
    return spec
