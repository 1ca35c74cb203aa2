"""On-policy losses (jaxlab.rl.losses) against hand-computed numbers and identities."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.rl import losses

# A PPO batch of five steps, clip range 0.2, worked by hand:
#   t  ratio  A    ratio*A  clip(ratio)*A  min (selected)
#   0  0.5    1    0.5      0.8            0.5   unclipped
#   1  1.0   -2   -2.0     -2.0           -2.0   tie -> unclipped
#   2  1.5    1    1.5      1.2            1.2   clipped (ratio above 1.2)
#   3  1.1   -1   -1.1     -1.1           -1.1   tie -> unclipped (ratio inside the range)
#   4  0.5   -1   -0.5     -0.8           -0.8   clipped (ratio below 0.8)
EPS = 0.2
RATIO = np.array([0.5, 1.0, 1.5, 1.1, 0.5], np.float32)
ADV = np.array([1.0, -2.0, 1.0, -1.0, -1.0], np.float32)


def batch(seed: int, n: int = 16) -> dict[str, np.ndarray]:
    """Random per-step float32 arrays ``[n]`` for the identities."""
    rng = np.random.default_rng(seed)
    log_ratio = 0.3 * rng.normal(size=n)
    b = {
        "log_prob": rng.normal(size=n) - 1.0,
        "old_log_prob": rng.normal(size=n) - 1.0,
        "ratio": np.exp(log_ratio),
        "log_ratio": log_ratio,
        "adv": rng.normal(size=n),
        "v": rng.normal(size=n),
        "old_v": rng.normal(size=n),
        "target": rng.normal(size=n),
        "mask": rng.random(n) < 0.7,
    }
    return {k: x.astype(np.float32) for k, x in b.items()}


# ------------------------------------------------------------------ hand-computed numbers


def test_normalize_advantages_hand_computed():
    # mean 2.5, population std sqrt((1.5^2 + 0.5^2 + 0.5^2 + 1.5^2) / 4) = sqrt(1.25)
    adv = losses.normalize_advantages(jnp.array([1.0, 2.0, 3.0, 4.0]))
    expected = np.array([-1.5, -0.5, 0.5, 1.5]) / (np.sqrt(1.25) + 1e-8)
    np.testing.assert_allclose(adv, expected, rtol=1e-6)
    # A constant batch: the 1e-8 keeps it finite (all zeros), not 0 / 0.
    np.testing.assert_array_equal(losses.normalize_advantages(jnp.full(3, 7.0)), np.zeros(3))


def test_importance_ratio_hand_computed():
    ratio, log_ratio = losses.importance_ratio(jnp.array([-1.0, np.log(2.0) - 1.0]), -1.0)
    np.testing.assert_allclose(log_ratio, [0.0, np.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(ratio, [1.0, 2.0], rtol=1e-6)


def test_clipped_surrogate_hand_computed():
    # -mean([0.5, -2, 1.2, -1.1, -0.8]) = 2.2 / 5
    loss = losses.clipped_surrogate_loss(RATIO, ADV, EPS)
    np.testing.assert_allclose(loss, 0.44, rtol=1e-6)


def test_clipped_surrogate_gradient_flows_only_through_the_selected_branch():
    # Unclipped steps (0, 1, 3): d/d ratio = -A / 5. Clipped steps (2, 4), ratio outside the
    # range: 0. Ties (1, 3) go to the unclipped term.
    grad = jax.grad(losses.clipped_surrogate_loss)(jnp.asarray(RATIO), ADV, EPS)
    np.testing.assert_allclose(grad, [-0.2, 0.4, 0.0, 0.2, 0.0], rtol=1e-6)


def test_value_loss_hand_computed():
    v, target = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 2.0, 5.0])
    # 0.5 * mean([1, 0, 4])
    np.testing.assert_allclose(losses.value_loss(v, target), 5.0 / 6.0, rtol=1e-6)
    # Clipped with eps 0.5 around old values [0, 1, 3]:
    #   t  V - V_old  V_clip  (V-R)^2  (V_clip-R)^2  max (selected)
    #   0  1          0.5     1        0.25          1     unclipped
    #   1  1          1.5     0        0.25          0.25  clipped (V outside the range)
    #   2  0          3       4        4             4     tie -> unclipped
    old_v = jnp.array([0.0, 1.0, 3.0])
    np.testing.assert_allclose(losses.value_loss(v, target, old_v, 0.5), 0.875, rtol=1e-6)


def test_value_clipping_gradient_flows_only_through_the_selected_branch():
    v, target, old_v = (
        jnp.array([1.0, 2.0, 3.0]),
        jnp.array([0.0, 2.0, 5.0]),
        jnp.array([0.0, 1.0, 3.0]),
    )
    # Unclipped steps: d/dV = (V - R) / 3; the clipped step (V outside the range): 0.
    grad = jax.grad(losses.value_loss)(v, target, old_v, 0.5)
    np.testing.assert_allclose(grad, [1.0 / 3.0, 0.0, -2.0 / 3.0], rtol=1e-6)
    # Without clipping every step gets (V - R) / 3.
    grad = jax.grad(losses.value_loss)(v, target)
    np.testing.assert_allclose(grad, [1 / 3, 0.0, -2 / 3], rtol=1e-6)


def test_value_clipping_needs_the_old_values():
    with pytest.raises(ValueError, match="old_v_t"):
        losses.value_loss(jnp.zeros(2), jnp.zeros(2), clip_eps=0.2)


def test_approx_kl_and_clip_fraction_hand_computed():
    ratio, log_ratio = jnp.array([1.0, 2.0]), jnp.array([0.0, np.log(2.0)])
    # mean([(1 - 1) - 0, (2 - 1) - ln 2])
    np.testing.assert_allclose(losses.approx_kl(ratio, log_ratio), (1 - np.log(2)) / 2, rtol=1e-6)
    # |ratio - 1| = [0.5, 0, 0.5, 0.1, 0.5] > 0.2 at steps 0, 2, 4
    np.testing.assert_allclose(losses.clip_fraction(RATIO, EPS), 0.6, rtol=1e-6)


def test_policy_gradient_loss_hand_computed():
    log_prob, adv = jnp.array([-1.0, -2.0, -0.5]), jnp.array([1.0, 3.0, -2.0])
    # -mean([-1, -6, 1]) = 2; d/d log_prob = -A / 3
    np.testing.assert_allclose(losses.policy_gradient_loss(log_prob, adv), 2.0, rtol=1e-6)
    grad = jax.grad(losses.policy_gradient_loss)(log_prob, adv)
    np.testing.assert_allclose(grad, [-1 / 3, -1.0, 2 / 3], rtol=1e-6)


def test_reinforce_loss_hand_computed():
    log_prob = jnp.array([-1.0, -2.0, -0.5, -3.0])
    adv = jnp.array([1.0, 3.0, -2.0, 10.0])
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])
    # -(-1 - 6 + 1) / 3 valid steps = 2; the masked step (-3 * 10) counts for nothing.
    np.testing.assert_allclose(losses.reinforce_loss(log_prob, adv, mask), 2.0, rtol=1e-6)
    grad = jax.grad(losses.reinforce_loss)(log_prob, adv, mask)
    np.testing.assert_allclose(grad, [-1 / 3, -1.0, 2 / 3, 0.0], rtol=1e-6)
    # No valid step: 0, not 0 / 0.
    assert losses.reinforce_loss(log_prob, adv, jnp.zeros(4)) == 0.0


def test_masked_mean_hand_computed():
    x = jnp.array([1.0, 2.0, 3.0, 100.0])
    np.testing.assert_allclose(losses.masked_mean(x, jnp.array([1.0, 0.0, 1.0, 0.0])), 2.0)
    assert losses.masked_mean(x, jnp.zeros(4)) == 0.0


# ------------------------------------------------------------------ identities


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.5])
def test_ratio_one_gives_minus_mean_advantage(eps):
    adv = jnp.asarray(batch(0)["adv"])
    loss = losses.clipped_surrogate_loss(jnp.ones_like(adv), adv, eps)
    assert loss == -adv.mean()


def test_clipping_is_inactive_inside_the_range():
    b = batch(1)
    adv = jnp.asarray(b["adv"])
    ratio = jnp.asarray(1.0 + 0.19 * np.tanh(b["log_ratio"]))  # |ratio - 1| < 0.19 < eps
    loss = losses.clipped_surrogate_loss(ratio, adv, EPS)
    np.testing.assert_allclose(loss, -(ratio * adv).mean(), rtol=1e-6)
    grad = jax.grad(losses.clipped_surrogate_loss)(ratio, adv, EPS)
    np.testing.assert_allclose(grad, -adv / adv.size, rtol=1e-6)
    assert losses.clip_fraction(ratio, EPS) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_value_clipping_never_lowers_the_loss(seed):
    b = batch(seed, n=64)
    plain = losses.value_loss(b["v"], b["target"])
    for eps in (0.0, 0.1, 0.5, 10.0):
        clipped = losses.value_loss(b["v"], b["target"], b["old_v"], eps)
        assert clipped >= plain
    # A clip range wider than every |V - V_old| changes nothing.
    wide = losses.value_loss(b["v"], b["target"], b["v"], 1.0)
    np.testing.assert_allclose(wide, plain, rtol=1e-6)


def test_approx_kl_is_non_negative_per_step():
    b = batch(2)
    ratio, log_ratio = losses.importance_ratio(b["log_prob"], b["old_log_prob"])
    per_step = jax.vmap(losses.approx_kl)(ratio[:, None], log_ratio[:, None])
    assert (per_step >= 0).all()


def test_reinforce_loss_with_full_mask_is_the_policy_gradient_loss():
    b = batch(3)
    full = losses.reinforce_loss(b["log_prob"], b["adv"], np.ones_like(b["mask"]))
    np.testing.assert_allclose(full, losses.policy_gradient_loss(b["log_prob"], b["adv"]), 1e-6)


# ------------------------------------------------------------------ jit and vmap

# Each loss with its per-step arguments (vmapped) and its scalar ones (shared).
CASES = {
    "normalize_advantages": (losses.normalize_advantages, ("adv",), ()),
    "importance_ratio": (losses.importance_ratio, ("log_prob", "old_log_prob"), ()),
    "clipped_surrogate_loss": (losses.clipped_surrogate_loss, ("ratio", "adv"), (EPS,)),
    "value_loss": (losses.value_loss, ("v", "target"), ()),
    "value_loss_clipped": (losses.value_loss, ("v", "target", "old_v"), (0.3,)),
    "approx_kl": (losses.approx_kl, ("ratio", "log_ratio"), ()),
    "clip_fraction": (losses.clip_fraction, ("ratio",), (EPS,)),
    "policy_gradient_loss": (losses.policy_gradient_loss, ("log_prob", "adv"), ()),
    "reinforce_loss": (losses.reinforce_loss, ("log_prob", "adv", "mask"), ()),
    "masked_mean": (losses.masked_mean, ("adv", "mask"), ()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_and_vmap_agree_with_unbatched(name):
    fn, per_step, shared = CASES[name]
    items = [batch(seed) for seed in range(3)]
    args = lambda b: [b[k] for k in per_step] + list(shared)  # noqa: E731
    single = [fn(*args(b)) for b in items]
    jitted = [jax.jit(fn)(*args(b)) for b in items]
    stacked = [np.stack([b[k] for b in items]) for k in per_step]
    in_axes = (0,) * len(per_step) + (None,) * len(shared)
    batched = jax.vmap(fn, in_axes=in_axes)(*stacked, *shared)
    for i in range(len(items)):
        for got in (jitted[i], jax.tree.map(lambda x, i=i: x[i], batched)):
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), single[i], got)


# ------------------------------------------------------------------ layering


def test_maths_layer_imports_no_algorithm_spec_or_env_module():
    code = (
        "import sys, jaxlab.rl.losses, jaxlab.rl.ops\n"
        "bad = [m for m in sys.modules if m.split('.')[:2] in "
        "(['jaxlab', 'algorithms'], ['jaxlab', 'spec'], ['jaxlab', 'envs'])]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_smaller_and_larger_stay_importable_from_the_algorithm_base():
    from jaxlab.algorithms import base
    from jaxlab.rl import ops

    assert base.smaller is ops.smaller and base.larger is ops.larger
