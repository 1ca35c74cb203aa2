"""jaxlab: a JAX-accelerated, vectorized deep-RL lab (spec -> Session -> Trial).

The public API (:mod:`jaxlab.api`): ``load_spec``, ``train`` -> ``Run``, ``resume``,
``search``, ``benchmark``, ``enjoy``, ``report``, ``plot``.
"""

import os as _os

# On CPU, XLA's multi-threaded Eigen pool only slows our small matmuls down: 4-seed PPO
# CartPole measured ~1.0e5 env-steps/s with it and ~1.15e5 without, on 2 cores. Set
# before jax's backend starts; an explicit user setting wins. (It does not affect GPUs.)
if "xla_cpu_multi_thread_eigen" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    ).strip()

# Without a display, MuJoCo (Brax and Playground rendering, ``enjoy --render``) draws
# through EGL. It reads MUJOCO_GL when first imported, so it is set here, first.
if not _os.environ.get("DISPLAY"):
    _os.environ.setdefault("MUJOCO_GL", "egl")

from typing import TYPE_CHECKING as _TYPE_CHECKING  # noqa: E402

__version__ = "0.1.0"

# The API names resolve on first use (PEP 562 module __getattr__), not at import: every
# ``python -m jaxlab ...`` and Ray worker imports this package first, and importing jax,
# gymnax or Ray here would slow ``--help`` down and start the accelerator in processes
# (drivers) that must not touch it. ``jaxlab.train`` imports jaxlab.api, which itself
# imports jax and Ray only inside the functions that run something.
__all__ = [
    "Run",
    "SearchResult",
    "Spec",
    "SpecError",
    "UsageError",
    "benchmark",
    "enjoy",
    "load_spec",
    "plot",
    "report",
    "resume",
    "search",
    "train",
    "use_compile_cache",
]

if _TYPE_CHECKING:  # what type checkers and IDEs see
    from jaxlab.api import (
        Run,
        SearchResult,
        Spec,
        SpecError,
        UsageError,
        benchmark,
        enjoy,
        load_spec,
        plot,
        report,
        resume,
        search,
        train,
        use_compile_cache,
    )


def __getattr__(name: str) -> object:
    if name in __all__:
        from jaxlab import api

        value = getattr(api, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'jaxlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
