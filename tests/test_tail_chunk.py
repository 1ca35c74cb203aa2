"""No host round trip per update or env step on an accelerator (issue #28, finding 7).

On an accelerator a ``lax.cond`` on a device value copies its predicate to the host and
waits for it. CPU keeps its free conds (:func:`jaxlab.rl.branching.cheap_conds`); these
tests make the programs as an accelerator gets them (``cheap_conds`` false) and check
that no update or env step sits behind a cond there, that a run's short last chunk is a
tail program of its own that trains exactly the budget, and that it trains as the CPU's
masked chunk does.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.lab import trial as trial_module
from jaxlab.lab.session import make_chunk
from jaxlab.lab.trial import Trial
from jaxlab.logging.table import read_rows
from jaxlab.rl import branching
from jaxlab.runtime.checkpoint import Checkpointer
from jaxlab.runtime.run import train
from jaxlab.spec import load_spec, spec_from_dict
from jaxlab.tools.profiling import count_primitive
from tests.conftest import REPO

INDEX = jax.ShapeDtypeStruct((), jnp.int32)
KEY = jax.ShapeDtypeStruct((2,), jnp.uint32)


@pytest.fixture
def accelerator(monkeypatch):
    """Programs built as on an accelerator, on this CPU."""
    monkeypatch.setattr(trial_module, "cheap_conds", lambda platform: False)
    monkeypatch.setattr(branching, "cheap_conds", lambda platform: False)


def chunk_conds(spec, **kwargs) -> int:
    """The conds in one unbatched session's chunk of ``spec`` (no evaluation)."""
    agent = get_algorithm(spec.agent.algorithm.name).make(spec)
    state = jax.eval_shape(agent.init, KEY)
    chunk = make_chunk(agent, spec.derived, None, **kwargs)
    return count_primitive(jax.make_jaxpr(chunk)(state, INDEX).jaxpr, "cond")


# Shipped specs, and the conds one unbatched update has on CPU: learning only once the
# replay holds ``learning_starts`` (DQN, SAC, TD3, CrossQ), a self-imitation step only
# once its memory holds a batch, an env restart only on steps where an episode ended (the
# adapter of the suites other than gymnax).
CPU_CONDS = {
    "ppo/ppo_cartpole.yaml": 0,
    "dqn/ddqn_per_cartpole.yaml": 1,
    "sac/sac_pendulum.yaml": 1,
    "a2c/a2c_sil_cartpole.yaml": 1,
    "crossq/crossq_cartpole.yaml": 1,
    "td3/td3_brax_inverted_pendulum.yaml": 2,
}


@pytest.mark.parametrize("path", sorted(CPU_CONDS))
def test_no_update_or_env_step_waits_on_a_cond_on_an_accelerator(path, monkeypatch):
    """One session unbatched, as a 1-seed Trial runs it: a per-session predicate is then a
    real cond, not the select ``vmap`` makes of it. The CPU keeps its conds."""
    spec = load_spec(REPO / "specs" / path, shrink=True)
    assert chunk_conds(spec, updates=2) == CPU_CONDS[path]
    assert chunk_conds(spec) == CPU_CONDS[path] + 1  # + skipping the surplus updates
    monkeypatch.setattr(branching, "cheap_conds", lambda platform: False)
    assert chunk_conds(spec, updates=2) == 0


def run_chunks(trial: Trial) -> tuple:
    """Every chunk of ``trial`` in the calls ``train`` would make at most: each group as
    long as ``group_limit`` allows. Returns (final state, [(start, count)], updates per
    chunk)."""
    state, calls, updates, i = trial.init(), [], [], 0
    while i < trial.derived.num_chunks:
        count = trial.group_limit(i)
        state, metrics = trial.dispatch(state, i, count)
        calls.append((i, count))
        updates += [int(u) for u in np.asarray(metrics["updates"])[0, :count]]
        i += count
    return jax.device_get(state), calls, updates


def test_a_short_last_chunk_is_a_tail_program_that_trains_exactly_the_budget(
    tiny_raw, accelerator, monkeypatch
):
    # 11 updates in chunks of 2: five full chunks, then a tail of one update.
    spec = spec_from_dict(tiny_raw, ["env.max_frame=352", "meta.eval_frequency=128"])
    d = spec.derived
    assert (d.num_updates, d.num_chunks, d.last_chunk_updates) == (11, 6, 1)
    trial = Trial(spec)
    assert [trial.group_limit(i) for i in range(6)] == [5, 4, 3, 2, 1, 1]
    state, calls, updates = run_chunks(trial)
    assert calls == [(0, 5), (5, 1)]
    assert updates == [2, 2, 2, 2, 2, 1]
    assert np.all(np.asarray(state.update_step) == 11)
    with pytest.raises(ValueError, match=r"count must be in 1..4 from chunk 1, got 5"):
        trial.dispatch(trial.init(), 1, 5)  # a group may not take the tail along

    # The CPU's one program, masking the last chunk's surplus update, trains the same
    # run: equal up to float rounding (the two are different XLA programs).
    monkeypatch.setattr(trial_module, "cheap_conds", lambda platform: True)
    masked, calls, masked_updates = run_chunks(Trial(spec))
    assert calls == [(0, 6)] and masked_updates == updates
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(masked), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)


def test_a_run_with_a_tail_program_trains_compiles_it_once_and_resumes(
    tiny_raw, tmp_path, accelerator, caplog
):
    spec = spec_from_dict(
        tiny_raw, ["env.max_frame=352", "meta.checkpoint_frequency=128", "meta.checkpoint_keep=9"]
    )
    jax.config.update("jax_log_compiles", True)
    jax.config.update("jax_enable_compilation_cache", False)  # every program really compiles
    try:
        with caplog.at_level(logging.WARNING):
            result = train(spec, root=tmp_path, progress=False, report=False)
    finally:
        jax.config.update("jax_log_compiles", False)
        jax.config.update("jax_enable_compilation_cache", True)
    compiled = [r for r in caplog.records if "Finished XLA compilation of jit(group)" in r.msg]
    assert len(compiled) == 2  # the group program and the tail
    summary = result.summary
    assert summary["status"] == "complete" and summary["frames_per_session"] == 352
    assert np.all(np.asarray(result.state.update_step) == 11)
    rows = read_rows(result.run_dir)[0]
    assert [r["frame"] for r in rows] == ["64", "128", "192", "256", "320", "352"]
    # From its checkpoint at frame 256 (chunk 3), chunks 4 and 5 (the tail) give the run's
    # final state bit for bit.
    trial = Trial(spec)
    state, meta = Checkpointer(result.run_dir / "checkpoints", keep=9).restore(trial.init(), 256)
    assert meta["chunk"] == 3
    for i in (4, 5):
        state, _ = trial.chunk(state, i)
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(result.state), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


SHARDED_CHILD = r"""
import json, sys, tempfile
import jaxlab
import jax
import numpy as np
from jaxlab.lab import trial
from jaxlab.runtime.run import train
from jaxlab.spec import spec_from_dict

trial.cheap_conds = lambda platform: False  # as on an accelerator
spec = spec_from_dict(json.loads(sys.argv[1]), ["env.max_frame=352"])
with tempfile.TemporaryDirectory() as root:
    result = train(spec, root=root, progress=False, report=False)
state = result.state
print(json.dumps({
    "devices": sorted({len(x.sharding.device_set) for x in jax.tree.leaves(state)}),
    "update_step": np.asarray(state.update_step).tolist(),
    "frames": result.summary["frames_per_session"],
    "limits": [trial.Trial(spec).group_limit(i) for i in (0, 5)],  # the tail alone
}))
"""


def test_a_tail_program_runs_on_a_trial_sharded_over_devices(tiny_raw):
    """Two sessions over two forced CPU devices (a subprocess: the device count is fixed
    when jax starts), the last chunk a tail program: it trains every session to the
    budget, sharded like the group program."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run(
        [sys.executable, "-c", SHARDED_CHILD, json.dumps(tiny_raw)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"devices": [2], "update_step": [11, 11], "frames": 352, "limits": [5, 1]}
