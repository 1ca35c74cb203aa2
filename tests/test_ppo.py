"""PPO behaviour: time limits, continuous actions, normalisers, and learning (slow)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxlab.envs.gymnax_suite import make
from jaxlab.rl import RunningStats
from jaxlab.runtime.run import train
from jaxlab.spec import load_spec, spec_from_dict
from jaxlab.tools.enjoy import enjoy
from tests.conftest import REPO
from tests.probes import register_probes


def test_vec_env_reports_truncation_with_pre_reset_observation():
    env = make("CartPole-v1", 3, {"max_steps_in_episode": 2})
    state = env.reset(jax.random.PRNGKey(0))
    action = np.zeros(3, np.int32)
    state, out1 = env.step(jax.random.PRNGKey(1), state, action)
    assert not out1.truncated.any() and np.array_equal(out1.final_obs, out1.obs)
    state, out2 = env.step(jax.random.PRNGKey(2), state, action)
    assert out2.truncated.all() and not out2.terminated.any()
    assert not np.allclose(out2.final_obs, out2.obs)  # obs is already the reset one
    np.testing.assert_allclose(out2.done_return, 2.0)
    np.testing.assert_array_equal(out2.done_length, 2)
    np.testing.assert_array_equal(state.episode_length, 0)


def test_continuous_actions_are_clipped_to_the_box():
    env = make("Pendulum-v1", 2, {})
    assert not env.action_spec.discrete and env.action_spec.dim == 1
    clipped = env.env_action(np.array([[5.0], [-7.0]], np.float32))
    np.testing.assert_allclose(np.asarray(clipped).ravel(), [2.0, -2.0])


def test_running_stats_merge_equals_full_statistics():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 2)).astype(np.float32) for n in (5, 17, 40)]
    stats = RunningStats.create((2,))
    for c in chunks:
        stats = stats.update(c)
    full = np.concatenate(chunks)
    np.testing.assert_allclose(stats.mean, full.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, full.var(0), rtol=1e-3)


def probe_raw(gamma: float) -> dict:
    return {
        "name": "probe",
        "agent": {
            "algorithm": {"name": "PPO", "gamma": gamma, "lam": 0.95, "time_horizon": 16,
                          "minibatch_count": 2, "training_epoch": 4, "clip_value_loss": False},
            "net": {"hid_layers": [8], "optim": {"lr": 1.0e-2}, "clip_grad_val": 10.0},
        },
        "env": {"name": "ConstantReward-probe", "num_envs": 8, "max_frame": 128 * 150},
        "meta": {"max_session": 2, "log_frequency": 128 * 50},
    }  # fmt: skip


@pytest.mark.slow
def test_truncation_bootstraps_value_to_the_infinite_horizon(tmp_path):
    """Reward 1 forever, cut by a 5-step time limit: V must learn 1 / (1 - gamma) = 10."""
    register_probes()
    spec = spec_from_dict(probe_raw(0.9))
    result = train(spec, root=tmp_path, progress=False, report=False)
    agent_state = result.state
    from jaxlab.algorithms.ppo import PPO

    agent = PPO(spec)
    _, value = jax.vmap(agent.net.apply, in_axes=(0, None))(
        agent_state.params, np.zeros((1, 1), np.float32)
    )
    # Treating truncation as termination would give the mean of (1 - 0.9^k) / 0.1 over
    # k = 5..1, i.e. about 3.7; bootstrapping gives 10.
    np.testing.assert_allclose(np.asarray(value).ravel(), 10.0, rtol=0.05)


@pytest.mark.slow
def test_ppo_learns_cartpole_quickly(tmp_path):
    raw = {
        "name": "cartpole_small",
        "agent": {"algorithm": {"name": "PPO"},
                  "net": {"optim": {"lr": 1.0e-3}, "lr_schedule": {"name": "linear_decay"}}},
        "env": {"name": "CartPole-v1", "num_envs": 8, "max_frame": 61440},
        "meta": {"max_session": 2, "log_frequency": 10240},
    }  # fmt: skip
    result = train(spec_from_dict(raw), root=tmp_path, progress=False, report=False)
    assert result.summary["final_return_mean"] > 150, result.summary
    # the greedy policy of the best checkpoint, played by enjoy, is at least as good
    played = enjoy(result.run_dir, episodes=10)
    assert played["return_mean"] > 150, played


@pytest.mark.slow
def test_ppo_learns_pendulum_direction(tmp_path):
    """The shipped Pendulum spec, cut to 40 updates, clearly beats random (about -1200)."""
    spec = load_spec(
        REPO / "specs" / "ppo" / "ppo_pendulum.yaml", ["env.max_frame=163840", "meta.max_session=2"]
    )
    result = train(spec, root=tmp_path, progress=False, report=False)
    assert result.summary["final_return_mean"] > -800, result.summary


@pytest.mark.parametrize(
    ("env_id", "obs_dim", "discrete"),
    [
        ("Breakout-MinAtar", 400, True),
        ("Catch-bsuite", 50, True),
        ("MountainCarContinuous-v0", 2, False),
    ],
)
def test_any_gymnax_env_steps_with_flat_observations(env_id, obs_dim, discrete):
    env = make(env_id, 2, {})
    assert (env.observation_spec.dim, env.action_spec.discrete) == (obs_dim, discrete)
    state = env.reset(jax.random.PRNGKey(0))
    action = (
        np.zeros((2,), np.int32) if discrete else np.zeros((2, env.action_spec.dim), np.float32)
    )
    state, out = jax.jit(env.step)(jax.random.PRNGKey(1), state, action)
    assert out.obs.shape == out.final_obs.shape == (2, obs_dim)
    assert out.obs.dtype == np.float32


def test_shared_torso_has_one_mlp(tiny_raw):
    from jaxlab.algorithms.ppo import PPO

    def torsos(shared: bool) -> set[str]:
        agent = PPO(spec_from_dict(tiny_raw, [f"agent.net.shared={str(shared).lower()}"]))
        params = jax.jit(agent.init)(jax.random.PRNGKey(0)).params["params"]
        return {k for k in params if "torso" in k}

    assert torsos(False) == {"actor_torso", "critic_torso"}
    assert torsos(True) == {"actor_torso"}


def test_orthogonal_init_is_orthonormal_and_vmappable():
    from jaxlab.networks.init import orthogonal

    init = orthogonal(2.0)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    tall = jax.jit(jax.vmap(lambda k: init(k, (64, 8))))(keys)
    wide = init(keys[0], (8, 64))
    for w in tall:
        np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(8), atol=1e-4)
    np.testing.assert_allclose(wide @ wide.T, 4.0 * np.eye(8), atol=1e-4)
    assert not np.allclose(tall[0], tall[1])


# agent.net.kernel_init -> (std of a 256x256 hidden kernel, std of the [256, 2] policy
# head), both times 16: orthogonal with gains sqrt(2) and 0.01; flax's initializers with
# variance 1 / fan_in (lecun), 2 / (fan_in + fan_out) (glorot), 2 / fan_in (he).
KERNEL_STDS = {
    "orthogonal": (np.sqrt(2.0), 0.01),
    "lecun_normal": (1.0, 1.0),
    "glorot_uniform": (1.0, np.sqrt(512 / 258)),
    "he_normal": (np.sqrt(2.0), np.sqrt(2.0)),
}


@pytest.mark.parametrize("name", sorted(KERNEL_STDS))
def test_kernel_init_sets_every_layer(tiny_raw, name):
    from typing import get_args, get_type_hints

    from jaxlab.algorithms.ppo import PPO
    from jaxlab.networks.init import KERNEL_INITS
    from jaxlab.spec.schema import NetSpec

    assert set(KERNEL_INITS) == set(get_args(get_type_hints(NetSpec)["kernel_init"]))
    over = [f"agent.net.kernel_init={name}", "agent.net.hid_layers=[256, 256]"]
    params = PPO(spec_from_dict(tiny_raw, over)).init(jax.random.PRNGKey(0)).params["params"]
    hidden = np.asarray(params["actor_torso"]["MLP_0"]["Dense_1"]["kernel"])
    head = np.asarray(params["policy_head"]["kernel"])
    want_hidden, want_head = KERNEL_STDS[name]
    np.testing.assert_allclose(hidden.std() * 16, want_hidden, rtol=0.03)
    np.testing.assert_allclose(head.std() * 16, want_head, rtol=0.15)
    if name == "orthogonal":
        np.testing.assert_allclose(hidden.T @ hidden, 2.0 * np.eye(256), atol=1e-4)
    elif name == "glorot_uniform":  # uniform on +-sqrt(6 / (fan_in + fan_out))
        assert np.abs(hidden).max() <= np.sqrt(6 / 512)
        assert np.abs(hidden).max() > 0.99 * np.sqrt(6 / 512)
    else:  # flax's truncated normals: cut at 2 standard deviations of the untruncated one
        assert np.abs(hidden).max() <= 2 * want_hidden / 16 / 0.87962566 * 1.0001
    for bias in (params["policy_head"]["bias"], params["actor_torso"]["MLP_0"]["Dense_0"]["bias"]):
        assert not np.asarray(bias).any()


@pytest.mark.parametrize("n", [1, 2, 7, 512, 1000])
def test_minibatch_shuffle_is_a_permutation(n):
    from jaxlab.algorithms.base import permutation

    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, n)))(keys))
    assert perms.shape == (4, n) and perms.dtype == np.int32
    for p in perms:
        np.testing.assert_array_equal(np.sort(p), np.arange(n))
    if n >= 7:
        assert len({tuple(p) for p in perms}) == 4  # each key its own draw


def test_minibatch_shuffle_draws_every_order_equally_often():
    from itertools import permutations

    from jaxlab.algorithms.base import permutation

    draws = 24_000
    keys = jax.random.split(jax.random.PRNGKey(2), draws)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 4)))(keys))
    counts = {p: 0 for p in permutations(range(4))}
    for p in map(tuple, perms):
        counts[p] += 1
    expected = draws / 24  # 1,000 each; binomial sd about 31
    assert all(abs(c - expected) < 5 * 31 for c in counts.values()), counts
    # and at the size PPO shuffles, each element lands in each half equally often
    keys = jax.random.split(jax.random.PRNGKey(3), 2_000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 512)))(keys))
    first_half = (perms[:, :256] < 256).mean()
    assert abs(first_half - 0.5) < 0.005
