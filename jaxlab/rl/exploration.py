"""Exploration from action values ``q [..., A]``, pure and jittable.

    epsilon-greedy:  a = uniform over A   with probability epsilon,   argmax_a q   otherwise
    Boltzmann:       P(a) = softmax(q / temperature)_a

Both return int32 actions ``[...]``. Epsilon-greedy draws a coin and a random action from
two keys split from ``key`` (coin first), whatever the coin shows; given ``valid [..., A]``
(an env's action mask) the random action is uniform over the valid ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def greedy(q: jax.Array) -> jax.Array:
    """``argmax_a q`` as int32 ``[...]``."""
    return jnp.argmax(q, axis=-1).astype(jnp.int32)


def epsilon_greedy(
    key: jax.Array, q: jax.Array, epsilon: jax.Array, valid: jax.Array | None = None
) -> jax.Array:
    k_coin, k_rand = jax.random.split(key)
    lead = q.shape[:-1]
    if valid is None:
        rand = jax.random.randint(k_rand, lead, 0, q.shape[-1], jnp.int32)
    else:
        rand = jax.random.categorical(k_rand, jnp.where(valid, 0.0, -jnp.inf)).astype(jnp.int32)
    return jnp.where(jax.random.uniform(k_coin, lead) < epsilon, rand, greedy(q))


def boltzmann(key: jax.Array, q: jax.Array, temperature: jax.Array) -> jax.Array:
    return jax.random.categorical(key, q / temperature).astype(jnp.int32)


__all__ = ["boltzmann", "epsilon_greedy", "greedy"]
