"""TD3 and DDPG: hand-computed target smoothing, clipping and targets, the actor loss on
the first critic, the policy delay (actor and targets move only on due steps), DDPG's
single critic, and spec errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.rl.ops import ensemble_min
from jaxlab.rl.td3 import deterministic_actor_loss, noisy_action, td3_target
from jaxlab.spec import SpecError, spec_from_dict
from tests.test_conformance import _equal


def test_target_smoothing_clips_the_noise_then_the_action_by_hand():
    # Box [-2, 2] x [0, 1]: half-ranges [2, 0.5]. Noise 0.8 clipped to 0.5 -> +1.0 and
    # +0.25; -0.1 stays -> -0.2 and -0.05. Then the box: 1.5 + 1.0 = 2.5 -> 2.0.
    low, high = jnp.array([-2.0, 0.0]), jnp.array([2.0, 1.0])
    action = jnp.array([[1.5, 0.5], [0.0, 0.02]])
    noise = jnp.array([[0.8, 0.8], [-0.1, -0.1]])
    out = noisy_action(action, noise, low, high, 0.5)
    np.testing.assert_allclose(out, [[2.0, 0.75], [-0.2, 0.0]], atol=1e-6)
    # Unclipped noise (behaviour): only the box clips; 0.02 - 0.05 = -0.03 -> 0.
    np.testing.assert_allclose(
        noisy_action(action, noise, low, high), [[2.0, 0.9], [-0.2, 0.0]], atol=1e-6
    )


def test_td3_target_takes_the_smaller_critic_and_stops_at_termination():
    # twin q' = [[1, 5], [3, 2]] -> min [1, 2]; y = r + 0.9 (1 - term) min.
    q_next = jnp.array([[1.0, 5.0], [3.0, 2.0]])
    y = td3_target(jnp.array([0.5, 1.0]), jnp.array([False, True]), 0.9, q_next)
    np.testing.assert_allclose(y, [0.5 + 0.9 * 1.0, 1.0], atol=1e-6)
    # One critic (DDPG): its own value.
    y1 = td3_target(jnp.array([0.5, 1.0]), jnp.array([False, False]), 0.9, q_next[1:])
    np.testing.assert_allclose(y1, [0.5 + 0.9 * 3.0, 1.0 + 0.9 * 2.0], atol=1e-6)
    np.testing.assert_allclose(ensemble_min(jnp.array([[4.0], [2.0], [3.0]])), [2.0])


def test_actor_loss_follows_the_first_critic_only():
    q = jnp.array([[1.0, 3.0], [-10.0, -10.0]])
    assert float(deterministic_actor_loss(q)) == -2.0
    grad = jax.grad(deterministic_actor_loss)(q)
    np.testing.assert_allclose(grad, [[-0.5, -0.5], [0.0, 0.0]])


def td3_raw(env: str = "Pendulum-v1", **algo) -> dict:
    return {
        "name": "td3_tiny",
        "agent": {
            "algorithm": {
                "name": "TD3",
                "train_freq": 1,
                "gradient_steps": 1,
                "learning_starts": 8,
                **algo,
            },
            "net": {"hid_layers": [16, 16], "activation": "relu", "optim": {"lr": 1.0e-3}},
            "memory": {"name": "Replay", "capacity": 64, "batch_size": 8},
        },  # fmt: skip
        "env": {"name": env, "num_envs": 4, "max_frame": 64},
        "meta": {"max_session": 1, "random_seed": 0, "eval_frequency": 0},
    }


@pytest.mark.parametrize("delay", [1, 3])
def test_the_actor_and_the_targets_move_every_policy_delay_critic_steps(delay: int):
    spec = spec_from_dict(td3_raw(policy_delay=delay))
    agent = get_algorithm("TD3").make(spec)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    for _ in range(3):  # 12 transitions: learning starts at the third update
        state, _ = update(state)
    before = state
    moves = []
    for _ in range(2 * delay):
        after, metrics = update(before)
        assert not _equal(before.params["critic"], after.params["critic"])
        moves.append(not _equal(before.params["actor"], after.params["actor"]))
        assert moves[-1] != _equal(before.target, after.target)
        assert np.isfinite(float(metrics["actor_loss"]))
        before = after
    steps = [int(before.opt.critic_steps) - 2 * delay + i + 1 for i in range(2 * delay)]
    assert moves == [s % delay == 0 for s in steps], (steps, moves)


def test_ddpg_is_one_critic_and_twin_is_two():
    ddpg = spec_from_dict(td3_raw(twin_critics=False, policy_delay=1, target_noise=0.0))
    state = get_algorithm("TD3").make(ddpg).init(jax.random.PRNGKey(0))
    shapes = {x.shape[0] for x in jax.tree.leaves(state.params["critic"])}
    assert shapes == {1}
    twin = get_algorithm("TD3").make(spec_from_dict(td3_raw())).init(jax.random.PRNGKey(0))
    assert {x.shape[0] for x in jax.tree.leaves(twin.params["critic"])} == {2}


def test_policy_actions_stay_in_the_box():
    spec = spec_from_dict(td3_raw(explore_var=5.0))
    agent = get_algorithm("TD3").make(spec)
    state = jax.jit(agent.init)(jax.random.PRNGKey(1))
    obs = jax.random.normal(jax.random.PRNGKey(2), (256, 3)) * 10
    noisy = agent.policy(state, obs, jax.random.PRNGKey(3), deterministic=False)
    greedy = agent.policy(state, obs, jax.random.PRNGKey(3))
    assert float(jnp.abs(noisy).max()) <= 2.0 and float(jnp.abs(greedy).max()) < 2.0
    assert float(jnp.abs(noisy).max()) == 2.0  # sigma 5 half-ranges reaches the bounds


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        ({"policy_delay": 0}, "agent.algorithm.policy_delay"),
        ({"target_noise": -0.1}, "agent.algorithm.target_noise"),
        ({"target_noise_clip": 0.0}, "agent.algorithm.target_noise_clip"),
        ({"explore_var": -0.1}, "agent.algorithm.explore_var"),
    ],
)
def test_bad_settings_name_their_key(sets: dict, where: str):
    with pytest.raises(SpecError, match=where.replace(".", r"\.")):
        spec_from_dict(td3_raw(**sets))


def test_a_discrete_env_is_a_spec_error():
    with pytest.raises(SpecError, match="TD3 needs continuous actions; CartPole-v1 has discrete"):
        spec_from_dict(td3_raw("CartPole-v1"))
