"""Trace summaries: busy time, phases and per-instruction times from a profiler trace."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.tools.profiling import (
    hlo_instructions,
    load_events,
    phase_of,
    summarize_trace,
    trace_file,
    union_seconds,
)
from tests.test_conformance import CASES, IDS, small_spec

HLO = """HloModule jit_f

%body (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %fusion.1 = f32[8]{0} fusion(%x), kind=kLoop, metadata={op_name="jit(f)/rollout/while/body/add"}
  ROOT %dot.2 = f32[8]{0} dot(%a, %b), metadata={op_name="jit(f)/learn/rollout/mul"}
  %copy.6 = f32[8]{0} copy(%x)
}

ENTRY %main (x: f32[8]) -> f32[8] {
  %while.3 = (s32[], f32[8]{0}) while(%tuple), condition=%cond, body=%body
  ROOT %copy.4 = f32[8]{0} copy(%y), metadata={op_name="jit(f)/learn/copy"}
  %sort.5 = f32[8]{0} sort(%z)
  %add.7 = f32[8]{0} add(%a, %b), metadata={op_name="jit(f)/add"}
}
"""


def test_hlo_text_gives_each_instruction_its_opcode_and_innermost_phase():
    table = hlo_instructions(HLO)
    assert table["while.3"].opcode == "while" and table["dot.2"].opcode == "dot"
    assert table["fusion.1"].phase() == "rollout"
    assert table["dot.2"].phase() == "rollout"  # the innermost phase scope wins
    assert table["copy.4"].phase() == "learn" and table["sort.5"].phase() == "other"
    assert table["copy.6"].computation == "body" and table["sort.5"].computation == "main"
    # An instruction XLA added (no op_name) takes its computation's phase if that is one.
    phases = phase_of(table)
    assert phases["copy.6"] == "rollout"
    assert phases["sort.5"] == "other"  # main mixes learn and other


def test_summary_counts_busy_time_once_and_leaves_out_control_flow():
    def x(name: str, ts: float, dur: float, tid: int = 1, **args: str) -> dict:
        return {"ph": "X", "pid": 1, "tid": tid, "name": name, "ts": ts, "dur": dur, "args": args}

    events = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        x("while.3", 0, 100),  # encloses its body's events: not an op, not busy
        x("fusion.1", 0, 10),
        x("fusion.1", 20, 10),
        x("dot.2", 5, 10, tid=2),  # overlaps fusion.1 on another thread
        x("copy.4", 50, 30),
        x("PjitFunction(jit(f))", 0, 200),  # not an instruction of the module
    ]
    s = summarize_trace(events, HLO)
    assert s.busy_s == pytest.approx(55e-6)  # [0, 15) + [20, 30) + [50, 80)
    assert s.summed_s == pytest.approx(60e-6) and s.span_s == pytest.approx(80e-6)
    assert s.phases == pytest.approx({"rollout": 25e-6, "learn": 30e-6})
    assert [(op.name, op.calls) for op in s.ops] == [("copy.4", 1), ("fusion.1", 2), ("dot.2", 1)]
    # With a device process, only its events count; GPU kernels name their op in args.
    gpu = [
        *events,
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {**x("loop_add_fusion_kernel", 0, 40, hlo_op="fusion.1"), "pid": 2},
    ]
    s = summarize_trace(gpu, HLO)
    assert s.busy_s == pytest.approx(40e-6) and [op.name for op in s.ops] == ["fusion.1"]


def test_union_of_intervals():
    assert union_seconds([]) == 0.0
    assert union_seconds([(0, 2e6), (1e6, 3e6), (5e6, 6e6), (5.5e6, 5.6e6)]) == pytest.approx(4.0)


def test_a_real_cpu_trace_splits_by_named_scope(tmp_path):
    def f(x: jax.Array) -> jax.Array:
        def step(c: jax.Array, _: None) -> tuple[jax.Array, None]:
            with jax.named_scope("rollout"):
                c = jnp.tanh(c @ x)
            return c, None

        c, _ = jax.lax.scan(step, x, None, length=3)
        with jax.named_scope("learn"):
            return jnp.sort(c, axis=0)

    x = jnp.eye(64) * 0.5
    compiled = jax.jit(f).lower(x).compile()
    jax.block_until_ready(compiled(x))
    with jax.profiler.trace(str(tmp_path)):
        jax.block_until_ready(compiled(x))
    s = summarize_trace(load_events(trace_file(tmp_path)), compiled.as_text())
    assert set(s.phases) >= {"rollout", "learn"}
    assert 0 < s.busy_s <= s.span_s
    rollout = [op for op in s.ops if op.phase == "rollout"]
    assert rollout and all(op.calls == 3 for op in rollout)  # once per scan step
    assert any(op.opcode == "sort" and op.phase == "learn" and op.calls == 1 for op in s.ops)
    with pytest.raises(FileNotFoundError, match="no \\*.trace.json.gz"):
        trace_file(tmp_path / "empty")


# Phases each algorithm names besides "rollout" (collect) and "learn", which all name.
OWN_PHASES = {
    "A2C": {"advantages"},
    "PPO": {"advantages"},
    "REINFORCE": {"advantages"},
    "SARSA": {"targets"},
    "DQN": {"memory"},
    "SAC": {"memory"},
}


@pytest.mark.parametrize(("algo", "continuous", "memory"), CASES, ids=IDS)
def test_every_algorithm_names_its_phases(algo, continuous, memory):
    spec = small_spec(algo, continuous, memory)
    agent = get_algorithm(algo).make(spec)
    state = jax.eval_shape(agent.init, jax.ShapeDtypeStruct((2,), jnp.uint32))
    hlo = jax.jit(agent.update).lower(state).as_text(dialect="hlo", debug_info=True)
    phases = set(phase_of(hlo_instructions(hlo)).values())
    assert {"rollout", "learn", *OWN_PHASES.get(algo, ())} <= phases
    assert ("memory" in phases) == (memory != "OnPolicyBatch")  # replay writes, named
