"""``scripts/gpu_check.py --smoke``: every check of the GPU script runs, at tiny sizes on
CPU, and reports one ``tag key=value`` line (the full run needs a GPU machine)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO

TAGS = [
    "device", "driver", "ppo_cartpole", "sync", "minatar", "dqn_cartpole", "sac_pendulum", "conds"
]  # fmt: skip


@pytest.mark.gpu
def test_the_gpu_check_runs_every_check_in_smoke_mode():
    proc = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--smoke"],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [shlex.split(line) for line in proc.stdout.splitlines() if line.strip()]
    fields = {words[0]: dict(w.split("=", 1) for w in words[1:]) for words in lines}
    assert [words[0] for words in lines] == [*TAGS, "deterministic", "total"]
    assert all(fields[tag].get("ok") == "True" for tag in TAGS[2:] + ["deterministic"])
    assert fields["deterministic"]["cross_process_equal"] == "True"
    assert fields["total"]["failed"] == "none"
    assert float(fields["ppo_cartpole"]["steps_per_s"]) > 0


def test_jax_pins_pins_the_installed_jax_whatever_pip_freeze_prints():
    """The constraint file for installing extras beside a CUDA jax: one ``name==version``
    per installed jax package, read from its metadata (a ``jax @ file://`` install too)."""
    import jax
    import jaxlib

    out = subprocess.run(
        [sys.executable, "scripts/jax_pins.py"], capture_output=True, text=True, cwd=REPO,
        check=True,
    ).stdout.split()  # fmt: skip
    assert out[:2] == [f"jax=={jax.__version__}", f"jaxlib=={jaxlib.__version__}"]
    assert all(line.count("==") == 1 and line.startswith("jax") for line in out)
