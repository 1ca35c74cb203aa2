"""SAC's losses (jaxlab.rl.sac): hand numbers, gradients and identities (the temperature and
soft-value hand tests live in tests/test_sac.py)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.rl import sac as losses

LN_05 = math.log(0.5)


def test_critic_loss_by_hand_with_weights():
    # err = Q_j - y = [[-1, 1], [1, -1]]; w err^2 = [[1, 0.5], [1, 0.5]]: 0.75 per twin
    q, y, w = jnp.array([[1.0, 2.0], [3.0, 0.0]]), jnp.array([2.0, 1.0]), jnp.array([1.0, 0.5])
    (loss, (td_abs, q_mean)), grad = jax.value_and_grad(losses.soft_critic_loss, has_aux=True)(
        q, y, w
    )
    np.testing.assert_allclose(loss, 1.5)
    np.testing.assert_allclose(td_abs, [1.0, 1.0])  # |err| averaged over the twins
    np.testing.assert_allclose(q_mean, 1.5)
    np.testing.assert_allclose(grad, [[-1.0, 0.5], [1.0, -0.5]])  # 2 w err / B


def test_critic_loss_with_unit_weights_is_the_summed_twin_mse():
    q, y = jnp.array([[0.5, -1.0, 2.0], [1.5, 0.0, 4.0]]), jnp.array([1.0, 1.0, 1.0])
    loss, _ = losses.soft_critic_loss(q, y, jnp.ones(3))
    np.testing.assert_allclose(loss, np.mean((q[0] - y) ** 2) + np.mean((q[1] - y) ** 2))


def test_actor_loss_by_hand_and_its_gradients():
    # alpha log pi - Q = [-0.5 - 3, -1 - 1] -> mean -2.75
    log_prob, q = jnp.array([-1.0, -2.0]), jnp.array([3.0, 1.0])
    loss, (g_logp, g_q, g_alpha) = jax.value_and_grad(losses.soft_actor_loss, argnums=(0, 1, 2))(
        log_prob, q, jnp.float32(0.5)
    )
    np.testing.assert_allclose(loss, -2.75)
    np.testing.assert_allclose(g_logp, [0.25, 0.25])  # alpha / B
    np.testing.assert_allclose(g_q, [-0.5, -0.5])  # the actor climbs Q
    np.testing.assert_allclose(g_alpha, -1.5)  # mean log pi


def test_discrete_actor_loss_by_hand_and_minus_the_soft_value():
    # 0.5 (0.1 ln 0.5 - 1) + 0.5 (0.1 ln 0.5 - 3) = 0.1 ln 0.5 - 2
    log_probs = jnp.array([[LN_05, LN_05], [math.log(0.9), math.log(0.1)]])
    q, alpha = jnp.array([[1.0, 3.0], [0.0, -2.0]]), jnp.float32(0.1)
    loss = losses.discrete_soft_actor_loss(log_probs[:1], q[:1], alpha)
    np.testing.assert_allclose(loss, 0.1 * LN_05 - 2.0, rtol=1e-6)
    # the loss is minus the mean soft value of the same policy and critic
    value = losses.discrete_soft_value(log_probs, q, alpha)
    np.testing.assert_allclose(
        losses.discrete_soft_actor_loss(log_probs, q, alpha), -value.mean(), 1e-6
    )


def test_temperature_gradient_raises_alpha_below_the_target_entropy():
    """d L / d log_alpha = -mean(log pi + H_target): negative (alpha grows under gradient
    descent) when the entropy -log pi is below the target, positive when above."""
    grad = jax.grad(losses.temperature_loss)
    low_entropy, high_entropy = jnp.array([-0.1, -0.3]), jnp.array([-3.0, -2.0])
    target = jnp.float32(1.0)
    assert float(grad(jnp.float32(0.0), low_entropy, target)) < 0.0
    assert float(grad(jnp.float32(0.0), high_entropy, target)) > 0.0
    # the log-probabilities get no gradient (stop_gradient)
    g_logp = jax.grad(losses.temperature_loss, argnums=1)(jnp.float32(0.7), low_entropy, target)
    np.testing.assert_array_equal(g_logp, [0.0, 0.0])


def test_discrete_temperature_loss_of_a_uniform_policy_uses_log_num_actions():
    # uniform over A = 4: sum_a pi log pi = -ln 4 for every state
    log_probs = jnp.full((3, 4), -math.log(4.0))
    log_alpha, target = jnp.float32(0.3), jnp.float32(0.5)
    expected = losses.temperature_loss(log_alpha, jnp.full((3,), -math.log(4.0)), target)
    np.testing.assert_allclose(
        losses.discrete_temperature_loss(log_alpha, log_probs, target), expected
    )
    np.testing.assert_allclose(expected, -0.3 * (0.5 - math.log(4.0)), rtol=1e-6)


def test_losses_under_jit_and_vmap_over_alpha():
    log_probs = jnp.array([[LN_05, LN_05]])
    q = jnp.array([[1.0, 3.0]])
    alphas = jnp.array([0.0, 0.1])
    loss = jax.jit(jax.vmap(lambda a: losses.discrete_soft_actor_loss(log_probs, q, a)))(alphas)
    np.testing.assert_allclose(loss, [-2.0, 0.1 * LN_05 - 2.0], rtol=1e-6)
