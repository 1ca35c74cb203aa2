"""Refuse a Trial whose state cannot fit before anything compiles.

The Trial state (parameters, optimiser state, env state and, for off-policy algorithms,
``max_session`` replay buffers) is measured from its abstract shapes (``jax.eval_shape``,
no allocation). Training needs it about twice: the state on the device, plus a host copy
while a checkpoint is written (on CPU both live in RAM) or the update's temporaries on an
accelerator. When ``2 x state`` exceeds what the device has free, :func:`check_fits`
raises a one-line :class:`~jaxlab.spec.SpecError` that names the numbers and what to
lower.

Once the group program is compiled, :func:`check_program_fits` checks what it needs in
all (XLA's ``memory_analysis()``: the state and metrics it reads and writes, less what it
updates in place, plus its temporaries, which the state's size alone does not show) and,
on an accelerator, that host RAM holds the one host copy of the state a checkpoint takes.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jaxlab.config.parse import SpecError
from jaxlab.memory.cards import visible_free_bytes

HEADROOM = 2.0


def tree_bytes(tree: Any) -> int:
    """Bytes of every array (or ShapeDtypeStruct) leaf of ``tree``."""
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def available_bytes(device: jax.Device | None = None) -> tuple[int, str]:
    """Free memory of ``device`` (default: the first local device) and a name for it.

    An accelerator: its allocator's limit less what is in use. On a GPU, also at most what
    ``nvidia-smi`` finds free on the card plus the unused part of this process's own pool
    (``pool_bytes - bytes_in_use``): memory other processes took after JAX set its limit
    (JAX's pool not pre-allocated, or a card shared with other runs) is not there to use;
    with an allocator that gives no limit (``XLA_PYTHON_CLIENT_ALLOCATOR=platform``), what
    ``nvidia-smi`` finds free. CPU, or an accelerator nothing says more of: host RAM.
    """
    device = device or jax.local_devices()[0]
    if device.platform == "cpu":
        return host_available_bytes()
    name = f"{device.device_kind} ({device.platform})"
    stats = device.memory_stats() or {}
    card_free = visible_free_bytes() if device.platform == "gpu" else None
    if "bytes_limit" in stats:
        in_use = stats.get("bytes_in_use", 0)
        free = stats["bytes_limit"] - in_use
        if card_free is not None and "pool_bytes" in stats:
            free = min(free, card_free + max(0, stats["pool_bytes"] - in_use))
        return int(free), name
    if card_free is not None:
        return card_free, name
    return host_available_bytes()


def host_available_bytes() -> tuple[int, str]:
    """Host RAM available (``MemAvailable``), named ``host RAM``."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "host RAM"
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "host RAM"


def gib(n: float) -> str:
    """``n`` bytes in GiB, MiB or KiB, whichever reads best."""
    if n >= 2**27:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def check_fits(
    abstract_state: Any,
    sessions: int,
    memory_path_hint: str = "agent.memory.capacity",
    devices: int = 1,
    free: tuple[int, str] | None = None,
) -> int:
    """Raise SpecError when ``HEADROOM x`` the Trial state exceeds the free memory.

    ``abstract_state``: the Trial state's shapes (leading axis = sessions), split evenly
    over ``devices``. Returns the state's bytes per device. ``free`` overrides the
    measured ``(bytes, name)`` of one device (for tests). The error names
    ``meta.max_session`` when one session would fit, else ``memory_path_hint`` (the knob
    that sizes one session's state: the replay capacity, or the env count on-policy).
    """
    need = tree_bytes(abstract_state) // max(devices, 1)
    sessions = sessions // max(devices, 1)
    have, where = free if free is not None else available_bytes()
    if HEADROOM * need > have:
        per = need / max(sessions, 1)
        one_fits = sessions > 1 and HEADROOM * per <= have
        raise SpecError(
            "meta.max_session" if one_fits else memory_path_hint,
            f"the Trial state needs {gib(need)} ({sessions} session{'s' * (sessions != 1)} x "
            f"{gib(per)}), about "
            f"{gib(HEADROOM * need)} with checkpoint/update headroom, but {where} has "
            f"{gib(have)} free; lower meta.max_session or {memory_path_hint}",
        )
    return need


def program_bytes(executable: Any) -> tuple[int, int] | None:
    """``(total, temporaries)`` bytes a compiled program needs while it runs: arguments +
    outputs - what it updates in place (donated) + temporaries, from XLA's
    ``memory_analysis()``; None where the backend gives no analysis."""
    try:
        stats = executable.memory_analysis()
    except Exception:  # noqa: BLE001 - a backend without the analysis
        return None
    if stats is None:
        return None
    temp = int(stats.temp_size_in_bytes)
    total = stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
    return int(total) + temp, temp


def check_program_fits(
    executable: Any,
    state_bytes: int,
    memory_path_hint: str,
    platform: str,
    free: tuple[int, str] | None = None,
    host_free: tuple[int, str] | None = None,
) -> None:
    """Raise SpecError when the compiled group program (:func:`program_bytes`) and the copy
    of the state (``state_bytes``) the host loop takes at checkpoint and eval points do
    not fit in the device's free memory; on an accelerator, also when host RAM cannot hold
    the host copy a checkpoint writes from. ``free``/``host_free`` override the measured
    ``(bytes, name)`` (for tests)."""
    needs = program_bytes(executable)
    if needs is None:
        return
    need, temp = needs
    have, where = free if free is not None else available_bytes()
    if need + state_bytes > have:
        raise SpecError(
            memory_path_hint,
            f"the compiled training program needs {gib(need)} ({gib(temp)} of it "
            f"temporaries) and a {gib(state_bytes)} copy of the state at checkpoints, but "
            f"{where} has {gib(have)} free; lower meta.max_session or {memory_path_hint}",
        )
    if platform != "cpu":
        have, where = host_free if host_free is not None else host_available_bytes()
        if state_bytes > have:
            raise SpecError(
                memory_path_hint,
                f"a checkpoint copies the {gib(state_bytes)} state to the host, but {where} "
                f"has {gib(have)} free; lower meta.max_session or {memory_path_hint}",
            )


__all__ = ["available_bytes", "check_fits", "check_program_fits", "program_bytes", "tree_bytes"]
