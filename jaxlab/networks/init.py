"""Orthogonal initialisation without LAPACK.

flax's ``orthogonal`` calls ``jnp.linalg.qr``. On CPU, a vmapped (batched) QR runs as a
LAPACK custom call that fans its batch out over XLA's thread pool and blocks waiting for
it; two such calls running concurrently (actor and critic layers) can park every pool
thread, and the Trial's ``init`` then never finishes. We saw exactly that (native stacks
in ``lapack_sgeqrf_ffi`` -> ``ParallelBatchMap`` -> ``BlockingCounter::Wait``).

Here the orthonormal factor is computed by Gram-Schmidt with re-orthogonalisation
("CGS2") in a ``fori_loop``: plain matmuls, vmappable, and no custom call. For a
Gaussian matrix ``G = QR`` with ``diag(R) > 0`` this gives the same Haar-distributed
``Q`` as QR with the sign fix flax applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]
# ``agent.net.kernel_init`` names: orthogonal (with per-layer gains) or one of flax's.
KERNEL_INITS = ("orthogonal", "lecun_normal", "glorot_uniform", "he_normal")


def orthonormal_columns(g: jax.Array) -> jax.Array:
    """``g [n, m]`` (n >= m) -> ``q [n, m]`` with ``q.T @ q = I``, spanning g's columns in order."""
    n, m = g.shape

    def body(j: jax.Array, q: jax.Array) -> jax.Array:
        v = jax.lax.dynamic_index_in_dim(g, j, axis=1, keepdims=False)
        earlier = (jnp.arange(m) < j).astype(g.dtype)
        for _ in range(2):  # classical Gram-Schmidt, twice, is stable to float precision
            v = v - q @ ((q.T @ v) * earlier)
        v = v / jnp.linalg.norm(v)
        return jax.lax.dynamic_update_index_in_dim(q, v, j, axis=1)

    return jax.lax.fori_loop(0, m, body, jnp.zeros((n, m), g.dtype))


def orthogonal(scale: float = 1.0) -> Initializer:
    """A flax kernel initializer: a (semi-)orthogonal ``[in, out]`` matrix times ``scale``
    (conv kernels ``[..., in, out]`` as the matrix of their flattened leading axes)."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        # A conv kernel [kh, kw, in, out] is orthogonal as a [kh * kw * in, out] matrix.
        rows, cols = math.prod(shape[:-1]), shape[-1]
        g = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
        q = orthonormal_columns(g)
        q = q if rows >= cols else q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


def kernel_init(name: str, gain: float) -> Initializer:
    """The kernel initializer ``name`` (one of :data:`KERNEL_INITS`) for a layer whose
    orthogonal gain is ``gain``.

    ``orthogonal`` is :func:`orthogonal` times ``gain`` (CleanRL's gains: ``sqrt(2)``
    hidden, 0.01 policy heads, 1 value and Q heads). The others are flax's initializers
    as flax defines them, the same for every layer, heads included, and ``gain`` is not
    used: ``lecun_normal`` (flax's and rejax's default: truncated normal, variance
    ``1 / fan_in``), ``glorot_uniform`` (variance ``2 / (fan_in + fan_out)``),
    ``he_normal`` (truncated normal, variance ``2 / fan_in``).
    """
    if name == "orthogonal":
        return orthogonal(gain)
    if name not in KERNEL_INITS:
        raise ValueError(f"unknown kernel_init {name!r}; expected one of {KERNEL_INITS}")
    return getattr(nn.initializers, name)()
