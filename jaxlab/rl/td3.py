"""TD3's target and actor loss, pure and hand-checkable (Fujimoto et al., 2018); DDPG
(Lillicrap et al., 2016) is the case of one critic and no target smoothing.

Actions live in a box ``[low, high]`` with centre ``c = (high + low) / 2`` and half-range
``h = (high - low) / 2``; noise scales are in units of ``h`` (the box rescaled to
``[-1, 1]``), so one setting means the same on every env. ``mu`` is the actor, ``mu'``
its target copy, ``Q'_k`` the ``K`` target critics (``K = 2`` twin, ``K = 1`` DDPG).

    behaviour:   a   = clip(mu(s) + h * sigma * eps,                          low, high)
    smoothing:   a'  = clip(mu'(s') + h * clip(sigma' * eps', -c', c'),        low, high)
    target:      y   = r + gamma (1 - term) min_k Q'_k(s', a')
    critic:      L_Q = sum_k mean_b w_b (Q_k(s_b, a_b) - y_b)^2   (:func:`soft_critic_loss`)
    actor:       L_mu = -mean_b Q_1(s_b, mu(s_b))

``eps, eps' ~ N(0, I)``; ``sigma`` is the exploration noise (a schedule over frames),
``sigma'`` the target noise and ``c'`` its clip (``sigma' = 0``: no smoothing). The actor
follows the first critic only, as in the paper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.rl.ops import ensemble_min
from jaxlab.rl.sac import soft_critic_loss
from jaxlab.rl.td import bootstrap


def noisy_action(
    action: jax.Array,
    noise: jax.Array,
    low: jax.Array,
    high: jax.Array,
    noise_clip: jax.Array | float = jnp.inf,
) -> jax.Array:
    """``clip(action + h * clip(noise, -noise_clip, noise_clip), low, high)`` with
    ``h = (high - low) / 2``; ``action``, ``noise [..., A]`` (noise already scaled by its
    sigma), ``low``/``high [A]``."""
    low, high = jnp.broadcast_to(low, action.shape), jnp.broadcast_to(high, action.shape)
    half = (high - low) / 2.0
    return jnp.clip(action + half * jnp.clip(noise, -noise_clip, noise_clip), low, high)


def td3_target(
    reward: jax.Array,
    terminated: jax.Array,
    gamma: jax.Array | float,
    q_next: jax.Array,
) -> jax.Array:
    """``y [B] = r + gamma (1 - term) min_k Q'_k(s', a')`` from ``q_next [K, B]`` (the target
    critics at the smoothed target action)."""
    return bootstrap(reward, terminated, gamma, ensemble_min(q_next))


def deterministic_actor_loss(q: jax.Array) -> jax.Array:
    """``-mean_b Q_1(s_b, mu(s_b))`` from the ensemble's ``q [K, B]`` at the actor's actions."""
    return -jnp.mean(q[0])


critic_loss = soft_critic_loss  # the same regression: sum_k mean_b w_b (Q_k - y_b)^2

__all__ = ["critic_loss", "deterministic_actor_loss", "noisy_action", "td3_target"]
