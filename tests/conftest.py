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
# Tests run on the CPU, on a GPU machine too: one xdist worker per core would each
# pre-allocate 75% of the card, and the tolerances assume float32 matmuls (a GPU runs
# TF32). Subprocesses and Ray workers inherit it. ``JAXLAB_TEST_GPU=1 pytest -m gpu -n 0``
# runs the tests marked ``gpu`` on the accelerator instead, growing its memory as needed.
if os.environ.get("JAXLAB_TEST_GPU") == "1":
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
else:
    os.environ["JAX_PLATFORMS"] = "cpu"

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

# The slowest test files, longest first (by their tests' summed durations in a full run on
# 2 cores; test_cli_suites alone is about 10 minutes). With ``--dist loadfile`` a file is
# one unit of work and pytest-xdist hands units out in collection order
# (``--no-loadscope-reorder``; its own reorder sorts by test count, which put single slow
# tests such as test_bands last): longest first, the many short files then even out the
# two workers' ends.
SLOWEST_FILES = (
    "test_cli_suites", "test_search", "test_cli", "test_tunables", "test_suite_mjx",
    "test_conformance_suites", "test_conformance_probes", "test_bad_input", "test_resume",
    "test_conformance", "test_trial", "test_suite_envpool", "test_benchmark", "test_recurrent",
    "test_bands", "test_suite_grids", "test_crossq", "test_ppo", "test_lock",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collect :data:`SLOWEST_FILES` first, in that order; the rest keep theirs."""
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


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
