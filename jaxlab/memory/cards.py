"""What ``nvidia-smi`` says of this process's GPUs, asked without starting JAX's backend.

JAX's allocator sees only its own pool: its ``bytes_limit`` is a fraction of the card set
when the backend starts, so memory another process takes later (a second run, a search's
other workers, a notebook) is invisible to it. ``nvidia-smi`` sees the whole card.

The cards asked about are those ``CUDA_VISIBLE_DEVICES`` names (indices or UUIDs, as Ray
and schedulers set it), else every card. CUDA may number the visible cards in another
order than ``nvidia-smi``, so a question about several cards takes the smallest answer:
the one that errs on the safe side.
"""

from __future__ import annotations

import os
import shutil
import subprocess

MIB = 2**20


def mib_values(smi_out: str) -> list[int]:
    """The integers of ``nvidia-smi --query-gpu=<field> --format=csv,noheader,nounits``
    output, one per card (``[N/A]`` and blank lines skipped)."""
    return [int(line.strip()) for line in smi_out.splitlines() if line.strip().isdigit()]


def query_cards(field: str, first_only: bool = False) -> list[int]:
    """``field`` (``memory.total``, ``memory.free``: MiB) of each visible card (only the
    first with ``first_only``); empty without ``nvidia-smi`` or when it fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    cmd = [smi, f"--query-gpu={field}", "--format=csv,noheader,nounits"]
    visible = [c.strip() for c in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    visible = [c for c in visible if c]
    if visible:
        cmd += ["-i", visible[0] if first_only else ",".join(visible)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return mib_values(out)


def visible_card_bytes() -> int | None:
    """The memory of the GPU this process was given (Ray sets ``CUDA_VISIBLE_DEVICES``),
    from ``nvidia-smi``; None if unknown."""
    mibs = query_cards("memory.total", first_only=True)
    return min(mibs) * MIB if mibs else None


def visible_free_bytes() -> int | None:
    """The free memory of the fullest visible card, every process counted; None if
    unknown."""
    mibs = query_cards("memory.free")
    return min(mibs) * MIB if mibs else None
