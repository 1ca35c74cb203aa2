"""What a compiled program spent its time on, read from a JAX profiler trace.

``jax.profiler.trace`` writes ``plugins/profile/<run>/<host>.trace.json.gz`` (Chrome trace
format). On CPU, XLA's thunk executor records one event per executed HLO instruction,
named after it (``fusion.12``, ``dot.3``, ``while.4``); on GPU, kernel events sit on the
device's own process (``/device:GPU:0``) and carry the instruction in ``args.hlo_op``.
The compiled program's HLO text (``compiled.as_text()``) maps each instruction to its
opcode and to the ``op_name`` JAX gave it: the trace of the function that made it,
including any ``jax.named_scope``: every algorithm's phases are named (:data:`PHASES`),
so a profile of any chunk splits into rollout, learning and the rest.

:func:`summarize_trace` attributes the events to instructions and phases:

* ``busy_s``: the union of the instructions' intervals, the time at least one ran (control
  flow aside: its events enclose their bodies', loop overhead included). XLA runs
  independent instructions side by side (CPU thunks on its thread pool, GPU kernels on
  several streams), so the per-instruction sums can exceed the wall time; the busy times
  cannot.
* per phase: the busy time of the instructions whose innermost phase scope is that phase
  (:func:`phase_of`; ``other`` when none): the phases run one after another, so these add up to the whole.
* per instruction: calls and seconds summed over every call, control flow (``while``,
  ``conditional``, ``call``) left out.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The jax.named_scope names that mark phases: collect (rollout), advantages or returns
# (A2C, PPO, REINFORCE), SARSA's targets, replay writes (memory), the optimizer steps
# (learn) and the chunk's evaluation.
PHASES = ("rollout", "advantages", "targets", "memory", "learn", "evaluate")
# Instructions whose events enclose other instructions' events.
CONTROL_FLOW = ("while", "conditional", "call", "async-start", "async-done")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.*?\s([a-z][\w\-]*)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


@dataclass(frozen=True)
class Instruction:
    """One HLO instruction of the compiled program: its opcode, JAX's ``op_name`` and the
    computation it is in."""

    opcode: str
    op_name: str
    computation: str = ""

    def phase(self, phases: tuple[str, ...] = PHASES) -> str:
        """The innermost scope of ``op_name`` that is one of ``phases``, else ``other``."""
        found = [part for part in self.op_name.split("/") if part in phases]
        return found[-1] if found else "other"


@dataclass
class OpTime:
    """Calls and summed seconds of one instruction in a trace."""

    name: str
    opcode: str
    phase: str
    op_name: str
    calls: int = 0
    seconds: float = 0.0


@dataclass
class TraceSummary:
    """See the module docstring. ``span_s``: first instruction start to last end."""

    span_s: float
    busy_s: float
    summed_s: float
    phases: dict[str, float] = field(default_factory=dict)
    phase_calls: dict[str, int] = field(default_factory=dict)  # instructions run per phase
    ops: list[OpTime] = field(default_factory=list)


def hlo_instructions(hlo_text: str) -> dict[str, Instruction]:
    """Every instruction of an HLO module's text (``compiled.as_text()``) by name."""
    out, computation = {}, ""
    for line in hlo_text.splitlines():
        m = _INSTRUCTION.match(line)
        if m:
            op = _OP_NAME.search(line)
            out[m.group(1)] = Instruction(m.group(2), op.group(1) if op else "", computation)
        elif c := _COMPUTATION.match(line):
            computation = c.group(1)
    return out


def phase_of(table: dict[str, Instruction], phases: tuple[str, ...] = PHASES) -> dict[str, str]:
    """Each instruction's phase (:meth:`Instruction.phase`). One XLA added (a copy, say) has
    no ``op_name``; it takes the phase of its computation when the instructions there that
    have one agree on it, so a loop body's copies count with the loop's phase."""
    named: dict[str, set[str]] = {}
    for ins in table.values():
        if ins.op_name:
            named.setdefault(ins.computation, set()).add(ins.phase(phases))
    out = {}
    for name, ins in table.items():
        agreed = named.get(ins.computation, set())
        if ins.op_name or len(agreed) != 1:
            out[name] = ins.phase(phases)
        else:
            (out[name],) = agreed
    return out


def trace_file(trace_dir: str | Path) -> Path:
    """The newest ``*.trace.json.gz`` under ``trace_dir`` (what ``jax.profiler.trace`` wrote)."""
    files = sorted(Path(trace_dir).rglob("*.trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"no *.trace.json.gz under {trace_dir}")
    return files[-1]


def load_events(path: str | Path) -> list[dict[str, Any]]:
    """The trace's events (``.json`` or ``.json.gz``)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)["traceEvents"]


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end)`` intervals given in microseconds, in seconds."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total / 1e6


def summarize_trace(
    events: list[dict[str, Any]], hlo_text: str, phases: tuple[str, ...] = PHASES
) -> TraceSummary:
    """Attribute a trace's events to the instructions of ``hlo_text`` (module docstring).

    Events whose instruction is not in the module (Python, the runtime, other programs) are
    ignored. When the trace has device processes (``/device:...``), only their events
    count, so host-side launch events of the same instructions are not counted twice.
    """
    table = hlo_instructions(hlo_text)
    phase_by_name = phase_of(table, phases)
    names = {e["pid"]: e["args"].get("name", "") for e in events if e.get("name") == "process_name"}
    devices = {pid for pid, name in names.items() if name.startswith("/device:")}
    ops: dict[str, OpTime] = {}
    everything: list[tuple[float, float]] = []
    by_phase: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        if e.get("ph") != "X" or (devices and e.get("pid") not in devices):
            continue
        name = (e.get("args") or {}).get("hlo_op", e.get("name", ""))
        ins = table.get(name)
        if ins is None:
            continue
        if ins.opcode in CONTROL_FLOW:
            continue
        start, end = float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0))
        everything.append((start, end))
        phase = phase_by_name[name]
        by_phase.setdefault(phase, []).append((start, end))
        op = ops.setdefault(name, OpTime(name, ins.opcode, phase, ins.op_name))
        op.calls += 1
        op.seconds += (end - start) / 1e6
    if not everything:
        return TraceSummary(0.0, 0.0, 0.0)
    span = (max(b for _, b in everything) - min(a for a, _ in everything)) / 1e6
    return TraceSummary(
        span_s=span,
        busy_s=union_seconds(everything),
        summed_s=sum(op.seconds for op in ops.values()),
        phases={k: union_seconds(by_phase[k]) for k in (*phases, "other") if k in by_phase},
        phase_calls={k: len(v) for k, v in by_phase.items()},
        ops=sorted(ops.values(), key=lambda op: op.seconds, reverse=True),
    )


def count_primitive(jaxpr: Any, name: str) -> int:
    """Equations of primitive ``name`` (``"cond"``, say) in ``jaxpr`` (a ``Jaxpr``, e.g.
    ``jax.make_jaxpr(fn)(*args).jaxpr``) and in every jaxpr nested in its equations (scan
    and cond bodies, inner jits)."""

    def nested(value: Any) -> Any:
        if hasattr(value, "eqns"):
            yield value
        elif hasattr(getattr(value, "jaxpr", None), "eqns"):
            yield value.jaxpr
        elif isinstance(value, (tuple, list)):
            for v in value:
                yield from nested(v)

    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name == name
        for value in eqn.params.values():
            total += sum(count_primitive(sub, name) for sub in nested(value))
    return total


def short_op_name(op_name: str, parts: int = 3) -> str:
    """The last ``parts`` components of an ``op_name`` (where in the model it came from)."""
    return "/".join(op_name.split("/")[-parts:])


__all__ = [
    "count_primitive",
    "PHASES",
    "Instruction",
    "OpTime",
    "TraceSummary",
    "hlo_instructions",
    "load_events",
    "phase_of",
    "short_op_name",
    "summarize_trace",
    "trace_file",
    "union_seconds",
]
