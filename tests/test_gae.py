"""GAE against a plain-Python reference, with a termination and a truncation mid-rollout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.rl import gae


def reference_gae(reward, value, next_value, terminated, truncated, gamma, lam):
    """Textbook loop over one stream: bootstrap unless terminated, cut at any episode end."""
    T = len(reward)
    adv = [0.0] * T
    running = 0.0
    for t in reversed(range(T)):
        boot = 0.0 if terminated[t] else gamma * next_value[t]
        delta = reward[t] + boot - value[t]
        running = delta + (0.0 if (terminated[t] or truncated[t]) else gamma * lam * running)
        adv[t] = running
    return np.array(adv), np.array(adv) + np.array(value)


def make_batch(T=7, B=3, seed=0):
    rng = np.random.default_rng(seed)
    reward = rng.normal(size=(T, B)).astype(np.float32)
    value = rng.normal(size=(T, B)).astype(np.float32)
    next_value = rng.normal(size=(T, B)).astype(np.float32)
    terminated = np.zeros((T, B), bool)
    truncated = np.zeros((T, B), bool)
    terminated[2, 0] = True  # a termination mid-rollout in stream 0
    truncated[4, 0] = True  # and a truncation later in the same stream
    truncated[1, 1] = True
    terminated[5, 2] = True
    return reward, value, next_value, terminated, truncated


def test_gae_matches_python_reference_with_termination_and_truncation():
    gamma, lam = 0.97, 0.9
    r, v, nv, term, trunc = make_batch()
    adv, ret = jax.jit(gae)(r, v, nv, term, term | trunc, gamma, lam)
    for b in range(r.shape[1]):
        ref_adv, ref_ret = reference_gae(
            r[:, b], v[:, b], nv[:, b], term[:, b], trunc[:, b], gamma, lam
        )
        np.testing.assert_allclose(adv[:, b], ref_adv, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ret[:, b], ref_ret, rtol=1e-5, atol=1e-6)


def test_truncation_bootstraps_and_termination_does_not():
    r, v, nv, term, trunc = make_batch()
    gamma, lam = 0.9, 0.8
    adv, _ = gae(r, v, nv, term, term | trunc, gamma, lam)
    # At the truncated step the advantage is the one-step TD error with a bootstrap...
    np.testing.assert_allclose(adv[4, 0], r[4, 0] + gamma * nv[4, 0] - v[4, 0], rtol=1e-6)
    # ...and at the terminated step the bootstrap is zero.
    np.testing.assert_allclose(adv[2, 0], r[2, 0] - v[2, 0], rtol=1e-6)


def test_gae_hand_computed_numbers():
    # T=3, one stream, no episode end; gamma=0.5, lam=0.5.
    r = jnp.array([[1.0], [2.0], [3.0]])
    v = jnp.zeros((3, 1))
    nv = jnp.array([[0.0], [0.0], [4.0]])
    no = jnp.zeros((3, 1), bool)
    adv, ret = gae(r, v, nv, no, no, 0.5, 0.5)
    # delta = [1, 2, 3 + 0.5 * 4 = 5]; A2 = 5, A1 = 2 + .25 * 5 = 3.25, A0 = 1 + .25 * 3.25
    np.testing.assert_allclose(adv[:, 0], [1.8125, 3.25, 5.0])
    np.testing.assert_allclose(ret[:, 0], [1.8125, 3.25, 5.0])


def test_gae_under_vmap_equals_per_item():
    r, v, nv, term, trunc = make_batch(seed=1)
    stacked = [np.stack([x, x[::-1]]) for x in (r, v, nv, term, term | trunc)]
    adv, _ = jax.vmap(gae, in_axes=(0, 0, 0, 0, 0, None, None))(*stacked, 0.99, 0.95)
    single, _ = gae(r, v, nv, term, term | trunc, 0.99, 0.95)
    np.testing.assert_allclose(adv[0], single, rtol=1e-6)
