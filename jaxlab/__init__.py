"""jaxlab: a JAX-accelerated, vectorized deep-RL lab (spec -> Session -> Trial)."""

import os as _os

# XLA's multi-threaded Eigen pool on CPU intermittently deadlocks on our vmapped scans
# (every thread parked, the result never ready), and for these small matmuls it is also
# slower: 4-seed PPO CartPole ran at ~1.0e5 env-steps/s with it and ~1.15e5 without.
# Set before jax's backend starts; an explicit user setting wins.
if "xla_cpu_multi_thread_eigen" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    ).strip()

__version__ = "0.1.0"
