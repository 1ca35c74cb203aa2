"""On-policy losses as pure functions of arrays: PPO, A2C, REINFORCE, self-imitation.

Each loss takes the per-step quantities of a batch (any shape, usually the flat ``[B]``
steps of a rollout or minibatch; all arguments of one call share it) and returns a scalar
mean over every entry. Coefficients and clip ranges are scalars (Python floats or array
leaves). The callers run the network; advantages, returns and old values are data (no
gradient flows into them from the loss's parameters).

Notation: ``pi(a_t|s_t)`` the policy being learnt, ``pi_old`` the one that sampled the
batch, ``A_t`` advantages, ``R_t`` value targets, ``V_t`` the critic's value,
``eps`` the clip range. ``min``/``max`` below are :func:`~jaxlab.rl.ops.smaller` and
:func:`~jaxlab.rl.ops.larger`: the gradient goes wholly to the operand selected.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.rl.ops import larger, smaller


def normalize_advantages(adv_t: jax.Array) -> jax.Array:
    """``(A_t - mean(A)) / (std(A) + 1e-8)``, statistics over every entry; shape kept."""
    return (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8)


def importance_ratio(log_prob_t: jax.Array, old_log_prob_t: jax.Array) -> tuple[jax.Array, ...]:
    """``(ratio_t, log_ratio_t)`` with ``log_ratio_t = log pi(a_t|s_t) - log pi_old(a_t|s_t)``
    and ``ratio_t = exp(log_ratio_t)``; shape kept."""
    log_ratio_t = log_prob_t - old_log_prob_t
    return jnp.exp(log_ratio_t), log_ratio_t


def clipped_surrogate_loss(
    ratio_t: jax.Array, adv_t: jax.Array, clip_eps: jax.Array | float
) -> jax.Array:
    """PPO's clipped surrogate policy loss, a scalar:

        L_pi = -mean(min(ratio_t * A_t, clip(ratio_t, 1 - eps, 1 + eps) * A_t))

    ``ratio_t`` and ``A_t`` share one shape. Where the clipped term is selected and the
    ratio lies outside ``[1 - eps, 1 + eps]`` the step's gradient is zero.
    """
    clipped_t = jnp.clip(ratio_t, 1.0 - clip_eps, 1.0 + clip_eps)
    return -smaller(ratio_t * adv_t, clipped_t * adv_t).mean()


def value_loss(
    v_t: jax.Array,
    target_t: jax.Array,
    old_v_t: jax.Array | None = None,
    clip_eps: jax.Array | float | None = None,
) -> jax.Array:
    """Squared-error value loss, a scalar, with PPO's value clipping when ``clip_eps`` is
    given (then ``old_v_t``, the values the batch was collected with, is needed):

        L_v = 0.5 * mean((V_t - R_t)^2)                                     (no clipping)
        L_v = 0.5 * mean(max((V_t - R_t)^2,
                             (V_old_t + clip(V_t - V_old_t, -eps, eps) - R_t)^2))

    All arrays share one shape. Clipping never lowers the loss.
    """
    err_t = (v_t - target_t) ** 2
    if clip_eps is not None:
        if old_v_t is None:
            raise ValueError("value clipping (clip_eps) needs old_v_t")
        clipped_v_t = old_v_t + jnp.clip(v_t - old_v_t, -clip_eps, clip_eps)
        err_t = larger(err_t, (clipped_v_t - target_t) ** 2)
    return 0.5 * err_t.mean()


def approx_kl(ratio_t: jax.Array, log_ratio_t: jax.Array) -> jax.Array:
    """Estimate of ``KL(pi_old || pi)`` from the batch, a scalar (``>= 0`` per step):
    ``mean((ratio_t - 1) - log_ratio_t)``."""
    return ((ratio_t - 1.0) - log_ratio_t).mean()


def clip_fraction(ratio_t: jax.Array, clip_eps: jax.Array | float) -> jax.Array:
    """Share of the steps whose ratio lies outside the clip range: ``mean(|ratio_t - 1| >
    eps)``, a float scalar."""
    return (jnp.abs(ratio_t - 1.0) > clip_eps).mean()


def policy_gradient_loss(log_prob_t: jax.Array, adv_t: jax.Array) -> jax.Array:
    """The (A2C) policy-gradient loss, a scalar: ``L_pi = -mean(log pi(a_t|s_t) * A_t)``.
    Both arrays share one shape."""
    return -(log_prob_t * adv_t).mean()


def reinforce_loss(log_prob_t: jax.Array, adv_t: jax.Array, mask_t: jax.Array) -> jax.Array:
    """REINFORCE's masked policy-gradient loss, a scalar:

        L_pi = -sum_t m_t log pi(a_t|s_t) A_t / max(sum_t m_t, 1)

    ``A_t`` is the (centred or normalised) Monte-Carlo return and ``mask_t`` (``m_t``, float
    1/0) marks the steps with a complete return. All arrays share one shape; no valid step
    gives 0.
    """
    count = jnp.maximum(mask_t.sum(), 1.0)
    return -(log_prob_t * adv_t * mask_t).sum() / count


def self_imitation_losses(
    log_prob_t: jax.Array, value_t: jax.Array, ret_t: jax.Array, weight_t: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Self-imitation learning (Oh et al., 2018) on replayed steps with Monte-Carlo
    returns ``R_t`` and importance weights ``w_t``:

        A+_t  = max(R_t - V_t, 0)                 (no gradient into R)
        L_pi  = -mean(w_t * log pi(a_t|s_t) * stop_gradient(A+_t))
        L_v   = 0.5 * mean(w_t * A+_t^2)          (moves V up only where R_t > V_t)

    Returns ``(L_pi, L_v, A+_t)``; ``A+_t`` (no gradient) is the new priority."""
    clipped = jnp.maximum(ret_t - value_t, 0.0)
    fixed = jax.lax.stop_gradient(clipped)
    policy = -jnp.mean(weight_t * log_prob_t * fixed)
    return policy, 0.5 * jnp.mean(weight_t * clipped**2), fixed


def masked_mean(x_t: jax.Array, mask_t: jax.Array) -> jax.Array:
    """``sum_t m_t x_t / max(sum_t m_t, 1)``, a scalar: the mean over the masked-in steps
    (0 when there are none). Both arrays share one shape; REINFORCE's entropy bonus."""
    count = jnp.maximum(mask_t.sum(), 1.0)
    return (x_t * mask_t).sum() / count
