"""What jaxlab says on the console besides results: one-line warnings on stderr."""

from __future__ import annotations

import sys


def warn(msg: str) -> None:
    """One ``jaxlab: warning: ...`` line on stderr."""
    print(f"jaxlab: warning: {msg}", file=sys.stderr, flush=True)
