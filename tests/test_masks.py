"""Action masks (``ObservationSpec.mask_dim``): the torso ignores the mask entries, every
categorical and Q head forbids what the mask forbids, and exploration stays inside it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.networks import MASKED, ActorCritic, DiscreteActor, QNetwork, Torso, TorsoDef
from jaxlab.rl.exploration import epsilon_greedy

A = 4
DEF = TorsoDef(hid_layers=(16,), obs_shape=(3,), mask_dim=A)
# Three observation values, then the mask: only actions 1 and 3 allowed.
OBS = jnp.array([[0.3, -1.0, 2.0, 0.0, 1.0, 0.0, 1.0]], jnp.float32)
ALLOWED = np.array([False, True, False, True])


def test_the_torso_does_not_read_the_mask():
    torso = Torso(DEF)
    params = torso.init(jax.random.PRNGKey(0), OBS)
    flipped = OBS.at[0, 3:].set(jnp.array([1.0, 0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(torso.apply(params, OBS), torso.apply(params, flipped))


def test_heads_forbid_the_masked_actions():
    key = jax.random.PRNGKey(1)
    q_net = QNetwork(A, DEF, dueling=True)
    q = q_net.apply(q_net.init(key, OBS), OBS)[0]
    assert (np.asarray(q)[~ALLOWED] == MASKED).all() and (np.asarray(q)[ALLOWED] > MASKED).all()
    for net in (ActorCritic(A, True, DEF), DiscreteActor(A, DEF)):
        out = net.apply(net.init(key, OBS), OBS)
        pi = out[0] if isinstance(out, tuple) else out
        draws = jax.vmap(lambda k, pi=pi: pi.sample(k))(jax.random.split(key, 2000))
        assert set(np.unique(np.asarray(draws))) == {1, 3}
        probs = np.exp(np.asarray(jax.nn.log_softmax(pi.logits)))[0]
        assert (probs[~ALLOWED] == 0.0).all()
        assert np.isfinite(np.asarray(pi.entropy())).all()


def test_epsilon_greedy_explores_only_allowed_actions():
    q = jnp.where(jnp.asarray(ALLOWED), jnp.array([5.0, 1.0, 9.0, 2.0]), MASKED)
    q = jnp.broadcast_to(q, (5000, A))
    acts = np.asarray(epsilon_greedy(jax.random.PRNGKey(3), q, 1.0, q > MASKED / 2))
    assert set(np.unique(acts)) == {1, 3}
    assert abs((acts == 1).mean() - 0.5) < 0.05  # uniform over the allowed ones
    greedy = np.asarray(epsilon_greedy(jax.random.PRNGKey(3), q, 0.0, q > MASKED / 2))
    assert (greedy == 3).all()
