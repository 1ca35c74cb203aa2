"""Soft actor-critic losses, pure and hand-checkable (Haarnoja et al., 2018; discrete:
Christodoulou, 2019). ``q`` is the twin critics' minimum unless named twin; ``alpha`` the
temperature; ``B`` the batch, ``A`` the discrete actions.

    critic:       L_Q     = sum_j mean_b w_b (Q_j(s_b, a_b) - y_b)^2
    actor:        L_pi    = mean_b (alpha log pi(a_b|s_b) - Q(s_b, a_b)),    a_b ~ pi(s_b)
    discrete:     L_pi    = mean_b sum_a pi(a|s_b) (alpha log pi(a|s_b) - Q(s_b, a))
    temperature:  L_alpha = -mean_b log_alpha * sg(log pi(a_b|s_b) + H_target)
    discrete:     L_alpha = -mean_b log_alpha * sg(sum_a pi(a|s_b) (log pi(a|s_b) + H_target))
    soft value:   V(s)    = sum_a pi(a|s) (Q(s, a) - alpha log pi(a|s))       (discrete)

The temperature loss's gradient is ``-mean_b (log pi + H_target)``: it raises ``alpha``
when the policy's entropy ``-log pi`` is below ``H_target`` and lowers it when above.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.rl.ops import ensemble_min

sg = jax.lax.stop_gradient


def twin_min(q: jax.Array) -> jax.Array:
    """``min_j Q_j`` over the twin axis, ``q [2, ...] -> [...]``, taken by selection
    (:func:`jaxlab.rl.ops.ensemble_min`), so its gradient never depends on values comparing
    equal after the compiler recomputes them."""
    return ensemble_min(q)


def soft_critic_loss(
    q: jax.Array, y: jax.Array, weight: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """``sum_j mean_b w_b (Q_j - y_b)^2`` for twin ``q [2, B]``, ``y [B]``, ``weight [B]``;
    aux: ``|Q_j - y|`` averaged over the twins ``[B]`` (new priorities) and the mean Q."""
    err = q - y[None]
    loss = jnp.sum(jnp.mean(weight[None] * err**2, axis=1))
    return loss, (jnp.abs(err).mean(axis=0), q.mean())


def soft_actor_loss(log_prob: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """``mean_b (alpha log pi(a_b|s_b) - Q(s_b, a_b))``; ``log_prob``, ``q`` ``[B]`` at
    reparameterised samples ``a_b ~ pi(s_b)``."""
    return jnp.mean(alpha * log_prob - q)


def discrete_soft_actor_loss(log_probs: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """``mean_b sum_a pi(a|s_b) (alpha log pi(a|s_b) - Q(s_b, a))``; ``log_probs``, ``q``
    ``[B, A]`` (the exact expectation over actions)."""
    return jnp.mean(jnp.sum(jnp.exp(log_probs) * (alpha * log_probs - q), axis=-1))


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: jax.Array):
    """``-mean_b log_alpha * sg(log_prob_b + target_entropy)``; ``log_prob [B]`` (continuous:
    ``log pi(a_b|s_b)`` at sampled actions; discrete: ``sum_a pi log pi``) -> scalar."""
    return -jnp.mean(log_alpha * sg(log_prob + target_entropy))


def discrete_temperature_loss(
    log_alpha: jax.Array, log_probs: jax.Array, target_entropy: jax.Array
) -> jax.Array:
    """``-mean_b log_alpha * sg(sum_a pi(a|s_b) (log pi(a|s_b) + target_entropy))``,
    ``log_probs [B, A]`` -> scalar (``sum_a pi = 1`` folds the target out of the sum)."""
    return temperature_loss(log_alpha, jnp.sum(jnp.exp(log_probs) * log_probs, -1), target_entropy)


def discrete_soft_value(log_probs: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """``V(s) = sum_a pi(a|s) (Q(s, a) - alpha log pi(a|s))``; ``log_probs``, ``q`` (the
    twins' minimum) ``[B, A]`` -> ``[B]``."""
    return jnp.sum(jnp.exp(log_probs) * (q - alpha * log_probs), axis=-1)


__all__ = [
    "twin_min",
    "discrete_soft_actor_loss",
    "discrete_soft_value",
    "discrete_temperature_loss",
    "soft_actor_loss",
    "soft_critic_loss",
    "temperature_loss",
]
