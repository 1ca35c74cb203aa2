"""Print pip constraints that pin the jax packages installed here, one ``name==version``
per line, for installing jaxlab's extras beside a CUDA jax without replacing it:

    pip install -e ".[bench]" -c <(python scripts/jax_pins.py)

The versions come from the installed packages' metadata, so a jax installed from a wheel
file or a URL (which ``pip freeze`` prints as ``jax @ file://...``, not ``jax==``) is
pinned too; a ``grep '^jax=='`` over ``pip freeze`` would give an empty constraint file,
and pip could swap in a CPU-only jax without a word.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# jax, its compiled core and the CUDA plugins (those present are pinned).
PACKAGES = (
    "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin",
    "jax-cuda13-pjrt",
)  # fmt: skip


def pins() -> list[str]:
    """``name==version`` of each of :data:`PACKAGES` that is installed."""
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


if __name__ == "__main__":
    print("\n".join(pins()))
