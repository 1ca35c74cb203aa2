"""Refuse a Trial whose state cannot fit before anything compiles.

The Trial state (parameters, optimiser state, env state and, for off-policy algorithms,
``max_session`` replay buffers) is measured from its abstract shapes (``jax.eval_shape``,
no allocation). Training needs it about twice: the state on the device, plus a host copy
while a checkpoint is written (on CPU both live in RAM) or the update's temporaries on an
accelerator. When ``2 x state`` exceeds what the device has free, :func:`check_fits`
raises a one-line :class:`~jaxlab.spec.SpecError` that names the numbers and what to
lower.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jaxlab.config.parse import SpecError

HEADROOM = 2.0


def tree_bytes(tree: Any) -> int:
    """Bytes of every array (or ShapeDtypeStruct) leaf of ``tree``."""
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def available_bytes(device: jax.Device | None = None) -> tuple[int, str]:
    """Free memory of ``device`` (default: the first local device) and a name for it."""
    device = device or jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
            return int(free), f"{device.device_kind} ({device.platform})"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "host RAM"
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "host RAM"


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


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
            f"the Trial state needs {gib(need)} ({sessions} sessions x {gib(per)}), about "
            f"{gib(HEADROOM * need)} with checkpoint/update headroom, but {where} has "
            f"{gib(have)} free; lower agent.memory.capacity, meta.max_session or env.num_envs",
        )
    return need


__all__ = ["available_bytes", "check_fits", "tree_bytes"]
