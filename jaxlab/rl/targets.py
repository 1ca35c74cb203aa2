"""Target-network updates, pure functions of parameter pytrees (jit and vmap safe).

With online parameters ``theta`` and target parameters ``theta'``:

    polyak:  theta' <- tau * theta + (1 - tau) * theta'              (every call)
    hard:    theta' <- theta   if step % every == 0,  else theta'      (a periodic copy)
    none:    theta' <- theta                                          (no separate target)

``tau = 1`` makes the Polyak step a copy and ``every = 1`` copies on every call. ``step``
may be traced (the caller's update counter); ``every`` is a static int.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

TargetUpdate = Literal["none", "hard", "polyak"]


def polyak_update(online: Any, target: Any, tau: jax.Array | float) -> Any:
    """``theta' <- tau * theta + (1 - tau) * theta'``, leaf by leaf."""
    return jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, online, target)


def hard_update(online: Any, target: Any, step: jax.Array | int, every: int) -> Any:
    """``theta' <- theta`` when ``step % every == 0``, else ``theta'`` unchanged."""
    copy = step % every == 0
    return jax.tree.map(lambda p, t: jnp.where(copy, p, t), online, target)


def update_target(
    kind: TargetUpdate,
    online: Any,
    target: Any,
    *,
    tau: jax.Array | float = 1.0,
    step: jax.Array | int = 0,
    every: int = 1,
) -> Any:
    """The target after one update of kind ``kind`` (see the module docstring)."""
    if kind == "polyak":
        return polyak_update(online, target, tau)
    if kind == "hard":
        return hard_update(online, target, step, every)
    if kind == "none":
        return online
    raise ValueError(f"unknown target update {kind!r}")


__all__ = ["TargetUpdate", "hard_update", "polyak_update", "update_target"]
