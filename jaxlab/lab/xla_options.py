"""The XLA build of a Trial's programs: compile options per backend and ``meta.compile``
mode, and the matmul precision they are traced under (``meta.deterministic``)."""

from __future__ import annotations

import contextlib
from typing import Any

import jax

from jaxlab.spec.schema import Spec

# XLA options that trade run speed for compile speed on CPU: for the one-off init program
# (Trial.init) always, and for the group program when ``meta.compile`` is ``fast``.
FAST_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_cpu_use_fusion_emitters": False,  # a CPU codegen option; other backends ignore it
}
# The same on a GPU, where backend optimisation level 0 would run LLVM unoptimised (slow
# kernels, no compile gain there): what costs compile time on a GPU is autotuning (trying
# each convolution and matmul algorithm on the device).
FAST_GPU_OPTIONS = {"xla_gpu_autotune_level": 0}
# ``meta.deterministic`` on a GPU: deterministic implementations of scatters and
# reductions, and no autotuning (whose timing-based choices can differ between runs).
DETERMINISTIC_GPU_OPTIONS = {"xla_gpu_deterministic_ops": True, "xla_gpu_autotune_level": 0}
GPU_PLATFORMS = ("gpu", "cuda", "rocm")
# XLA options for the group program on CPU when ``meta.compile`` is ``optimized``: LLVM
# at -O2 instead of XLA's default -O3. LLVM is ~90% of the group program's compile (its
# HLO passes ~0.5 s of ~4.5 s), and -O2 cut that compile's CPU time by 22-25% with the
# run as fast: 4 seeds, in one process, run medians -O2 against -O3 (compile CPU s):
# PPO CartPole 2.31 vs 2.36 s (6.4 vs 8.2, 12 pairs), PPO Breakout-MinAtar 1.51 vs
# 1.56 s (8.1 vs 10.3), DQN CartPole 1.96 vs 1.97 s (6.5 vs 8.5), SAC CartPole 7.35 vs
# 7.32 s (6.6 vs 8.9); PPO CartPole at 256 seeds 8.46 vs 8.23 s (paired 1.007).
# -O1 compiled faster still but ran PPO CartPole at 64 seeds 1.2x slower. Other backends
# keep XLA's defaults (not measured there).
OPTIMIZED_CPU_OPTIONS = {"xla_backend_optimization_level": 2}
# Init of many sessions on CPU, in batches (jaxlab.lab.trial.init_program).
INIT_BATCHED_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


def fast_options(platform: str) -> dict[str, Any]:
    """The compile-speed XLA options for ``platform``: :data:`FAST_COMPILER_OPTIONS` on
    CPU, :data:`FAST_GPU_OPTIONS` on a GPU, XLA's defaults elsewhere (TPU)."""
    if platform == "cpu":
        return FAST_COMPILER_OPTIONS
    return FAST_GPU_OPTIONS if platform in GPU_PLATFORMS else {}


def group_options(mode: str, platform: str, deterministic: bool = False) -> dict[str, Any] | None:
    """XLA options for the group program: ``meta.compile`` ``mode`` (``fast`` or
    ``optimized``) on ``platform``, plus :data:`DETERMINISTIC_GPU_OPTIONS` on a GPU when
    ``deterministic`` (None: XLA's defaults)."""
    if mode == "fast":
        options = fast_options(platform)
    else:
        options = OPTIMIZED_CPU_OPTIONS if platform == "cpu" else {}
    if deterministic and platform in GPU_PLATFORMS:
        options = {**options, **DETERMINISTIC_GPU_OPTIONS}
    return options or None


def matmul_precision(spec: Spec) -> contextlib.AbstractContextManager:
    """The context to trace ``spec``'s programs in: float32 matmuls at full precision
    under ``meta.deterministic`` (a GPU would otherwise run them as TF32), else jax's
    default. It is thread-local: the init build on the background thread enters it too."""
    if spec.meta.deterministic:
        return jax.default_matmul_precision("highest")
    return contextlib.nullcontext()
