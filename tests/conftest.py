"""Shared fixtures. jaxlab is imported first so its XLA flags apply before jax starts."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

# One persistent XLA cache for the whole test run, shared by both xdist workers (same
# PYTEST_XDIST_TESTRUNUID) and inherited by every subprocess and Ray worker they start (set
# in the environment before jax is imported): identical programs compile once per run.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"jaxlab-test-xla-{_RUN}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402
import pytest  # noqa: E402

import jaxlab  # noqa: E402, F401  (sets XLA flags before jax initialises its backend)

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").rglob("*.yaml"))


def _on_gymnax(path: Path) -> bool:
    """Whether a spec's env is gymnax's (a bare id or ``gymnax/<id>``), from its YAML."""
    import yaml

    name = str((yaml.safe_load(path.read_text()).get("env") or {}).get("name", ""))
    return "/" not in name or name.startswith("gymnax/")


# The shipped specs split by suite, so their shrink runs land in two test files that
# pytest-xdist (--dist loadfile) can give to different workers: the other suites' runs
# are the slowest (compiling Craftax, Brax and Playground steps takes 30-130 s each).
GYMNAX_SPECS = [p for p in SPECS if _on_gymnax(p)]
SUITE_SPECS = [p for p in SPECS if not _on_gymnax(p)]

# Catch (B,) vs (B, 1) broadcasting bugs everywhere under test.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

TINY = {
    "name": "tiny",
    "agent": {
        "algorithm": {
            "name": "PPO",
            "time_horizon": 8,
            "minibatch_count": 2,
            "training_epoch": 2,
        },
        "net": {"hid_layers": [16, 16], "optim": {"lr": 1.0e-3}},
    },
    "env": {"name": "CartPole-v1", "num_envs": 4, "max_frame": 320},
    "meta": {"max_session": 2, "log_frequency": 64, "random_seed": 3},
}


@pytest.fixture
def tiny_raw() -> dict:
    """A raw spec mapping that trains in well under a second (5 updates, 5 chunks)."""
    return copy.deepcopy(TINY)
