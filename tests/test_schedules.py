"""Schedules by hand, and the memory budget refusing a Trial state that cannot fit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

from jaxlab.config.parse import build
from jaxlab.memory import ReplayBuffer, check_fits, tree_bytes
from jaxlab.memory.budget import available_bytes, check_program_fits, program_bytes
from jaxlab.rl.schedules import ScheduleSpec
from jaxlab.spec import SpecError


def value(spec: ScheduleSpec, step: int) -> float:
    return float(jax.jit(spec.value)(spec.hyper(), jnp.int32(step)))


def test_no_decay_is_constant() -> None:
    s = ScheduleSpec("no_decay", 0.3, 0.0, 0, 100)
    assert [value(s, t) for t in (0, 50, 10_000)] == pytest.approx([0.3, 0.3, 0.3])


def test_linear_decay_holds_before_start_and_after_end() -> None:
    s = ScheduleSpec("linear_decay", 1.0, 0.1, 100, 1100)
    got = [value(s, t) for t in (0, 100, 600, 1100, 5000)]
    assert got == pytest.approx([1.0, 1.0, 0.55, 0.1, 0.1])


def test_rate_decay_by_hand() -> None:
    # p = 0.5 of the window, 20 decays over it: 1.0 * 0.9 ** 10 = 0.3486784401
    s = ScheduleSpec("rate_decay", 1.0, 0.05, 0, 1000, decay_rate=0.9, frequency=20)
    assert value(s, 500) == pytest.approx(0.9**10, rel=1e-5)
    assert value(s, 1000) == pytest.approx(0.9**20, rel=1e-5)  # 0.1216 > end_val 0.05
    s = ScheduleSpec("rate_decay", 1.0, 0.2, 0, 1000, decay_rate=0.9, frequency=20)
    assert value(s, 1000) == pytest.approx(0.2)  # floored at end_val


def test_periodic_decay_by_hand() -> None:
    # frequency 2: p = 0.25 -> cos(pi) = -1 -> wave 0 -> end_val; p = 0.5 -> wave 1.
    s = ScheduleSpec("periodic_decay", 1.0, 0.0, 0, 1000, frequency=2)
    assert value(s, 0) == pytest.approx(1.0)
    assert value(s, 250) == pytest.approx(0.0, abs=1e-6)
    assert value(s, 500) == pytest.approx(0.5)  # (1 - p) * wave = 0.5 * 1
    assert value(s, 1000) == pytest.approx(0.0, abs=1e-6)
    p = 0.1
    want = (1 - p) * 0.5 * (1 + math.cos(2 * math.pi * 2 * p))
    assert value(s, 100) == pytest.approx(want, rel=1e-5)


def test_a_number_is_a_constant_schedule() -> None:
    from dataclasses import dataclass, field

    from jaxlab.rl.schedules import constant

    @dataclass(frozen=True)
    class Cfg:
        coef: ScheduleSpec = field(default_factory=lambda: constant(0.5))

    assert build(Cfg, {"coef": 0.02}).coef == ScheduleSpec("no_decay", 0.02, 0.02)
    assert build(Cfg, {}).coef.start_val == 0.5
    with pytest.raises(SpecError, match="coef: must be a mapping"):
        build(Cfg, {"coef": "fast"})


def test_schedules_vmap_over_their_end_points() -> None:
    s = ScheduleSpec("linear_decay", 1.0, 0.0, 0, 10)
    hyper = jax.vmap(lambda a: s.hyper().replace(start_val=a))(jnp.array([1.0, 2.0]))
    got = jax.vmap(s.value, in_axes=(0, None))(hyper, jnp.int32(5))
    assert got.tolist() == pytest.approx([0.5, 1.0])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "linear_decay", "start_step": 10, "end_step": 10}, "end_step: must be greater"),
        ({"name": "rate_decay", "end_step": 5, "decay_rate": 1.5}, "decay_rate: must lie in"),
        ({"name": "periodic_decay", "end_step": 5, "frequency": 0}, "frequency: must be positive"),
        ({"name": "cosine"}, "name: must be one of"),
        ({"start_step": -1}, "start_step: must be >= 0"),
    ],
)
def test_bad_schedules_are_one_line_errors(raw: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        build(ScheduleSpec, raw, "agent.algorithm.explore_var")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("agent.algorithm.explore_var.")


def test_memory_budget_refuses_a_state_that_cannot_fit() -> None:
    one = {"obs": jnp.zeros((4,), jnp.float32), "action": jnp.int32(0)}
    buffer = jax.eval_shape(lambda: ReplayBuffer.create(one, 1_000_000))
    sessions = jax.eval_shape(lambda: jax.vmap(lambda _: ReplayBuffer.create(one, 1_000_000))(
        jnp.arange(16)
    ))  # fmt: skip
    assert tree_bytes(buffer) == 1_000_000 * 20 + 8
    assert tree_bytes(sessions) == 16 * tree_bytes(buffer)
    with pytest.raises(SpecError) as err:
        check_fits(sessions, 16, free=(512 * 2**20, "test device"))
    msg = str(err.value)  # one session fits: the session count is to blame
    assert msg.startswith("meta.max_session: the Trial state needs 0.30 GiB (16 sessions")
    assert "test device has 0.50 GiB free" in msg and "\n" not in msg
    with pytest.raises(SpecError, match=r"^agent\.memory\.capacity: .*\(16 sessions"):
        check_fits(sessions, 16, free=(32 * 2**20, "test device"))  # not even one fits
    # Sharded over 4 devices, each holds a quarter: that fits.
    assert check_fits(sessions, 16, devices=4, free=(512 * 2**20, "x")) == tree_bytes(sessions) // 4


def test_the_compiled_program_and_a_checkpoint_copy_must_fit_too() -> None:
    """After compiling, XLA's memory analysis counts the temporaries the state's size does
    not show; on a GPU the checkpoint's host copy is checked against host RAM."""
    state = jnp.zeros((1 << 20,), jnp.float32)  # 4 MiB, updated in place

    def step(s):  # a 1024 x 1024 matmul's product is a temporary of the next one
        a = s.reshape(1024, 1024)
        return ((a @ a) @ a).ravel()

    program = jax.jit(step, donate_argnums=0).lower(state).compile()
    need, temp = program_bytes(program)
    assert temp >= 4 << 20 and need >= temp + (4 << 20)
    mib = 2**20
    check_program_fits(program, 4 * mib, "env.num_envs", "cpu", free=(need + 4 * mib, "x"))
    with pytest.raises(SpecError) as err:
        check_program_fits(program, 4 * mib, "env.num_envs", "cpu", free=(need, "test device"))
    msg = str(err.value)
    assert msg.startswith("env.num_envs: the compiled training program needs ")
    assert "and a 4.0 MiB copy of the state at checkpoints, but test device has" in msg
    assert "lower meta.max_session or env.num_envs" in msg and "\n" not in msg
    roomy = (1 << 40, "gpu")
    check_program_fits(program, 4 * mib, "x", "gpu", free=roomy, host_free=(4 * mib, "host"))
    with pytest.raises(SpecError, match=r"a checkpoint copies the 4.0 MiB state to the host"):
        check_program_fits(program, 4 * mib, "x", "gpu", free=roomy, host_free=(mib, "host RAM"))


class FakeGpu:
    """A GPU as ``available_bytes`` sees it: its platform, kind and allocator stats."""

    platform, device_kind = "gpu", "NVIDIA H100 80GB HBM3"

    def __init__(self, **stats: int) -> None:
        self.stats = stats

    def memory_stats(self) -> dict[str, int]:
        return self.stats


def test_a_gpus_free_memory_counts_what_other_processes_took(tmp_path, monkeypatch):
    """JAX's limit is set when its backend starts; nvidia-smi sees the card now. What is
    free is the smaller of the allocator's room and the card's free memory plus the unused
    part of this process's own pool."""
    gib = 2**30
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    growing = FakeGpu(bytes_limit=75 * gib, bytes_in_use=5 * gib, pool_bytes=6 * gib)
    assert available_bytes(growing) == (70 * gib, "NVIDIA H100 80GB HBM3 (gpu)")  # no smi
    smi = tmp_path / "nvidia-smi"  # a fake: 10 GiB and 30 GiB free on the two cards
    smi.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\necho 10240\necho 30720\n')
    smi.chmod(0o755)
    # Not pre-allocated: others left 10 GiB, and 1 GiB of the pool is unused.
    assert available_bytes(growing)[0] == 11 * gib
    assert (tmp_path / "args").read_text().split() == [
        "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", "1,3",
    ]  # fmt: skip
    # Pre-allocated: the pool is this process's already, whatever else the card holds.
    preallocated = FakeGpu(bytes_limit=75 * gib, bytes_in_use=5 * gib, pool_bytes=75 * gib)
    assert available_bytes(preallocated)[0] == 70 * gib
    # An allocator that does not report its pool: its limit alone, as before.
    assert available_bytes(FakeGpu(bytes_limit=75 * gib, bytes_in_use=5 * gib))[0] == 70 * gib
    # One that gives no limit at all: the fuller card's free memory, not host RAM.
    assert available_bytes(FakeGpu())[0] == 10 * gib
    (tmp_path / "nvidia-smi").unlink()
    assert available_bytes(FakeGpu())[1] == "host RAM"  # nothing else to go by
