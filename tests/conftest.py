"""Shared fixtures. jaxlab is imported first so its XLA flags apply before jax starts."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import jax
import pytest

import jaxlab  # noqa: F401  (sets XLA flags before jax initialises its backend)

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").rglob("*.yaml"))

# Catch (B,) vs (B, 1) broadcasting bugs everywhere under test.
jax.config.update("jax_numpy_rank_promotion", "raise")
# Many tests build identical programs; a per-run persistent cache compiles each once.
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="jaxlab-test-cache-"))
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
