"""PQN: its LayerNorm network, Q(lambda) targets from the rollout's parameters with
truncation bootstrapped, epsilon on its schedule, and spec errors. (The Q(lambda) recursion
itself is checked by hand in tests/test_returns.py.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.rl.returns import q_lambda_returns
from jaxlab.spec import SpecError, spec_from_dict


def pqn_raw(env: str = "CartPole-v1", layer_norm: bool = True, **algo) -> dict:
    return {
        "name": "pqn_tiny",
        "agent": {
            "algorithm": {
                "name": "PQN",
                "time_horizon": 8,
                "training_epoch": 1,
                "minibatch_count": 2,
                **algo,
            },
            "net": {
                "hid_layers": [16, 16],
                "activation": "relu",
                "layer_norm": layer_norm,
                "optim": {"lr": 1.0e-3},
            },
            "memory": {"name": "OnPolicyBatch"},
        },  # fmt: skip
        "env": {"name": env, "num_envs": 4, "max_frame": 4096},
        "meta": {"max_session": 1, "random_seed": 0, "eval_frequency": 0},
    }


def test_layer_norm_normalises_every_hidden_layer():
    for on in (True, False):
        agent = get_algorithm("PQN").make(spec_from_dict(pqn_raw(layer_norm=on)))
        params = jax.jit(agent.init)(jax.random.PRNGKey(0)).params["params"]
        torso = params["Torso_0"]["MLP_0"]
        assert sorted(k for k in torso if k.startswith("LayerNorm")) == (
            ["LayerNorm_0", "LayerNorm_1"] if on else []
        )


def rollout_of(agent, state):
    """The rollout ``agent.update(state)`` collects (same key split, same epsilon)."""
    eps = agent.epsilon(state)

    def act(obs, key):
        return agent._act(state.params, obs, key, eps), {}

    return agent.rollout(state, act, jax.random.split(state.key, 3)[1])[1]


def test_update_regresses_on_q_lambda_targets_of_the_rollout_parameters():
    """One epoch of one minibatch: the loss the update logs is taken before its only step,
    so it is 0.5 mean (Q(s, a) - R)^2 with R the Q(lambda) returns of the rollout's own Q."""
    raw = pqn_raw(lam=0.7, gamma=0.9, minibatch_count=1)
    agent = get_algorithm("PQN").make(spec_from_dict(raw))
    state, ended = jax.jit(agent.init)(jax.random.PRNGKey(3)), 0.0
    update, collect = jax.jit(agent.update), jax.jit(lambda s: rollout_of(agent, s))
    for _ in range(4):
        ro = collect(state)
        q = agent.net.apply(state.params, ro.obs)
        v_next = agent.net.apply(state.params, ro.next_obs).max(-1)
        target = q_lambda_returns(ro.reward, v_next, ro.terminated, ro.done, 0.9, 0.7)
        q_sa = jnp.take_along_axis(q, ro.action[..., None], -1)[..., 0]
        state, metrics = update(state)
        np.testing.assert_allclose(metrics["loss"], 0.5 * ((q_sa - target) ** 2).mean(), rtol=1e-5)
        ended += float(metrics["ep_count"])
    assert ended > 0  # episode ends were inside the checked rollouts


def test_epsilon_follows_its_schedule_over_frames():
    raw = pqn_raw(explore_var={"name": "linear_decay", "start_val": 1.0, "end_val": 0.0,
                               "start_step": 0, "end_step": 320})  # fmt: skip
    agent = get_algorithm("PQN").make(spec_from_dict(raw))
    state, update = jax.jit(agent.init)(jax.random.PRNGKey(0)), jax.jit(agent.update)
    seen = []
    for _ in range(4):  # 32 frames per update
        state, metrics = update(state)
        seen.append(float(metrics["epsilon"]))
    np.testing.assert_allclose(seen, [1.0, 0.9, 0.8, 0.7], atol=1e-6)


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        ({"lam": 1.5}, "agent.algorithm.lam"),
        ({"explore_var": 1.2}, "agent.algorithm.explore_var"),
        ({"minibatch_count": 3}, "agent.algorithm.minibatch_count"),
    ],
)
def test_bad_settings_name_their_key(sets: dict, where: str):
    with pytest.raises(SpecError, match=where.replace(".", r"\.")):
        spec_from_dict(pqn_raw(**sets))


def test_a_continuous_env_is_a_spec_error():
    with pytest.raises(SpecError, match="PQN needs discrete actions; Pendulum-v1 has none"):
        spec_from_dict(pqn_raw("Pendulum-v1"))
