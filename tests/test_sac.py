"""SAC: hand-computed temperature losses and soft values, the tanh-Gaussian density, short
training runs (continuous and discrete, learning_starts respected) and spec errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from jaxlab.rl.distributions import TanhGaussian
from jaxlab.rl.sac import discrete_soft_value, discrete_temperature_loss, temperature_loss, twin_min
from jaxlab.runtime.run import train
from jaxlab.spec import SpecError, spec_from_dict

LN_09, LN_01, LN_05 = -0.10536052, -2.30258509, -0.69314718  # ln 0.9, ln 0.1, ln 0.5


def test_continuous_temperature_loss_by_hand():
    # log pi + H_target = [-1 - 1, 0.5 - 1] = [-2, -0.5], mean -1.25; loss = -0.5 * -1.25
    log_prob, target = jnp.array([-1.0, 0.5]), jnp.float32(-1.0)
    loss, grad = jax.value_and_grad(temperature_loss)(jnp.float32(0.5), log_prob, target)
    np.testing.assert_allclose(loss, 0.625, rtol=1e-6)
    np.testing.assert_allclose(grad, 1.25, rtol=1e-6)  # d/d log_alpha = -mean(...)


def test_discrete_temperature_loss_by_hand():
    # sum_a pi log pi: row 0 = ln 0.5 = -0.693147; row 1 = 0.9 ln 0.9 + 0.1 ln 0.1 = -0.325083.
    # Plus H_target 0.3: [-0.393147, -0.025083], mean -0.209115; loss = -(-1) * -0.209115.
    log_probs = jnp.array([[LN_05, LN_05], [LN_09, LN_01]])
    loss, grad = jax.value_and_grad(discrete_temperature_loss)(
        jnp.float32(-1.0), log_probs, jnp.float32(0.3)
    )
    np.testing.assert_allclose(loss, -0.209115, atol=1e-6)
    np.testing.assert_allclose(grad, 0.209115, atol=1e-6)


def test_discrete_soft_value_by_hand():
    # row 0: min_j Q = [1, 3]; 0.5 (1 + 0.0693147) + 0.5 (3 + 0.0693147) = 2.0693147
    # row 1: min_j Q = [0, -2]; 0.9 (0 + 0.0105361) + 0.1 (-2 + 0.2302585) = -0.1674917
    log_probs = jnp.array([[LN_05, LN_05], [LN_09, LN_01]])
    q = jnp.array([[[1.0, 4.0], [0.0, -1.0]], [[2.0, 3.0], [1.0, -2.0]]])  # [2, B, A]
    value = discrete_soft_value(log_probs, twin_min(q), jnp.float32(0.1))
    np.testing.assert_allclose(value, [2.0693147, -0.1674917], atol=1e-6)


def test_tanh_gaussian_density_is_the_change_of_variables():
    """exp(log_prob(a)) = d/da P(A <= a), with P(A <= a) = Phi((atanh((a - shift)/scale) - mu)
    / std) per dimension, estimated by a central difference (no Jacobian formula used)."""
    mean, log_std = jnp.array([0.3, -0.8]), jnp.array([-0.5, 0.2])
    scale, shift = jnp.array([2.0, 0.5]), jnp.array([0.0, 1.0])
    a = jnp.array([[0.7, 0.8], [-1.5, 1.3], [0.0, 1.0]])
    dist = TanhGaussian(jnp.tile(mean, (3, 1)), jnp.tile(log_std, (3, 1)), scale, shift)

    def cdf(x: np.ndarray) -> np.ndarray:
        u = np.arctanh((x - np.asarray(shift)) / np.asarray(scale))
        return np.asarray(norm.cdf((u - np.asarray(mean)) / np.exp(np.asarray(log_std))))

    h = 1e-3
    x = np.asarray(a, np.float64)
    density = np.prod((cdf(x + h) - cdf(x - h)) / (2 * h), axis=-1)
    np.testing.assert_allclose(np.exp(dist.log_prob(a)), density, rtol=2e-3)

    batch = TanhGaussian(jnp.tile(mean, (64, 1)), jnp.tile(log_std, (64, 1)), scale, shift)
    sample, logp = batch.sample_and_log_prob(jax.random.PRNGKey(0))
    assert sample.shape == (64, 2) and np.all(
        np.abs(np.asarray(sample - shift[None])) <= np.asarray(scale)
    )
    np.testing.assert_allclose(logp, batch.log_prob(sample), atol=2e-3)


def tiny_sac(env: str, memory: str, **algo) -> dict:
    return {
        "name": f"sac_{env}",
        "agent": {
            "algorithm": {"name": "SAC", "train_freq": 2, "gradient_steps": 2,
                          "learning_starts": 24, **algo},
            "net": {"hid_layers": [16, 16], "activation": "relu", "optim": {"lr": 1.0e-3}},
            "memory": {"name": memory, "capacity": 64, "batch_size": 8},
        },
        "env": {"name": env, "num_envs": 4, "max_frame": 24},
        "meta": {"max_session": 2, "log_frequency": 8, "eval_frequency": 0, "random_seed": 1},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("env", "memory"),
    [
        ("Pendulum-v1", "Replay"),
        # a second full compile (~20-40 s on a busy 2-core CPU): kept out of the fast set
        pytest.param("CartPole-v1", "PrioritizedReplay", marks=pytest.mark.slow),
    ],
)
def test_sac_trains_and_waits_for_learning_starts(tmp_path, env, memory):
    """3 updates of 8 frames; learning_starts = 24 lets only the last update learn, so each
    optimizer has taken exactly gradient_steps = 2 steps (Adam's count)."""
    spec = spec_from_dict(tiny_sac(env, memory))
    result = train(spec, root=tmp_path, progress=False, report=False)
    assert result.summary["diverged_sessions"] == [], result.summary
    state = result.state
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))
    for opt in (state.opt.actor, state.opt.critic, state.opt.alpha):
        np.testing.assert_array_equal(opt.inner_state[0].count, [2, 2])
    np.testing.assert_array_equal(state.memory.size, [24, 24])
    assert np.all(state.params["log_alpha"] != 0.0)  # the temperature moved from ln 1


@pytest.mark.parametrize(
    ("override", "path"),
    [
        (["agent.memory.name=OnPolicyBatch"], "agent.memory.name"),
        (["agent.algorithm.learning_starts=100"], "agent.algorithm.learning_starts"),
        (["agent.memory.capacity=4", "agent.memory.batch_size=2"], "agent.memory.capacity"),
        (["agent.memory.batch_size=100000"], "agent.memory.batch_size"),
        (["agent.algorithm.tau=0"], "agent.algorithm.tau"),
        (["agent.algorithm.target_entropy_scale=2"], "agent.algorithm.target_entropy_scale"),
    ],
)
def test_bad_sac_specs_are_one_line_spec_errors(override, path):
    with pytest.raises(SpecError) as err:
        spec_from_dict(tiny_sac("Pendulum-v1", "Replay"), override)
    assert err.value.path == path and "\n" not in str(err.value), str(err.value)


def test_twin_min_takes_its_gradient_from_the_choice_not_from_equality():
    from jaxlab.algorithms.base import larger, smaller

    q = jnp.array([[1.0, 5.0, 2.0], [3.0, 4.0, 2.0]])  # [twin, batch]; a tie in column 2
    np.testing.assert_array_equal(twin_min(q), [1.0, 4.0, 2.0])
    # The whole gradient goes to the smaller twin, to the first on the tie (jnp.min would
    # split a tie 0.5/0.5 and divide by the number of entries equal to its result).
    grad = jax.grad(lambda q: twin_min(q).sum())(q)
    np.testing.assert_array_equal(grad, [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    a, b = jnp.array([1.0, 3.0, 2.0]), jnp.array([2.0, 1.0, 2.0])
    np.testing.assert_array_equal(smaller(a, b), jnp.minimum(a, b))
    np.testing.assert_array_equal(larger(a, b), jnp.maximum(a, b))
    ga, gb = jax.grad(lambda a, b: larger(a, b).sum(), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(gb, [1.0, 0.0, 0.0])
    # A NaN on either side is passed on, as jnp.minimum/maximum do.
    nan = jnp.array([jnp.nan, 1.0])
    for f in (smaller, larger):
        assert np.isnan(f(nan, jnp.ones(2))[0]) and np.isnan(f(jnp.ones(2), nan)[0])
