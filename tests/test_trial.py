"""The Trial: same code vmapped over seeds, compiled once, deterministic, checkpointable."""

from __future__ import annotations

import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.lab import seeds, xla_options
from jaxlab.lab import trial as trial_module
from jaxlab.lab.evaluate import EVAL_METRICS, policy_state
from jaxlab.lab.session import session_key
from jaxlab.lab.trial import Trial, over_sessions
from jaxlab.logging.table import read_rows
from jaxlab.runtime import loop as loop_module
from jaxlab.runtime.checkpoint import FORMAT_VERSION, Checkpointer
from jaxlab.runtime.run import train
from jaxlab.spec import spec_from_dict


def run_trial(spec, keys=None):
    trial = Trial(spec, keys)
    state = trial.init()
    for i in range(trial.derived.num_chunks):
        state, _ = trial.chunk(state, i)
    return jax.device_get(state)


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


@pytest.mark.gpu
def test_same_spec_and_seed_is_bit_identical(tiny_raw):
    spec = spec_from_dict(tiny_raw)
    a, b = run_trial(spec), run_trial(spec)
    assert leaves_equal(a, b)
    other = run_trial(spec_from_dict(tiny_raw, ["meta.random_seed=4"]))
    assert not leaves_equal(a.params, other.params)


def test_sessions_differ_and_session_k_matches_single_session_trial(tiny_raw):
    four = run_trial(spec_from_dict(tiny_raw, ["meta.max_session=4"]))
    p = jax.tree.leaves(four.params)
    assert not np.array_equal(p[0][0], p[0][1])  # sessions really have different seeds
    one_spec = spec_from_dict(tiny_raw, ["meta.max_session=1"])
    one = run_trial(one_spec, jnp.stack([session_key(3, 2)]))
    # Equal up to float rounding: XLA CPU may pick different matmul kernels for a batch
    # of 4 and a batch of 1, so bits can differ in the last place.
    for x, y in zip(jax.tree.leaves(four.params), jax.tree.leaves(one.params), strict=True):
        np.testing.assert_allclose(x[2], y[0], rtol=1e-5, atol=1e-6)
    assert int(one.update_step[0]) == int(four.update_step[2]) == 10


def test_one_session_runs_unbatched_with_the_same_shapes_and_values():
    """A 1-session program is ``fn`` itself on squeezed inputs, not a vmap of one: a
    branch on per-session data stays a real ``cond`` (vmap turns it into a select of both
    branches), and the outputs match vmap's in shape, dtype, weak type and value."""

    def fn(state, scale):
        x = jax.lax.cond(state["x"][0] > 0, lambda: state["x"] * scale, lambda: -state["x"])
        return {"x": x, "step": state["step"] + 1}

    state = {"x": jnp.array([[1.5, -2.0]], jnp.float32), "step": jnp.zeros((1,), jnp.int32)}
    one, batched = over_sessions(fn, 1, (0, None)), jax.vmap(fn, in_axes=(0, None))
    got, want = one(state, 2.0), batched(state, 2.0)
    assert jax.tree.map(jax.typeof, got) == jax.tree.map(jax.typeof, want)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(x, y)

    def primitives(f):
        return {e.primitive.name for e in jax.make_jaxpr(f)(state, 2.0).eqns}

    assert "cond" in primitives(one) and "cond" not in primitives(batched)
    three = jax.tree.map(lambda x: jnp.concatenate([x, x, x]), state)  # more: plain vmap
    np.testing.assert_array_equal(over_sessions(fn, 3, (0, None))(three, 2.0)["x"][2], want["x"][0])


def map_lengths(trial: Trial) -> list[int]:
    """Lengths of the scans at the top level of the init program (inside its one jit)."""
    (program,) = jax.make_jaxpr(trial._init)(trial.keys).jaxpr.eqns
    return [e.params["length"] for e in program.params["jaxpr"].eqns if e.primitive.name == "scan"]


def test_many_sessions_init_in_batches_to_the_same_state(tiny_raw, monkeypatch):
    """Past INIT_BATCHED_PARAMS parameters in all (on CPU), init is a ``lax.map`` over
    batches of sessions, optimised: the same state as the one-program init, batch
    remainder included (5 sessions in batches of 2)."""
    spec = spec_from_dict(tiny_raw, ["meta.max_session=5"])
    vmapped = Trial(spec)
    assert vmapped._init_options == xla_options.FAST_COMPILER_OPTIONS
    monkeypatch.setattr(trial_module, "INIT_BATCHED_PARAMS", 5 * 100)  # tiny_raw: > 100 each
    monkeypatch.setattr(trial_module, "INIT_BATCH", 2)
    batched = Trial(spec)
    assert batched._init_options == xla_options.INIT_BATCHED_OPTIONS
    # The map's loop at the program's top level: 2 batches of 2, the fifth session after.
    assert map_lengths(batched) == [2] and map_lengths(vmapped) == []
    got, want = batched.init(), vmapped.init()
    assert jax.tree.map(jax.typeof, got) == jax.tree.map(jax.typeof, want)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert any(not np.array_equal(x[3], x[4]) for x in jax.tree.leaves(got.params))


def test_hyperparameters_are_array_leaves(tiny_raw):
    spec = spec_from_dict(tiny_raw, ["agent.algorithm.gamma=0.9", "agent.net.optim.lr=0.002"])
    trial = Trial(spec)
    state = trial.init()
    assert state.hyper.gamma.shape == (2,) and np.allclose(state.hyper.gamma, 0.9)
    assert np.allclose(state.hyper.lr, 0.002)
    # A different numeric hyperparameter runs through the already-compiled chunk.
    trial.compile(state)
    state = state.replace(hyper=state.hyper.replace(lr=jnp.array([1e-3, 5e-3], jnp.float32)))
    state, metrics = trial.chunk(state, 0)
    assert metrics["lr"].shape == (2,) and not np.isclose(metrics["lr"][0], metrics["lr"][1])


def test_fast_compile_is_deterministic_and_trains_like_the_optimized_build(tiny_raw):
    """``meta.compile: fast`` (what shrink and dev runs use) builds a different program:
    the same run twice is bit-identical, and it stays within float noise of the
    optimized build."""
    fast = spec_from_dict(tiny_raw, ["meta.compile=fast"])
    assert spec_from_dict(tiny_raw).meta.compile == "optimized"
    a, b = run_trial(fast), run_trial(fast)
    assert leaves_equal(a, b)
    optimized = run_trial(spec_from_dict(tiny_raw))
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(optimized.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5)


def test_group_program_compiles_with_the_modes_options(tiny_raw, monkeypatch):
    """``optimized`` on CPU compiles the group program with LLVM at -O2, ``fast`` with the
    backend optimisation off; the options reach XLA (every ``Lowered.compile`` recorded)."""
    seen = []
    real = jax.stages.Lowered.compile

    def recording(self, compiler_options=None):
        seen.append(compiler_options)
        return real(self, compiler_options)

    monkeypatch.setattr(jax.stages.Lowered, "compile", recording)
    for mode, want in [
        ("optimized", xla_options.OPTIMIZED_CPU_OPTIONS),
        ("fast", xla_options.FAST_COMPILER_OPTIONS),
    ]:
        trial = Trial(spec_from_dict(tiny_raw, [f"meta.compile={mode}"]))
        assert trial.compiler_options == want
        seen.clear()
        trial.compile(trial.abstract_state())
        assert seen == [want]  # the group program alone (init is built by init())
    assert xla_options.OPTIMIZED_CPU_OPTIONS == {"xla_backend_optimization_level": 2}
    assert xla_options.group_options("optimized", "gpu") is None  # XLA's defaults there


def test_each_backend_gets_its_own_compile_options():
    """A GPU never gets the CPU's backend optimisation level 0 (it would run LLVM
    unoptimised there): its fast build turns autotuning off, and ``meta.deterministic``
    adds XLA's deterministic ops; CPU options are unchanged by either."""
    fast_gpu = {"xla_gpu_autotune_level": 0}
    deterministic = {"xla_gpu_deterministic_ops": True, "xla_gpu_autotune_level": 0}
    for gpu in ("gpu", "cuda", "rocm"):
        assert xla_options.group_options("fast", gpu) == fast_gpu
        assert xla_options.group_options("optimized", gpu, deterministic=True) == deterministic
        assert xla_options.group_options("fast", gpu, deterministic=True) == deterministic
        assert trial_module.init_program(lambda k: k, 4, 100, gpu)[1] == fast_gpu
    for det in (False, True):
        assert xla_options.group_options("fast", "cpu", det) == xla_options.FAST_COMPILER_OPTIONS
        assert xla_options.group_options("optimized", "tpu", det) is None
    assert trial_module.init_program(lambda k: k, 4, 100, "tpu")[1] == {}


@pytest.mark.gpu
def test_deterministic_mode_traces_full_precision_matmuls_and_is_recorded(tiny_raw, tmp_path):
    """``meta.deterministic`` traces the programs under float32 matmul precision (a GPU
    would run TF32 otherwise) and the run's provenance.json says so. On CPU the results
    are the same bits as without it; on a GPU, two deterministic runs are."""

    def group_text(trial):  # what Trial.compile lowers
        with xla_options.matmul_precision(trial.spec):
            lowered = trial._chunk_jit.lower(trial.abstract_state(), *[trial_module.INDEX] * 2)
        return lowered.as_text()

    plain, exact = spec_from_dict(tiny_raw), spec_from_dict(tiny_raw, ["meta.deterministic=true"])
    assert "precision = [HIGHEST, HIGHEST]" in group_text(Trial(exact))
    assert "precision = [HIGHEST, HIGHEST]" not in group_text(Trial(plain))
    on_cpu = jax.devices()[0].platform == "cpu"
    assert leaves_equal(run_trial(exact), run_trial(plain if on_cpu else exact))
    run = train(exact, root=tmp_path, progress=False, report=False).run_dir
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["numerics"] == {"deterministic": True, "matmul_precision": "highest"}


def test_chunk_compiles_once_per_run(tiny_raw, tmp_path, caplog):
    """Every chunk of a run goes through one compiled program (jax_log_compiles count)."""
    spec = spec_from_dict(tiny_raw)
    assert spec.derived.num_chunks == 5
    jax.config.update("jax_log_compiles", True)
    jax.config.update("jax_enable_compilation_cache", False)  # every program really compiles
    try:
        with caplog.at_level(logging.WARNING):
            train(spec, root=tmp_path, progress=False, report=False)
    finally:
        jax.config.update("jax_log_compiles", False)
        jax.config.update("jax_enable_compilation_cache", True)
    chunk_compiles = [
        r for r in caplog.records if "Finished XLA compilation of jit(group)" in r.getMessage()
    ]
    assert len(chunk_compiles) == 1


def test_a_run_traces_the_update_once(tiny_raw, tmp_path, monkeypatch):
    """Metric shapes, column names and the group program share one trace of the update
    (each trace of PPO's update costs a fraction of a second of start-up)."""
    from jaxlab.algorithms.ppo import PPO

    spec = spec_from_dict(tiny_raw, ["meta.eval_frequency=128"])
    traces, update = [], PPO.update

    def counting(self, state):
        traces.append(1)
        return update(self, state)

    monkeypatch.setattr(PPO, "update", counting)
    jax.config.update("jax_enable_compilation_cache", False)  # a cache hit skips the trace
    try:
        summary = train(spec, root=tmp_path, progress=False, report=False).summary
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
    assert summary["status"] == "complete"
    assert len(traces) == 1


def test_grouped_calls_write_what_one_chunk_per_call_writes(tiny_raw, tmp_path, monkeypatch):
    """Several log points per call: the same rows, checkpoints and final state as one chunk
    per call; groups never run past a chunk that evaluates or checkpoints."""
    spec = spec_from_dict(
        tiny_raw,
        ["env.max_frame=640", "meta.eval_frequency=256", "meta.checkpoint_frequency=384"],
    )
    assert spec.derived.num_chunks == 10
    calls, dispatch = [], Trial.dispatch

    def spy(self, state, start, count=1):
        calls.append((start, count))
        return dispatch(self, state, start, count)

    monkeypatch.setattr(Trial, "dispatch", spy)
    runs = {}
    for name, seconds in (("grouped", 1e9), ("single", 0.0)):
        monkeypatch.setattr(loop_module, "GROUP_SECONDS", seconds)
        calls.clear()
        result = train(spec, root=tmp_path / name, progress=False, report=False)
        runs[name] = (list(calls), result)
    single, grouped = runs["single"][0], runs["grouped"][0]
    assert single == [(i, 1) for i in range(10)]
    # chunk 0 and 1 alone (no pace measured yet), then up to each eval (3, 7, 9) or
    # checkpoint (5: frame 384) chunk
    assert grouped == [(0, 1), (1, 1), (2, 2), (4, 2), (6, 2), (8, 2)]
    a, b = runs["grouped"][1], runs["single"][1]
    for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for k in range(2):
        rows = [read_rows(r.run_dir)[k] for r in (a, b)]
        assert len(rows[0]) == len(rows[1]) == 10
        for x, y in zip(*rows, strict=True):
            timing = ("wall_time", "fps")
            assert {c: v for c, v in x.items() if c not in timing} == {
                c: v for c, v in y.items() if c not in timing
            }
            assert float(x["fps"]) > 0 and float(x["wall_time"]) > 0
        times = [float(r["wall_time"]) for r in rows[0]]
        assert times == sorted(times)
    steps = [sorted(p.name for p in (r.run_dir / "checkpoints").iterdir()) for r in (a, b)]
    assert steps[0] == steps[1]


def test_one_call_of_several_chunks_equals_the_chunks_one_by_one(tiny_raw):
    trial = Trial(spec_from_dict(tiny_raw))
    assert trial.group_size == 5  # all five chunks of the run fit in one call
    one_by_one, _ = trial.chunk(trial.init(), 0)
    rows = []
    for i in (1, 2, 3):
        one_by_one, m = trial.chunk(one_by_one, i)
        rows.append(m)
    state, _ = trial.chunk(trial.init(), 0)
    state, stacked = trial.dispatch(state, 1, 3)
    stacked = jax.device_get(stacked)
    for j, row in enumerate(rows):
        for k, v in row.items():
            np.testing.assert_array_equal(stacked[k][:, j], v, err_msg=k)
    for k, v in stacked.items():  # the slots past count are skipped: zeros
        assert not np.any(v[:, 3:]), k
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(one_by_one), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match="count must be in 1..1 from chunk 4"):
        trial.dispatch(state, 4, 6)


def test_last_chunk_masks_updates_past_the_budget(tiny_raw):
    # 11 updates in chunks of 2: six chunks, the last one does a single update.
    spec = spec_from_dict(tiny_raw, ["env.max_frame=352"])
    assert (spec.derived.num_updates, spec.derived.num_chunks) == (11, 6)
    trial = Trial(spec)
    state = trial.init()
    updates = []
    for i in range(6):
        state, m = trial.chunk(state, i)
        updates.append(int(m["updates"][0]))
    assert updates == [2, 2, 2, 2, 2, 1]
    assert np.all(np.asarray(state.update_step) == 11)
    assert trial.frames_after(5) == 352


def test_checkpoint_round_trip(tiny_raw, tmp_path):
    spec = spec_from_dict(tiny_raw)
    trial = Trial(spec)
    state, _ = trial.chunk(trial.init(), 0)
    host = jax.device_get(state)
    ckpt = Checkpointer(tmp_path / "ck", keep=2, metadata={"spec": spec.to_dict()})
    ckpt.save(64, state, {"spec": spec.to_dict(), "git_sha": "abc"})
    ckpt.close()
    restored, meta = Checkpointer(tmp_path / "ck", keep=2).restore(trial.init())
    assert leaves_equal(host, jax.device_get(restored))
    assert jax.tree.structure(host) == jax.tree.structure(restored)
    assert (
        meta["frame"] == 64
        and meta["git_sha"] == "abc"
        and meta["format_version"] == FORMAT_VERSION
    )
    assert spec_from_dict(meta["spec"]) == spec
    # The restored state trains on exactly like the original.
    a, _ = trial.chunk(state, 1)
    b, _ = trial.chunk(restored, 1)
    assert leaves_equal(jax.device_get(a), jax.device_get(b))


@pytest.mark.parametrize("normalize", [False, True])
def test_state_structure_and_dtypes_fixed_across_chunks(tiny_raw, normalize):
    flag = str(normalize).lower()
    spec = spec_from_dict(tiny_raw, [f"env.normalize_obs={flag}", f"env.normalize_reward={flag}"])
    trial = Trial(spec)
    s0 = trial.init()
    shapes0 = jax.tree.map(lambda x: (x.shape, x.dtype), s0)
    s1, metrics = trial.chunk(s0, 0)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), s1) == shapes0
    assert all(np.all(np.isfinite(v)) for k, v in metrics.items() if k not in EVAL_METRICS)
    assert all(np.all(np.isnan(metrics[k])) for k in EVAL_METRICS)  # chunk 0 does not evaluate


def test_mid_run_checkpoint_continues_to_the_same_final_state(tiny_raw, tmp_path):
    """Checkpoints written while later chunks run (donated buffers) hold the right state."""
    spec = spec_from_dict(tiny_raw, ["meta.checkpoint_frequency=64", "meta.checkpoint_keep=5"])
    result = train(spec, root=tmp_path, progress=False, report=False)
    trial = Trial(spec)
    ckpt = Checkpointer(result.run_dir / "checkpoints", keep=5)
    assert ckpt.steps() == [64, 128, 192, 256, 320]
    state, meta = ckpt.restore(trial.init(), 192)
    assert meta["chunk"] == 2
    for i in (3, 4):
        state, _ = trial.chunk(state, i)
    assert leaves_equal(jax.device_get(state), jax.device_get(result.state))


def test_default_keys_are_the_per_session_keys(tiny_raw):
    trial = Trial(spec_from_dict(tiny_raw, ["meta.max_session=3"]))
    expected = np.stack([np.asarray(session_key(3, k)) for k in range(3)])
    np.testing.assert_array_equal(np.asarray(trial.keys), expected)


def test_a_failed_checkpoint_save_fails_the_run(tiny_raw, tmp_path, monkeypatch):
    """Saves run on the loop's worker thread; an error there still ends ``train`` with it,
    and the rows recorded before it are on disk."""
    spec = spec_from_dict(tiny_raw)
    saves = []

    def full_disk(self, frame, state, meta):
        saves.append(frame)
        raise OSError("No space left on device")

    monkeypatch.setattr(Checkpointer, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train(spec, root=tmp_path, progress=False, report=False)
    assert len(saves) == 1  # the loop stopped at the first failed save
    (run,) = [p.parent for p in tmp_path.rglob("session_0") if p.is_dir()]
    rows = read_rows(run)[0]
    assert rows and int(rows[-1]["frame"]) >= saves[0]


def test_a_billion_sessions_are_refused_before_their_keys_exist(tiny_raw, monkeypatch):
    """The keys of 1e9 sessions are 8 GB: the state is sized from shapes first, so the
    refusal comes before any array (the keys' program is never built)."""
    from jaxlab.spec import SpecError

    spec = spec_from_dict(tiny_raw, ["meta.max_session=1000000000"])
    monkeypatch.setattr(seeds, "_keys_program", None)  # calling it would fail
    with pytest.raises(SpecError, match=r"^meta\.max_session: the Trial state needs"):
        seeds.default_keys(spec)


def test_a_snapshot_is_a_copy_in_new_buffers_made_by_one_program():
    """The state synced at an eval or checkpoint point is copied before the next group
    donates it: equal values in buffers of its own, every leaf (each shape and dtype) in
    one compiled program, not one eager copy per leaf shape."""
    state = {"w": jnp.arange(6.0).reshape(2, 3), "n": (jnp.ones(4, jnp.uint8), jnp.int32(7))}
    programs = loop_module._copy_state._cache_size  # (other tests' states compiled their own)
    before = programs()
    copy = loop_module._copy_state(state)
    for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(copy), strict=True):
        assert old.dtype == new.dtype and np.array_equal(old, new)
        assert old.unsafe_buffer_pointer() != new.unsafe_buffer_pointer()
    loop_module._copy_state(jax.tree.map(lambda x: x + 1, state))  # same shapes: no new one
    assert programs() == before + 1


def test_best_holds_the_policy_state_and_eval_points_copy_only_that(
    tiny_raw, tmp_path, monkeypatch
):
    """``best`` saves parameters and normaliser statistics only (no optimiser, env or
    replay state), the same values as the checkpoint at the same frame; a sync point that
    evaluates without checkpointing copies only that much of the state on the device."""
    copies, copy_state = [], loop_module._copy_state

    def spy(tree):
        copies.append(type(tree).__name__)
        return copy_state(tree)

    monkeypatch.setattr(loop_module, "_copy_state", spy)
    spec = spec_from_dict(tiny_raw, ["meta.eval_frequency=64", "meta.checkpoint_frequency=128"])
    result = train(spec, root=tmp_path, progress=False, report=False)
    # chunks 0-3 evaluate (frames 64..256); 1 and 3 checkpoint too; 4 is the last (no copy)
    assert copies == ["PolicyState", "OnPolicyState", "PolicyState", "OnPolicyState"]
    run = result.run_dir
    (best,) = [p for p in (run / "best").iterdir() if p.name.isdigit()]
    meta = json.loads((best / "meta" / "metadata").read_text())
    assert meta["contents"] == "policy"
    policy = policy_state(result.state)
    assert len(meta["fingerprint"]) == len(jax.tree.leaves(policy))
    assert len(meta["fingerprint"]) < len(jax.tree.leaves(result.state))
    trial = Trial(spec)
    frame = int(best.name)
    restored, _ = Checkpointer(run / "best", keep=1).restore(
        policy_state(trial.abstract_state()), frame
    )
    state = trial.init()
    for i in range(frame // 64):  # the run up to that frame, chunk by chunk
        state, _ = trial.chunk(state, i)
    assert leaves_equal(jax.device_get(restored), jax.device_get(policy_state(state)))
