"""What a run needs to be reproduced: git SHA/dirty/diff, library versions, device, seeds."""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import yaml

from jaxlab.spec.schema import check_name

if TYPE_CHECKING:
    from jaxlab.spec.schema import Spec

PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "chex", "orbax-checkpoint", "numpy")
# The env suites' packages (pip extras), recorded where installed: a suite's physics or
# world generation is part of what a run computes.
SUITE_PACKAGES = (
    "brax", "playground", "mujoco", "mujoco-mjx", "warp-lang", "craftax", "jumanji", "navix",
    "xminigrid",
)  # fmt: skip
REPO = Path(__file__).resolve().parents[2]  # the checkout holding jaxlab/


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
    for name in SUITE_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def device_info() -> dict[str, Any]:
    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "kind": dev.device_kind,
        "count": jax.device_count(),
        "host": platform.node(),
    }


def numerics_info(spec: Spec) -> dict[str, Any]:
    """How the run's float32 matmuls were computed: ``highest`` (full float32) under
    ``meta.deterministic``, else jax's setting (``default``: float32 on CPU, TF32 on
    recent NVIDIA GPUs), and whether XLA's deterministic GPU ops were asked for."""
    precision = jax.config.jax_default_matmul_precision or "default"
    return {
        "deterministic": spec.meta.deterministic,
        "matmul_precision": "highest" if spec.meta.deterministic else str(precision),
    }


def make_run_dir(spec: Spec, root: str | Path = "data") -> Path:
    """``<root>/<spec name>_<timestamp>`` (:func:`new_folder`)."""
    return new_folder(spec.name, root)


def new_folder(name: str, root: str | Path = "data") -> Path:
    """``<root>/<name>_<timestamp>``, made unique if runs start the same second: the
    folder is claimed by ``mkdir`` itself (atomic), and a name taken meanwhile by another
    process moves on to ``_1``, ``_2``, ..."""
    check_name(name)  # a spec built in Python skips parse_spec: never leave root
    stamp = datetime.now().strftime("%Y_%m_%d_%H%M%S")
    base = Path(root) / f"{name}_{stamp}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            path, n = Path(f"{base}_{n}"), n + 1


def write_provenance(spec: Spec, run_dir: Path, keys: jax.Array) -> dict[str, Any]:
    """Save ``spec.yaml``, ``provenance.json`` (with the session ``keys`` ``[S, 2]``) and,
    for a dirty tree, ``git.diff``."""
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    git = git_info()
    if git["dirty"]:
        (run_dir / "git.diff").write_text(git["diff"])
    prov = {
        "spec_name": spec.name,
        "git_sha": git["sha"],
        "git_dirty": git["dirty"],
        "versions": versions(),
        "device": device_info(),
        "numerics": numerics_info(spec),
        "random_seed": spec.meta.random_seed,
        "session_keys": np.asarray(jax.random.key_data(keys)).tolist(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    (run_dir / "provenance.json").write_text(json.dumps(prov, indent=2))
    return prov
