"""Drivers keep off the accelerator; Ray workers sharing a GPU fit (issue #28, 1 and 5).

A driver whose Trials run in Ray workers (``search``; ``benchmark`` on Ray) and the
``seed_scaling.py`` parent must not start JAX on a GPU: JAX's first array there takes 75%
of the card. On a CPU-only machine that cannot be seen in the devices, so the probes run
each driver in a fresh process and record JAX's platform setting at the moment its
backend starts (``cpu``: pinned in time; ``None``: JAX would take every platform).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from jaxlab.experiment import devices, worker
from jaxlab.experiment.devices import GIB, idle_gpu_warning, keep_off_accelerator, memory_fraction
from jaxlab.experiment.plan import ExperimentPlan
from jaxlab.memory.cards import mib_values, visible_card_bytes
from tests.conftest import REPO, TINY

# Run first in each probe: records jax_platforms when JAX's backend starts, and
# ``report(**extra)`` prints what the probe saw as its last line (JSON).
PRELUDE = """
import json, os, subprocess, sys
import jax
from jax._src import xla_bridge

seen = []
_backends = xla_bridge.backends

def _recording(*args, **kw):
    if not seen and not xla_bridge.backends_are_initialized():
        seen.append(jax.config.jax_platforms)
    return _backends(*args, **kw)

xla_bridge.backends = _recording

def report(**extra):
    started = xla_bridge.backends_are_initialized()
    print(json.dumps({
        "platforms_at_start": seen[0] if seen else "not started",
        "backends": sorted(_backends()) if started else [],
        "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS"), **extra,
    }))
"""


def probe(script: str) -> dict:
    """Run ``PRELUDE + script`` in a fresh Python (no RAY_ADDRESS/JAX_PLATFORMS); its
    report."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "JAX_PLATFORMS")}
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # a GPU test machine: take little
    code = PRELUDE + textwrap.dedent(script)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_search_driver_pins_its_jax_to_the_cpu_and_its_children_do_not_inherit_it(tmp_path):
    """Resuming a search reads its spec (gymnax puts an array on the default device): JAX
    starts on the CPU only, and a process it starts (a Ray worker) is not pinned."""
    raw = copy.deepcopy(TINY)
    raw["search"] = {"agent.net.optim.lr__uniform": [1e-4, 1e-3]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    ExperimentPlan(
        spec_name="tiny", search_alg="random", resources={"cpu": 1.0, "gpu": 0.0}, planned=1,
        settings={"trial_000": {"agent.net.optim.lr": 1e-3}}, groups=[["trial_000"]],
        status={}, spec=raw, git_sha=None, git_dirty=False, versions={}, started="now",
    ).save(tmp_path)  # fmt: skip
    got = probe(f"""
        from jaxlab import api
        from jaxlab.experiment import driver

        ran = []
        def run(self, address):  # the driver's planning done; no Ray
            ran.append(sorted({{d.platform for a in jax.live_arrays() for d in a.devices()}}))
            return driver.ExperimentResult(self.exp_dir, {{}})

        driver.Experiment.run = run
        api.search({str(tmp_path)!r})
        child = subprocess.run(
            [sys.executable, "-c", "import jax; print(jax.config.jax_platforms)"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        report(ran=ran, child=child)
    """)
    assert got["platforms_at_start"] == "cpu" and got["backends"] == ["cpu"]
    assert len(got["ran"]) == 1 and set(got["ran"][0]) <= {"cpu"}  # gymnax's array
    assert got["JAX_PLATFORMS"] is None and got["child"] == "None"


def test_a_new_search_pins_its_jax_to_the_cpu_before_reading_its_spec_file(tmp_path):
    """``api.search`` on a spec file: parsing it imports gymnax (an array on the default
    device), so the pin must come first; JAX starts on the CPU only."""
    raw = copy.deepcopy(TINY)
    raw["search"] = {"agent.net.optim.lr__uniform": [1e-4, 1e-3]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    got = probe(f"""
        from jaxlab import api
        from jaxlab.experiment import driver

        def run(self, address):  # the driver's planning done; no Ray
            return driver.ExperimentResult(self.exp_dir, {{}})

        driver.Experiment.run = run
        api.search({str(tmp_path / "spec.yaml")!r}, {str(tmp_path / "data")!r})
        report()
    """)
    assert got["platforms_at_start"] == "cpu" and got["backends"] == ["cpu"]


@pytest.mark.parametrize(("address", "pinned"), [("127.0.0.1:1", "cpu"), (None, None)])
def test_a_benchmark_driver_keeps_off_the_accelerator_only_when_its_trials_go_to_ray(
    tmp_path, address, pinned
):
    """With a Ray address its Trials run in Ray workers: JAX starts on the CPU here, before
    the suite is read. Without one they train in this process, on the accelerator."""
    suite = {"name": "small", "random_seeds": [1], "specs": ["specs/ppo/ppo_cartpole.yaml"]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    got = probe(f"""
        from jaxlab.experiment import benchmark as bench

        bench.local_gpus = lambda: 0  # a multi-GPU test machine would go to Ray as well
        done = lambda self, address: bench.ExperimentResult(self.exp_dir, {{}})
        bench.Benchmark.run = done
        bench.benchmark({str(path)!r}, root={str(tmp_path / "data")!r}, address={address!r},
                        shrink=True)
        report()
    """)
    assert got["platforms_at_start"] == pinned and got["JAX_PLATFORMS"] is None


def test_the_seed_scaling_parent_starts_jax_only_after_every_row(tmp_path):
    """The rows' subprocesses have the whole device: the parent starts JAX (for the device
    name, the overhead runs) after the sweep."""
    got = probe(f"""
        import types
        sys.path.insert(0, "benchmarks")
        import seed_scaling

        started = []
        ok = {{"status": "ok", "steps_per_s": 1.0, "compile_s": 1.0, "run_s": 1.0,
               "runs_s": [1.0], "env_steps": 1, "program_bytes": None}}
        def measure(job, timeout, compile_repeats=3):
            started.append(xla_bridge.backends_are_initialized())
            return {{"jaxlab": dict(ok), "rejax": dict(ok)}}

        seed_scaling.measure = measure
        sys.modules["scaling_plot"] = types.SimpleNamespace(plot=lambda rows, path: None)
        sys.argv = ["seed_scaling.py", "--algos", "PPO", "--envs", "CartPole-v1", "--seeds",
                    "1", "4", "--no-overhead", "--out", {str(tmp_path)!r}]
        seed_scaling.main()
        meta = json.loads(open({str(tmp_path / "results.json")!r}).read())["meta"]
        report(started=started, device=meta["device"]["platform"])
    """)
    assert got["started"] == [False, False]  # not while a row ran
    assert got["device"] == "cpu" and got["platforms_at_start"] is None  # the parent: unpinned


def test_keep_off_accelerator_warns_when_jax_already_holds_one(monkeypatch, capsys):
    from jax._src import xla_bridge

    monkeypatch.setattr(devices, "_backends_started", lambda: True)
    monkeypatch.setattr(xla_bridge, "backends", lambda: {"cpu": None, "cuda": None})
    assert keep_off_accelerator("the search driver") is False
    err = capsys.readouterr().err
    assert err.startswith("jaxlab: warning: JAX already started on cuda in the search driver")
    assert err.count("\n") == 1
    monkeypatch.setattr(xla_bridge, "backends", lambda: {"cpu": None})
    assert keep_off_accelerator() is False and capsys.readouterr().err == ""  # CPU only: fine


def test_a_worker_sharing_a_gpu_leaves_a_gib_of_its_share_for_its_cuda_context():
    card = 80 * GIB
    for share in (0.25, 0.5, 0.95):
        fraction = memory_fraction(share, card)
        assert fraction * card <= share * card - GIB  # its pool, 1 GiB under its share
        assert fraction * card > share * card - GIB - card / 1000  # rounded down, no more
    assert memory_fraction(0.25, card) == 0.237  # (20 GiB - 1 GiB) / 80 GiB, rounded down
    n = 4  # four workers of 0.25: pools and contexts fit on the card
    assert n * (memory_fraction(1 / n, card) * card + GIB) <= card
    assert memory_fraction(0.5, None) == 0.437  # unknown card: 16 GiB assumed
    assert memory_fraction(0.01, 16 * GIB) == 0.005  # a share under 2 GiB: half of it


def test_a_workers_card_size_comes_from_nvidia_smi_for_its_visible_gpu(tmp_path, monkeypatch):
    assert mib_values("81559\n40960\n") == [81559, 40960]
    assert mib_values("[N/A]\n") == [] and mib_values("") == []
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("nvidia-smi") is None and visible_card_bytes() is None
    smi = tmp_path / "nvidia-smi"  # a fake one that records its arguments
    smi.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\necho 81559\n')
    smi.chmod(0o755)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # as Ray sets it
    assert visible_card_bytes() == 81559 * 2**20
    assert (tmp_path / "args").read_text().split()[-2:] == ["-i", "2"]


def test_setup_worker_caps_a_gpu_share_to_its_memory_fraction(monkeypatch):
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "unset")  # restored afterwards
    monkeypatch.setattr(worker, "visible_card_bytes", lambda: 80 * GIB)
    worker.setup_worker({"cpu": 1.0, "gpu": 0.25}, None)
    assert os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.237"


def test_a_search_asking_no_gpu_on_a_cluster_with_gpus_warns(monkeypatch, capsys):
    import ray

    from jaxlab.experiment.raytune import check_resources

    node = {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}}
    monkeypatch.setattr(ray, "nodes", lambda: [node])
    monkeypatch.setattr(ray, "cluster_resources", lambda: dict(node["Resources"]))
    check_resources({"cpu": 1.0, "gpu": 0.0})
    err = capsys.readouterr().err
    assert err.startswith("jaxlab: warning: meta.search_resources.gpu is 0: every trial")
    assert "has 2 GPU(s)" in err and err.count("\n") == 1
    check_resources({"cpu": 1.0, "gpu": 0.25})  # a share asked: no warning
    assert capsys.readouterr().err == ""
    assert idle_gpu_warning({"cpu": 1.0, "gpu": 0.0}, 0) is None  # no GPU to leave idle
