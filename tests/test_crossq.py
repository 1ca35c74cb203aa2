"""CrossQ: batch renormalisation by hand (warm-up, r/d clipping, running statistics,
evaluation mode), the critics' joint batch statistics over current and next states, the
delayed actor and temperature, discrete CrossQ's exact target, and spec errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.networks.batchrenorm import BatchRenorm
from jaxlab.spec import SpecError, spec_from_dict
from tests.test_conformance import _equal

X = jnp.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0], [7.0, 12.0]])  # mean [4, 12], var [5, 6]
EPS = 1e-3


def renorm(train: bool, stats: dict, warmup: int = 0):
    layer = BatchRenorm(train, momentum=0.9, warmup_steps=warmup, r_max=1.5, d_max=0.5)
    params = {"scale": jnp.array([2.0, 1.0]), "bias": jnp.array([0.0, 1.0])}
    return layer.apply({"params": params, "batch_stats": stats}, X, mutable=["batch_stats"])


def stats(mean, var, steps) -> dict:
    return {"mean": jnp.array(mean), "var": jnp.array(var), "steps": jnp.int32(steps)}


def test_renorm_corrects_batch_statistics_towards_the_running_ones_by_hand():
    # Running mean [4, 11], var [5, 1]: sigma = sqrt(var + eps); batch sigma_B likewise.
    out, new = renorm(True, stats([4.0, 11.0], [5.0, 1.0], 10))
    sigma_b = np.sqrt(np.array([5.0, 6.0]) + EPS)
    sigma = np.sqrt(np.array([5.0, 1.0]) + EPS)
    r = np.clip(sigma_b / sigma, 1 / 1.5, 1.5)  # [1, 1.5]: feature 1 clipped (2.449)
    d = np.clip((np.array([4.0, 12.0]) - [4.0, 11.0]) / sigma, -0.5, 0.5)  # [0, 0.5] clipped
    x_hat = (np.asarray(X) - [4.0, 12.0]) / sigma_b * r + d
    np.testing.assert_allclose(out, x_hat * [2.0, 1.0] + [0.0, 1.0], rtol=1e-5)
    bs = new["batch_stats"]
    np.testing.assert_allclose(bs["mean"], 0.9 * np.array([4.0, 11.0]) + 0.1 * np.array([4, 12]))
    np.testing.assert_allclose(bs["var"], 0.9 * np.array([5.0, 1.0]) + 0.1 * np.array([5, 6]))
    assert int(bs["steps"]) == 11


def test_renorm_warmup_is_batch_norm_and_evaluation_uses_running_statistics():
    out, _ = renorm(True, stats([0.0, 0.0], [1.0, 1.0], 3), warmup=5)  # step 3 < 5: r=1, d=0
    sigma_b = np.sqrt(np.array([5.0, 6.0]) + EPS)
    np.testing.assert_allclose(
        out, (np.asarray(X) - [4.0, 12.0]) / sigma_b * [2.0, 1.0] + [0.0, 1.0], rtol=1e-5
    )
    out, new = renorm(False, stats([4.0, 11.0], [5.0, 1.0], 10))
    sigma = np.sqrt(np.array([5.0, 1.0]) + EPS)
    want = (np.asarray(X) - [4.0, 11.0]) / sigma * [2.0, 1.0] + [0, 1]
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-6)
    assert _equal(new["batch_stats"], stats([4.0, 11.0], [5.0, 1.0], 10))  # untouched


def crossq_raw(env: str = "Pendulum-v1", **algo) -> dict:
    return {
        "name": "crossq_tiny",
        "agent": {
            "algorithm": {
                "name": "CrossQ",
                "learning_starts": 8,
                "critic_layers": [32, 32],
                "renorm_warmup_steps": 2,
                "bn_momentum": 0.9,
                **algo,
            },
            "net": {
                "hid_layers": [16, 16],
                "activation": "relu",
                "optim": {"lr": 1.0e-3, "b1": 0.5},
            },
            "memory": {"name": "Replay", "capacity": 64, "batch_size": 8},
        },  # fmt: skip
        "env": {"name": env, "num_envs": 4, "max_frame": 64},
        "meta": {"max_session": 1, "random_seed": 0, "eval_frequency": 0},
    }


def test_the_critic_step_normalises_current_and_next_states_as_one_batch():
    """The input layer's running mean moves by (1 - m) times the mean of the joint batch:
    over its observation features, the mean of ``[s; s']`` of the sampled minibatch."""
    agent = get_algorithm("CrossQ").make(spec_from_dict(crossq_raw()))
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    for _ in range(2):  # 8 transitions: learning starts at the next update
        state, _ = update(state)
    lrn = (state.params, state.target, state.opt)
    memory, key = state.memory, jax.random.PRNGKey(5)
    keys = jax.random.split(key, 3)
    _, b, _ = memory.sample(keys[0], 8, state.hyper.per_alpha, state.hyper.per_beta)
    new, _, _ = jax.jit(agent.grad_step)(lrn, b, jnp.ones(8), keys[1:], state.hyper, (1e-3,) * 3)
    before = state.params["critic"]["batch_stats"]["BatchRenorm_0"]["mean"]  # [2 twins, D+A]
    after = new[0]["critic"]["batch_stats"]["BatchRenorm_0"]["mean"]
    joint = jnp.concatenate([b["obs"], b["next_obs"]]).mean(0)  # [D]
    np.testing.assert_allclose(after[:, :3], 0.9 * before[:, :3] + 0.1 * joint[None], rtol=1e-5)
    assert not np.allclose(joint, b["obs"].mean(0))  # s' differs from s: the test can tell


def test_actor_and_temperature_move_every_policy_delay_steps():
    agent = get_algorithm("CrossQ").make(spec_from_dict(crossq_raw(policy_delay=2)))
    state = jax.jit(agent.init)(jax.random.PRNGKey(1))
    update = jax.jit(agent.update)
    for _ in range(2):  # the second update holds 8 transitions and takes critic step 1
        state, _ = update(state)
    assert int(state.opt.critic_steps) == 1
    moves = []
    for _ in range(4):
        after, _ = update(state)
        assert not _equal(state.params["critic"], after.params["critic"])
        moves.append(not _equal(state.params["actor"], after.params["actor"]))
        assert moves[-1] == (float(after.params["log_alpha"]) != float(state.params["log_alpha"]))
        state = after
    assert moves == [True, False, True, False]  # critic steps 2, 3, 4, 5


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        ({"bn_momentum": 1.0}, "agent.algorithm.bn_momentum"),
        ({"critic_layers": []}, "agent.algorithm.critic_layers"),
        ({"policy_delay": 0}, "agent.algorithm.policy_delay"),
    ],
)
def test_bad_settings_name_their_key(sets: dict, where: str):
    with pytest.raises(SpecError, match=where.replace(".", r"\.")):
        spec_from_dict(crossq_raw(**sets))


def test_a_bad_adam_b1_is_a_spec_error():
    raw = crossq_raw()
    raw["agent"]["net"]["optim"]["b1"] = 1.0
    with pytest.raises(SpecError, match=r"agent\.net\.optim\.b1: must lie in \[0, 1\)"):
        spec_from_dict(raw)


def test_discrete_crossq_targets_the_exact_expectation_through_the_joint_pass():
    """CartPole: ``Q_j(s, .)`` and ``Q_j(s', .)`` come from one train-mode pass over
    ``[s; s']``; ``y = r + gamma (1 - term) sum_a pi(a|s') (min_j Q_j(s', a) - alpha log
    pi(a|s'))`` and ``L_Q = sum_j mean_b (Q_j(s_b, a_b) - y_b)^2``, by hand in numpy."""
    agent = get_algorithm("CrossQ").make(spec_from_dict(crossq_raw("CartPole-v1")))
    assert agent.discrete
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    for _ in range(2):
        state, _ = update(state)
    _, b, _ = state.memory.sample(jax.random.PRNGKey(5), 8, 1.0, 1.0)
    crit, hp, alpha = state.params["critic"], state.hyper, jnp.float32(0.3)
    nxt = agent._next_policy(state.params["actor"], b["next_obs"], alpha, None)
    loss, (_, _, new_stats) = agent._joint_critic_loss(
        crit["params"], crit["batch_stats"], b, nxt, jnp.ones(8), hp
    )
    joint = jnp.concatenate([b["obs"], b["next_obs"]])
    q, _ = agent.critic_train.apply(crit, joint, mutable=["batch_stats"])  # [2, 16, A]
    q, logp = np.asarray(q, np.float64), np.asarray(nxt[0], np.float64)
    v = (np.exp(logp) * (q[:, 8:].min(0) - 0.3 * logp)).sum(-1)
    y = np.asarray(b["reward"]) + float(hp.gamma) * (1 - np.asarray(b["terminated"])) * v
    taken = q[:, :8][:, np.arange(8), np.asarray(b["action"])]  # [2, 8]
    np.testing.assert_allclose(loss, ((taken - y[None]) ** 2).mean(1).sum(), rtol=1e-5)
    # the next states' values are the joint pass's: a pass over s' alone normalises otherwise
    alone, _ = agent.critic_train.apply(crit, b["next_obs"], mutable=["batch_stats"])
    assert not np.allclose(alone, q[:, 8:], atol=1e-3)
    mean = new_stats["BatchRenorm_0"]["mean"]  # the input layer's, over [s; s']
    before = crit["batch_stats"]["BatchRenorm_0"]["mean"]
    np.testing.assert_allclose(mean, 0.9 * before + 0.1 * joint.mean(0)[None], rtol=1e-5)


def test_discrete_crossq_acts_greedily_and_values_by_the_policy():
    agent = get_algorithm("CrossQ").make(spec_from_dict(crossq_raw("CartPole-v1")))
    state = jax.jit(agent.init)(jax.random.PRNGKey(2))
    obs = jax.random.normal(jax.random.PRNGKey(3), (5, 4))
    p = state.params
    logits = agent.actor.apply(p["actor"], state.norm.observe(obs, agent.spec.env)).logits
    greedy = agent.policy(state, obs, jax.random.PRNGKey(0), True)
    np.testing.assert_array_equal(greedy, jnp.argmax(logits, -1))
    q = agent.critic.apply(p["critic"], state.norm.observe(obs, agent.spec.env)).min(0)
    want = (jax.nn.softmax(logits) * q).sum(-1)
    np.testing.assert_allclose(agent.value(state, obs), want, rtol=1e-5)
