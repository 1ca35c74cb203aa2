"""What a run needs to be reproduced: git SHA/dirty/diff, library versions, device, seeds."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "chex", "orbax-checkpoint", "numpy")
REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_info() -> dict[str, Any]:
    """``{"sha", "dirty", "diff"}`` of the repository holding this jaxlab checkout.

    ``sha`` is None outside a git checkout (an installed wheel). ``diff`` is the
    uncommitted change against HEAD (tracked files) when dirty, else "".
    """
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return {"sha": None, "dirty": None, "diff": ""}
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    dirty = bool(status.strip())
    diff = (_git("diff", "HEAD") or "") if dirty else ""
    return {"sha": sha.strip(), "dirty": dirty, "diff": diff}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def device_info() -> dict[str, Any]:
    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "kind": dev.device_kind,
        "count": jax.device_count(),
        "host": platform.node(),
    }
