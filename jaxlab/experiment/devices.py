"""Who uses the accelerator in an Experiment: the Ray workers, never the driver.

A driver whose Trials run in Ray workers (``search`` always, ``benchmark`` on Ray) must
not start JAX on a GPU: JAX's first array there pre-allocates 75% of the card, and the
driver starts JAX as it validates a spec (``import gymnax`` puts an array on the default
device). :func:`keep_off_accelerator` pins the driver's JAX to the CPU through JAX's
config, which, unlike ``JAX_PLATFORMS``, no child process (Ray's daemons and workers)
inherits.

A worker given a GPU fraction caps JAX to :func:`memory_fraction` of the card, leaving
:data:`CONTEXT_BYTES` of its share for the process's CUDA context, which lies outside
XLA's memory pool. :func:`idle_gpu_warning` names a search that leaves the cluster's
GPUs idle (``meta.search_resources.gpu: 0``, the default).
"""

from __future__ import annotations

import math

from jaxlab.logging.console import warn

GIB = 2**30
# Per process, outside XLA's pool: the CUDA context, cuBLAS/cuDNN handles and workspaces.
CONTEXT_BYTES = GIB
# A card whose size nvidia-smi does not tell: a small one, so the reserve errs large.
FALLBACK_CARD_BYTES = 16 * GIB


def keep_off_accelerator(role: str = "this driver") -> bool:
    """Pin this process's JAX to the CPU, before its backend starts; True if pinned.

    Call it first thing in a process that only orchestrates Ray workers. If JAX has
    already started here, the pin cannot apply: warns (one line) when JAX then holds an
    accelerator, and returns False.
    """
    import jax

    if not _backends_started():
        jax.config.update("jax_platforms", "cpu")  # config, not env: workers don't inherit
        return True
    from jax._src import xla_bridge

    held = sorted(p for p in xla_bridge.backends() if p != "cpu")
    if held:
        warn(
            f"JAX already started on {', '.join(held)} in {role}: it holds accelerator "
            "memory its Ray workers need (start the driver in a fresh process)"
        )
    return False


def _backends_started() -> bool:
    """Whether JAX's backends are initialised in this process (without starting them)."""
    from jax._src import xla_bridge

    started = getattr(xla_bridge, "backends_are_initialized", None)
    if started is not None:
        return bool(started())
    return bool(getattr(xla_bridge, "_backends", None))  # older/newer jax: its cache


def memory_fraction(gpu_share: float, card_bytes: int | None) -> float:
    """The ``XLA_PYTHON_CLIENT_MEM_FRACTION`` of a worker holding ``gpu_share`` (< 1) of a
    card of ``card_bytes`` (None: unknown, :data:`FALLBACK_CARD_BYTES` assumed).

    Its share of the card less :data:`CONTEXT_BYTES` for its CUDA context, so that the
    processes sharing the card fit; never below half its share (a tiny share still
    trains, if it can), rounded down to 3 decimals.
    """
    card = card_bytes or FALLBACK_CARD_BYTES
    share = gpu_share * card
    usable = max(share - CONTEXT_BYTES, share / 2)
    return math.floor(usable / card * 1000) / 1000


def idle_gpu_warning(resources: dict[str, float], cluster_gpus: float) -> str | None:
    """The warning for Ray trials that ask for no GPU on a cluster that has some (they
    train on the CPU); None otherwise."""
    if resources["gpu"] or not cluster_gpus:
        return None
    return (
        f"meta.search_resources.gpu is 0: every trial trains on the CPU although the Ray "
        f"cluster has {cluster_gpus:g} GPU(s); set it to 1 (a GPU per trial) or a share "
        "such as 0.25 (4 trials per GPU)"
    )
