"""Multi-device Trials: the seed axis sharded over 4 forced CPU host devices.

The device count is fixed when jax's backend starts, so the sharded Trial trains in a
subprocess with ``--xla_force_host_platform_device_count=4`` appended to ``XLA_FLAGS``
(``jaxlab/__init__.py`` then appends its own flag). Meanwhile this process (one device)
trains the same spec, and the two final states are compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np

from jaxlab.lab.trial import Trial
from jaxlab.spec import spec_from_dict
from tests.conftest import REPO, TINY

CHILD = r"""
import contextlib, io, json, sys, tempfile
import jaxlab
import jax
import numpy as np
from jaxlab.runtime.checkpoint import Checkpointer
from jaxlab.runtime.run import train
from jaxlab.spec import spec_from_dict
from jaxlab.lab.trial import Trial

raw, out_dir = json.loads(sys.argv[1]), sys.argv[2]
jax.config.update("jax_compilation_cache_dir", out_dir + "/cache")  # train reuses the programs
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
spec = spec_from_dict(raw)

def devices_of(tree):
    return sorted({len(x.sharding.device_set) for x in jax.tree.leaves(tree)})

def same(a, b):
    la, lb = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
    return all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))

trial = Trial(spec)
state = trial.init()
for i in range(trial.derived.num_chunks):
    state, metrics = trial.chunk(state, i)
out = {
    "device_count": jax.device_count(),
    "state_devices": devices_of(state),
    "shard_rows": sorted({s.data.shape[0] for x in jax.tree.leaves(state) for s in x.addressable_shards}),
}
leaves = jax.tree.leaves(jax.device_get((state, metrics)))
np.savez(out_dir + "/sharded.npz", *leaves)
with tempfile.TemporaryDirectory() as root:
    result = train(spec, root=root, progress=False, report=False)
    restored, _ = Checkpointer(result.run_dir / "checkpoints", keep=3).restore(trial.abstract_state())
    out["restored_devices"] = devices_of(restored)
    out["train_equal"] = same(result.state, state)
    out["restored_equal"] = same(restored, state)
for sessions in (6, 7):  # 6 shard over 3 of the 4 devices, 7 over none; each warns
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        odd = Trial(spec_from_dict({**raw, "meta": {**raw["meta"], "max_session": sessions}}))
    used = 1 if odd.sharding is None else len(odd.sharding.mesh.devices.flat)
    out[f"devices_for_{sessions}"] = [used, odd.per_device, err.getvalue().strip()]
print(json.dumps(out))
"""


def test_seed_axis_sharded_over_four_devices_matches_one_device(tmp_path):
    raw = {**TINY, "meta": {**TINY["meta"], "max_session": 4, "eval_frequency": 0}}
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(raw), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:  # the one-device reference trains here while the child runs
        trial = Trial(spec_from_dict(raw))
        assert trial.sharding is None and jax.local_device_count() == 1
        state = trial.init()
        for i in range(trial.derived.num_chunks):
            state, metrics = trial.chunk(state, i)
        reference = jax.tree.leaves(jax.device_get((state, metrics)))
        stdout, stderr = child.communicate(timeout=300)
    finally:
        child.kill()
    assert child.returncode == 0, stderr[-3000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["device_count"] == 4
    assert out["state_devices"] == [4] and out["shard_rows"] == [1]  # one session per device
    with np.load(tmp_path / "sharded.npz") as sharded:
        leaves = [sharded[f"arr_{i}"] for i in range(len(sharded.files))]
    assert len(leaves) == len(reference)
    # Not bit-identical: XLA optimises a 4-partition module with a different pass pipeline
    # than a one-device one (the optimised HLO differs in a few arithmetic rewrites, e.g.
    # the count of divides), so float results agree to rounding. Integer leaves (keys,
    # counters, env step counts) are exact.
    for x, y in zip(leaves, reference, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(x, y)
    # train and its checkpoints carry the sharded state unchanged (bit for bit).
    assert out["train_equal"] and out["restored_equal"] and out["restored_devices"] == [4]
    # A session count the devices do not divide uses the most of them that it fills.
    warning = "jaxlab: warning: {} sessions do not divide over 4 devices: training on {} of them"
    assert out["devices_for_6"][:2] == [3, 2]
    assert out["devices_for_6"][2].startswith(warning.format(6, 3))
    assert out["devices_for_7"][:2] == [1, 7]
    assert out["devices_for_7"][2].startswith(warning.format(7, 1))
