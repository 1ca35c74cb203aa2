"""One-step TD targets (jaxlab.rl.td): hand numbers and identities."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.rl.td import bootstrap, q_learning_target


def test_bootstrap_by_hand_and_a_terminated_step_is_its_reward():
    reward = jnp.array([1.0, -2.0, 0.5])
    next_value = jnp.array([10.0, 4.0, 100.0])
    y = bootstrap(reward, jnp.array([False, False, True]), 0.5, next_value)
    np.testing.assert_allclose(y, [1.0 + 5.0, -2.0 + 2.0, 0.5])
    # terminated as float (as stored in replay) gives the same
    y_float = bootstrap(reward, jnp.array([0.0, 0.0, 1.0]), 0.5, next_value)
    np.testing.assert_array_equal(y, y_float)


def test_gamma_zero_is_the_reward_and_shapes_broadcast_over_time():
    reward = jnp.arange(6.0).reshape(3, 2)  # [T, N] as SARSA passes it
    term = jnp.zeros((3, 2), bool)
    np.testing.assert_array_equal(bootstrap(reward, term, 0.0, jnp.full((3, 2), 7.0)), reward)
    np.testing.assert_allclose(bootstrap(reward, term, 1.0, jnp.ones((3, 2))), reward + 1.0)


# Three transitions, three actions; the second one terminated. gamma = 0.9.
Q_TARGET = jnp.array([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0], [-1.0, -3.0, -2.0]])
Q_ONLINE = jnp.array([[0.0, 0.0, 9.0], [0.0, 3.0, 0.0], [0.0, 1.0, 0.0]])
REWARD = jnp.array([0.5, 2.0, 1.0])
TERM = jnp.array([0.0, 1.0, 0.0])


def test_q_learning_bootstraps_from_the_target_networks_max():
    # max_a Q_targ = [5, (7: terminated), -1]
    y = q_learning_target(Q_TARGET, Q_ONLINE, REWARD, TERM, 0.9, double=False)
    np.testing.assert_allclose(y, [0.5 + 4.5, 2.0, 1.0 - 0.9], rtol=1e-6)


def test_double_q_uses_the_online_argmax_and_the_target_value():
    # argmax Q_online = [2, 1, 1] -> Q_targ at them = [2, (0: terminated), -3]
    y = q_learning_target(Q_TARGET, Q_ONLINE, REWARD, TERM, 0.9, double=True)
    np.testing.assert_allclose(y, [0.5 + 1.8, 2.0, 1.0 - 2.7], rtol=1e-6)
    # with the online values equal to the target's, double Q-learning is Q-learning
    same = q_learning_target(Q_TARGET, Q_TARGET, REWARD, TERM, 0.9, double=True)
    np.testing.assert_array_equal(
        same, q_learning_target(Q_TARGET, Q_ONLINE, REWARD, TERM, 0.9, False)
    )


def test_targets_under_jit_and_vmap():
    gammas = jnp.array([0.0, 0.9])
    fn = jax.jit(jax.vmap(lambda g: q_learning_target(Q_TARGET, Q_ONLINE, REWARD, TERM, g, True)))
    y = fn(gammas)
    np.testing.assert_allclose(y[0], REWARD)
    np.testing.assert_allclose(y[1], [2.3, 2.0, -1.7], rtol=1e-6)
