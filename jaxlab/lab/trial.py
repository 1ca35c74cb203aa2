"""A Trial: the Session vmapped over seeds, compiled once, and aggregation across seeds.

With several local devices (GPUs, or CPU host devices forced with
``--xla_force_host_platform_device_count``), the seed axis is sharded across them (the
most of them that divide the session count, with a warning): every leaf of the state and
the metrics, ``[S, ...]``, is split along ``S`` over a one-axis ``Mesh``
(``NamedSharding(mesh, P("seed"))``), and ``shard_map`` runs the same vmapped init and chunk on each device's ``S / D`` sessions, so
nothing crosses devices inside a chunk and each device computes exactly what one device
given only those sessions would. On one device nothing changes.

Where a program holds one session (a 1-seed Trial, or one session per device), it is not
vmapped: the session axis is dropped on the way in and put back on the way out
(:func:`over_sessions`), both reshapes. A batch of one compiled slower and ran no faster
(PPO CartPole, 1 seed: XLA compile 3.7 s vs 5.0 s, run 0.97x; RESULTS.md).

The compiled program runs a *group*: ``count`` consecutive chunks from ``start`` (both
traced, so any group is the same program) in a ``lax.scan`` over ``group_size`` slots,
slots past ``count`` skipped by ``lax.cond`` (on an accelerator, a host round trip per
chunk, not per update). The host loop asks for several log points per call when chunks
are short: calling the chunk once per log point cost 1.06x (10 chunks) to 1.23x (39
chunks) the time of one program for all of them (1 seed, PPO CartPole), a cost per call,
not per update. When ``updates_per_chunk`` does not divide ``num_updates``, the last
chunk's fewer updates are, on an accelerator (:func:`cheap_conds`), a second
program, the *tail*, compiled on a background thread while the run trains (the run waits
for it only if it gets there first); on CPU the group program skips the surplus updates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxlab.algorithms import get_algorithm
from jaxlab.lab.evaluate import make_evaluate
from jaxlab.lab.seeds import default_keys, memory_knob, seed_sharding
from jaxlab.lab.session import make_chunk
from jaxlab.lab.xla_options import (
    DETERMINISTIC_GPU_OPTIONS,
    GPU_PLATFORMS,
    INIT_BATCHED_OPTIONS,
    fast_options,
    group_options,
    matmul_precision,
)
from jaxlab.memory.budget import check_fits, check_program_fits
from jaxlab.rl.branching import cheap_conds
from jaxlab.spec.schema import Spec

# With this many float parameters in all (sessions x parameters per session) in one CPU
# program, init runs in batches of INIT_BATCH with INIT_BATCHED_OPTIONS (see init_program).
INIT_BATCHED_PARAMS = 1 << 23
INIT_BATCH = 64
# A chunk index or count (int32 scalar) where only its shape matters: no eager program.
INDEX = jax.ShapeDtypeStruct((), jnp.int32)
# Builds each Trial's init program while XLA compiles the group program (Trial docstring),
# which keeps 1.7 of the 2 CPU cores busy on average (PPO CartPole, 1 seed).
_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxlab-init")
# The most chunks one call can run, and the most bytes their stacked metrics may take.
GROUP_MAX = 32
GROUP_METRIC_BYTES = 64 << 20


def over_sessions(fn: Callable[..., Any], count: int, in_axes: tuple[int | None, ...]) -> Any:
    """``fn`` (one session's) over ``count`` sessions: ``jax.vmap(fn, in_axes)``, or with
    ``count == 1`` ``fn`` itself on the arguments with their session axis (``in_axes`` 0)
    squeezed, its outputs given a leading axis of 1. Same signature and output shapes
    either way."""
    if count != 1:
        return jax.vmap(fn, in_axes=in_axes)

    def single(*args: Any) -> Any:
        args = tuple(
            a if axis is None else jax.tree.map(lambda x: jnp.squeeze(x, 0), a)
            for a, axis in zip(args, in_axes, strict=True)
        )
        return jax.tree.map(lambda x: jnp.expand_dims(x, 0), fn(*args))

    return single


def init_program(
    init: Callable[[jax.Array], Any], count: int, params: int, platform: str
) -> tuple[Callable[[jax.Array], Any], dict[str, Any]]:
    """The init of ``count`` sessions (``keys [count, 2] -> state [count, ...]``) that have
    ``params`` float parameters each, and the XLA options to compile it with.

    Init runs once, so it is built for compile speed: ``init`` over the sessions
    (:func:`over_sessions`) with :data:`FAST_COMPILER_OPTIONS`. But its run time grows
    with the sessions and its compile time does not, and on CPU that unoptimised code is
    slow per parameter (random draws and the orthogonal init's Gram-Schmidt as scalar
    loops over arrays too large for the cache): PPO CartPole at 4,096 seeds compiled in
    1.0 s and then ran 10 s. From :data:`INIT_BATCHED_PARAMS` parameters in all, on CPU,
    init is ``lax.map`` over batches of :data:`INIT_BATCH` sessions (each batch vmapped)
    compiled at backend optimisation level 1: there 2.2 s and 1.3 s. Measured crossovers
    (compile plus run): PPO CartPole (9,155 parameters) between 512 and 1,024 seeds,
    PPO Breakout-MinAtar (59,908) near 128. A session computes the same either way; only
    float rounding may differ.
    """
    if platform == "cpu" and count * params >= INIT_BATCHED_PARAMS:
        return (lambda keys: jax.lax.map(init, keys, batch_size=INIT_BATCH)), INIT_BATCHED_OPTIONS
    return over_sessions(init, count, (0,)), fast_options(platform)


def make_group(
    chunk: Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]],
    size: int,
    shapes: dict[str, jax.ShapeDtypeStruct],
) -> Callable[[Any, jax.Array, jax.Array], tuple[Any, dict[str, jax.Array]]]:
    """``group(state, start, count)``: chunks ``start .. start+count-1`` (``count <= size``)
    of one session; metrics (``shapes``: one chunk's) stacked ``[size, ...]``, zeros in
    the slots past ``count``."""

    def group(state: Any, start: jax.Array, count: jax.Array) -> tuple[Any, dict[str, Any]]:
        def skip(s: Any, index: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
            return s, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), shapes)

        def slot(s: Any, j: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
            return jax.lax.cond(j < count, chunk, skip, s, start + j)

        return jax.lax.scan(slot, state, jnp.arange(size, dtype=jnp.int32))

    return group


def one_session(state: Any) -> Any:
    """The abstract state of one session from a Trial's ``[S, ...]`` one.

    ``weak_type`` is kept (gymnax's step counters are weakly typed): with it these shapes
    hit the trace cache of the jitted chunk and update that the group program calls, so
    asking for metric shapes costs no second trace."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype, weak_type=x.weak_type), state
    )


class Trial:
    """``meta.max_session`` sessions of one spec, trained together by ``vmap``.

    ``keys`` overrides the per-session keys (``[S, 2]`` uint32); by default session k
    gets :func:`~jaxlab.lab.session.session_key` ``(meta.random_seed, k)``.
    The group program (module docstring) is compiled ahead of time once
    (:meth:`compile`); ``state`` is donated. ``group_size`` chunks fit in one call: at most
    :data:`GROUP_MAX` and the run's chunk count, fewer when their stacked metrics would
    pass :data:`GROUP_METRIC_BYTES`.
    Construction refuses a state that cannot fit (:func:`jaxlab.memory.check_fits`).
    ``devices`` (default: every local device) are where the sessions train; see the module
    docstring for how they are shared out (``sharding`` is None on one device).
    ``compiler_options``: the XLA options the group program compiles with
    (:func:`group_options`). ``trace_s``: the seconds construction took (tracing init and the chunk), which
    ``train`` and resume count in ``compile_s``.

    ``train`` compiles the group program from shapes with ``compile(..., with_init=True)``,
    then asks for :meth:`init`: the init program is built on a background thread from the
    moment the group program is lowered, so the two XLA compiles overlap. :meth:`init`
    waits for that build and raises any error from it. (Running init there too cost 1 s
    at 4,096 seeds, its run slowing the group compile, and saved nothing at 1 seed.) jax's
    thread-local config contexts (``jax.default_matmul_precision(...)`` and the like)
    around ``compile`` do not reach that thread; the keys are placed before it starts.
    """

    def __init__(
        self,
        spec: Spec,
        keys: jax.Array | None = None,
        devices: Sequence[jax.Device] | None = None,
    ) -> None:
        built = time.perf_counter()
        self.spec = spec
        self.derived = spec.derived
        self.agent = get_algorithm(spec.agent.algorithm.name).make(spec)
        if keys is None:
            keys = default_keys(spec)
        self.num_sessions = int(keys.shape[0])
        self.sharding = seed_sharding(self.num_sessions, devices)
        devices_used = 1 if self.sharding is None else len(self.sharding.mesh.devices.flat)
        self.per_device = self.num_sessions // devices_used  # sessions in one program
        # Jitted so that sizing it here and building the program share one trace.
        one_init = jax.jit(self.agent.init)
        key = jax.ShapeDtypeStruct(keys.shape[1:], keys.dtype)
        with matmul_precision(spec):
            params = sum(x.size for x in jax.tree.leaves(jax.eval_shape(one_init, key).params))
        self.platform = platform = (devices[0] if devices else jax.devices()[0]).platform
        init, self._init_options = init_program(one_init, self.per_device, params, platform)
        deterministic = spec.meta.deterministic
        if deterministic and platform in GPU_PLATFORMS:
            self._init_options = {**self._init_options, **DETERMINISTIC_GPU_OPTIONS}
        self.compiler_options = group_options(spec.meta.compile, platform, deterministic)
        if self.sharding is None:
            if devices is not None:
                keys = jax.device_put(keys, devices[0])
            self._init = jax.jit(init)
        else:  # each device runs the programs on its own slice of the seeds
            mesh, seeds = self.sharding.mesh, PartitionSpec("seed")
            keys = jax.device_put(keys, self.sharding)
            self._init = jax.jit(
                jax.shard_map(init, mesh=mesh, in_specs=seeds, out_specs=seeds, check_vma=False)
            )
        self.keys = keys
        self._chunk: Any = None
        self._tail: Any = None  # the short last chunk's program, if any (module docstring)
        self._tail_job: Future | None = None  # its compile, on the background thread
        self.tail_wait_s = 0.0  # seconds dispatch waited for that compile
        # Refuse (one line) before compiling when seeds x state (replay) cannot fit.
        shapes = self.abstract_state()
        self.memory_knob = memory_knob(spec, shapes)
        self.state_bytes = check_fits(
            shapes, self.num_sessions, self.memory_knob, devices=devices_used
        )
        self._init_job: Future | None = None  # the init program's build (_build_init)
        self.init_s = 0.0  # the last init()'s run (init docstring)
        with matmul_precision(spec):
            self._build_group(spec)
        self.trace_s = time.perf_counter() - built  # tracing init and the chunk

    def _build_group(self, spec: Spec) -> None:
        """Trace the chunk once (for its metric shapes), size the group, wrap the programs
        (the group's, and the tail's when the last chunk is short)."""
        d = self.derived
        evaluate = make_evaluate(self.agent, spec) if d.eval_every else None
        # Jitted so this trace serves the group program's lowering too (trace cache).
        one = jax.jit(make_chunk(self.agent, d, evaluate))
        shapes = jax.eval_shape(one, one_session(self.abstract_state()), INDEX)[1]
        per_chunk = self.num_sessions * sum(m.size * m.dtype.itemsize for m in shapes.values())
        fit = max(1, GROUP_METRIC_BYTES // max(per_chunk, 1))
        self.group_size = int(min(GROUP_MAX, d.num_chunks, fit))
        self._chunk_jit = self._program(make_group(one, self.group_size, shapes))
        self._tail_jit = None
        if d.last_chunk_updates < d.updates_per_chunk and not cheap_conds(self.platform):
            tail = make_chunk(self.agent, d, evaluate, updates=d.last_chunk_updates)
            self._tail_jit = self._program(make_group(tail, 1, shapes))

    def _program(self, group: Callable[..., Any]) -> Any:
        """``group(state, start, count)`` of one session, jitted over the Trial's sessions
        (sharded over its devices), ``state`` donated."""
        chunk = over_sessions(group, self.per_device, (0, None, None))
        if self.sharding is None:
            return jax.jit(chunk, donate_argnums=0)
        mesh, seeds, whole = self.sharding.mesh, PartitionSpec("seed"), PartitionSpec()
        per_device = jax.shard_map(
            chunk, mesh=mesh, in_specs=(seeds, whole, whole), out_specs=seeds, check_vma=False
        )
        replicated = NamedSharding(mesh, whole)
        return jax.jit(
            per_device,
            in_shardings=(self.sharding, replicated, replicated),
            out_shardings=self.sharding,
            donate_argnums=0,
        )

    def _build_init(self) -> Future:
        """Start building the init program on the background thread, unless started
        already (class docstring)."""
        if self._init_job is None:
            self._init_job = _BACKGROUND.submit(self._compile_init)
        return self._init_job

    def _compile_init(self) -> Any:
        with matmul_precision(self.spec):
            lowered = self._init.lower(self.keys)
        return lowered.compile(self._init_options)

    def init(self) -> Any:
        """The initial state of every session, ``[S, ...]`` leaves.

        It runs once per run, so its program is compiled for compile speed, with XLA's
        backend optimisation and the CPU fusion emitters off (:data:`FAST_COMPILER_OPTIONS`):
        PPO CartPole's init (4 seeds) compiles in 0.84-0.91 s, against 1.26-1.48 s with the
        optimisation off alone (at 1 seed: 2.6 s with XLA's defaults); many sessions on CPU
        are built otherwise (:func:`init_program`). Its values may differ from an optimised
        build in the last bits, but are the same on every call, which is what reproducing a
        run needs.

        It returns once the state is computed, and ``init_s`` holds the seconds that took
        (the program's run, its build aside): ``train`` reports them within ``compile_s``.
        """
        program = self._build_init().result()
        ran = time.perf_counter()
        state = jax.block_until_ready(program(self.keys))
        self.init_s = time.perf_counter() - ran
        return state

    def abstract_state(self) -> Any:
        """Shapes and dtypes of the Trial state (``jax.ShapeDtypeStruct`` leaves), no compute;
        with the seed axis's sharding when the Trial is sharded over several devices."""
        shapes = jax.eval_shape(self._init, self.keys)
        if self.sharding is None:
            return shapes
        return jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(
                s.shape, s.dtype, sharding=self.sharding, weak_type=s.weak_type
            ),
            shapes,
        )

    def metric_names(self) -> list[str]:
        """The names of the metrics one update returns (from shapes only, no compute)."""
        return sorted(jax.eval_shape(self.agent.update, one_session(self.abstract_state()))[1])

    def place(self, state: Any) -> Any:
        """``state`` laid out as the compiled chunk expects (sharded over the seed axis on
        several devices; a no-op for arrays already there, and on one device)."""
        return state if self.sharding is None else jax.device_put(state, self.sharding)

    def compile(self, state: Any, with_init: bool = False) -> None:
        """Compile the group program for ``state``'s shapes (a state, or its
        ``jax.ShapeDtypeStruct`` leaves as from :meth:`abstract_state`), ahead of time and
        once. ``with_init``: :meth:`init` comes next, so build its program meanwhile. The
        tail program (module docstring), if any, is then built on the background thread;
        it needs no memory check of its own: the same arguments, fewer updates, one slot."""
        abstract = all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(state))
        args = (state if abstract else self.place(state), INDEX, INDEX)
        with matmul_precision(self.spec):
            lowered = self._chunk_jit.lower(*args)
        if with_init:  # overlaps the compile below, which leaves part of a core idle
            self._build_init()
        chunk = lowered.compile(self.compiler_options)
        check_program_fits(chunk, self.state_bytes, self.memory_knob, self.platform)
        self._chunk = chunk
        self._build_tail(args[0])

    def _build_tail(self, state: Any) -> None:
        """Start compiling the tail program (if any) for ``state``'s shapes on the
        background thread, unless started already."""
        if self._tail_jit is not None and self._tail_job is None:
            shapes = jax.tree.map(_shape_of, (state, INDEX, INDEX))
            self._tail_job = _BACKGROUND.submit(self._compile_tail, shapes)

    def _compile_tail(self, shapes: tuple) -> Any:
        with matmul_precision(self.spec):
            lowered = self._tail_jit.lower(*shapes)
        return lowered.compile(self.compiler_options)

    def group_limit(self, first: int) -> int:
        """The most chunks one :meth:`dispatch` from chunk ``first`` may run: up to
        ``group_size``, never past the run's end, and a short last chunk (the tail program)
        only on its own."""
        last = self.derived.num_chunks - 1
        if self._tail_jit is None:
            return min(self.group_size, last + 1 - first)
        return 1 if first == last else min(self.group_size, last - first)

    @property
    def executable(self) -> Any:
        """The compiled group program (None before :meth:`compile`); e.g. for its
        ``memory_analysis()``."""
        return self._chunk

    def dispatch(self, state: Any, start: int, count: int = 1) -> tuple[Any, dict[str, jax.Array]]:
        """Start chunks ``start .. start+count-1`` on every session and return at once
        (JAX dispatches async); ``1 <= count <= group_limit(start)``.

        ``state`` is donated: do not use it afterwards. Metrics stay on device, stacked
        ``[S, group_size, ...]`` (``[S, 1, ...]`` from the tail program): slot j is chunk
        ``start + j``, zeros past ``count``.
        """
        limit = self.group_limit(start)
        if not 1 <= count <= limit:
            raise ValueError(f"count must be in 1..{limit} from chunk {start}, got {count}")
        if self._chunk is None:
            self.compile(state)
        program, state = self._chunk, self.place(state)
        if self._tail_jit is not None and start == self.derived.num_chunks - 1:
            program = self._tail_program(state)
        return program(state, np.int32(start), np.int32(count))

    def _tail_program(self, state: Any) -> Any:
        """The tail program, waiting for its compile (counted in ``tail_wait_s``)."""
        if self._tail is None:
            self._build_tail(state)  # not started if the group program was set from outside
            waited = time.perf_counter()
            self._tail = self._tail_job.result()
            self.tail_wait_s += time.perf_counter() - waited
        return self._tail

    def chunk(self, state: Any, chunk_index: int) -> tuple[Any, dict[str, np.ndarray]]:
        """Run one chunk on every session; metrics come back as host arrays ``[S]``."""
        state, metrics = self.dispatch(state, chunk_index)
        return state, {k: v[:, 0] for k, v in jax.device_get(metrics).items()}

    def frames_after(self, chunk_index: int) -> int:
        """Frames trained per session once chunk ``chunk_index`` is done."""
        d = self.derived
        return min((chunk_index + 1) * d.updates_per_chunk, d.num_updates) * d.frames_per_update


def _shape_of(x: Any) -> Any:
    """``x``'s shape, dtype, sharding and weak type as a ``jax.ShapeDtypeStruct`` (x itself
    if one already)."""
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding, weak_type=x.weak_type)
