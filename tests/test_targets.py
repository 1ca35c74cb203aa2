"""Target-network updates (jaxlab.rl.targets): hand numbers, identities, jit and vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.rl.targets import hard_update, polyak_update, update_target

ONLINE = {"w": jnp.array([1.0, 2.0]), "b": jnp.float32(-4.0)}
TARGET = {"w": jnp.array([3.0, 0.0]), "b": jnp.float32(4.0)}


def assert_tree_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_polyak_by_hand():
    # tau = 0.25: 0.25 * online + 0.75 * target
    new = polyak_update(ONLINE, TARGET, 0.25)
    np.testing.assert_allclose(new["w"], [0.25 + 2.25, 0.5 + 0.0])
    np.testing.assert_allclose(new["b"], -1.0 + 3.0)


def test_polyak_with_tau_one_is_a_copy_and_tau_zero_keeps_the_target():
    assert_tree_equal(polyak_update(ONLINE, TARGET, 1.0), ONLINE)
    assert_tree_equal(polyak_update(ONLINE, TARGET, 0.0), TARGET)
    assert_tree_equal(update_target("polyak", ONLINE, TARGET, tau=jnp.float32(1.0)), ONLINE)


def test_hard_update_copies_only_on_the_due_step():
    for step in range(7):
        new = hard_update(ONLINE, TARGET, step, every=3)
        assert_tree_equal(new, ONLINE if step % 3 == 0 else TARGET)
    assert_tree_equal(hard_update(ONLINE, TARGET, 5, every=1), ONLINE)


def test_none_is_the_online_parameters_and_unknown_kinds_fail():
    assert update_target("none", ONLINE, TARGET) is ONLINE
    with pytest.raises(ValueError, match="soft"):
        update_target("soft", ONLINE, TARGET)  # type: ignore[arg-type]


def test_under_jit_and_vmap_with_traced_step_and_tau():
    """Four sessions: steps 0..3 (copy every 2) and taus 0, 0.5, 1, 0.25 batched."""
    online = jax.tree.map(lambda x: jnp.stack([x] * 4), ONLINE)
    target = jax.tree.map(lambda x: jnp.stack([x] * 4), TARGET)
    steps, taus = jnp.arange(4), jnp.array([0.0, 0.5, 1.0, 0.25])

    hard = jax.jit(jax.vmap(lambda o, t, s: update_target("hard", o, t, step=s, every=2)))
    new = hard(online, target, steps)
    np.testing.assert_array_equal(new["b"], [-4.0, 4.0, -4.0, 4.0])
    np.testing.assert_array_equal(new["w"][1], TARGET["w"])

    soft = jax.jit(jax.vmap(lambda o, t, tau: update_target("polyak", o, t, tau=tau)))
    new = soft(online, target, taus)
    np.testing.assert_allclose(new["b"], [4.0, 0.0, -4.0, 2.0])
    np.testing.assert_allclose(new["w"][3], [2.5, 0.5])
