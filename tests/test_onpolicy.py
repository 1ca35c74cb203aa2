"""REINFORCE, A2C and SARSA: tiny specs train end to end; spec errors are one line."""

from __future__ import annotations

import copy

import jax
import numpy as np
import pytest

from jaxlab.algorithms import EPISODE_METRICS
from jaxlab.runtime.run import train
from jaxlab.spec import SpecError, spec_from_dict
from tests.conftest import TINY

ALGOS = {
    "REINFORCE": {"name": "REINFORCE", "time_horizon": 16, "training_epoch": 2,
                  "normalize_returns": True},
    "A2C": {"name": "A2C", "time_horizon": 8, "entropy_coef":
            {"name": "linear_decay", "start_val": 0.02, "end_val": 0.0, "end_step": 200}},
    "A2C-nstep": {"name": "A2C", "advantage": "nstep", "time_horizon": 5, "training_epoch": 2},
    "SARSA": {"name": "SARSA", "time_horizon": 8, "minibatch_count": 2, "training_epoch": 2,
              "explore_var": {"name": "linear_decay", "start_val": 1.0, "end_val": 0.1,
                              "end_step": 100}},
    "SARSA-boltzmann": {"name": "SARSA", "explore": "boltzmann", "loss": "mse",
                        "explore_var": {"start_val": 0.5, "end_val": 0.5}},
}  # fmt: skip
LEARNER_METRICS = {
    "REINFORCE": {"policy_loss", "entropy", "grad_norm", "lr", "valid_frac"},
    "A2C": {"policy_loss", "value_loss", "entropy", "grad_norm", "lr", "v_mean"},
    "SARSA": {"loss", "q_mean", "epsilon", "grad_norm", "lr"},
}


def raw_for(algo: str) -> dict:
    raw = copy.deepcopy(TINY)
    raw["agent"]["algorithm"] = copy.deepcopy(ALGOS[algo])
    raw["meta"]["max_session"] = 2
    return raw


def make_agent(algo: str, overrides: list[str] | None = None):
    from jaxlab.algorithms import get_algorithm

    spec = spec_from_dict(raw_for(algo), overrides)
    return spec, get_algorithm(spec.agent.algorithm.name).make(spec)


# The shipped specs (tests/test_cli.py trains each shrunk) cover A2C-gae and SARSA-epsilon.
@pytest.mark.parametrize("algo", ["REINFORCE", "A2C-nstep", "SARSA-boltzmann"])
def test_tiny_spec_trains_with_finite_metrics(algo, tmp_path):
    # one session and no evaluation keep the compile small; dev mode still checks
    spec = spec_from_dict(raw_for(algo), ["meta.max_session=1", "meta.eval_frequency=0"])
    # dev mode checks every chunk's metrics are finite and every session's parameters move
    result = train(spec, root=tmp_path, dev=True, progress=False, report=False)
    d = spec.derived
    assert result.summary["frames_per_session"] == d.num_updates * d.frames_per_update
    assert result.summary["frames_per_session"] == spec.env.max_frame
    assert np.all(np.asarray(result.state.update_step) == d.num_updates)
    assert np.all(np.isfinite(result.summary["final_return_per_session"]))


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_update_reports_learner_and_episode_metrics(algo):
    spec, agent = make_agent(algo)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    new_state, metrics = jax.eval_shape(agent.update, state)
    expected = LEARNER_METRICS[algo.split("-")[0]]
    if algo == "SARSA-boltzmann":
        expected = (expected - {"epsilon"}) | {"temperature"}
    assert expected | set(EPISODE_METRICS) <= set(metrics), sorted(metrics)
    assert all(metrics[k].shape == () for k in expected)
    # the state's structure, shapes and dtypes never change across updates
    before = jax.tree.map(lambda x: (x.shape, x.dtype), state)
    after = jax.tree.map(lambda x: (x.shape, x.dtype), new_state)
    assert jax.tree.structure(state) == jax.tree.structure(new_state)
    assert before == after


def test_value_estimates_and_policy_shapes():
    obs = np.zeros((3, 4), np.float32)
    for algo in ("A2C", "SARSA", "REINFORCE"):
        _, agent = make_agent(algo)
        state = jax.jit(agent.init)(jax.random.PRNGKey(0))
        action = agent.policy(state, obs, jax.random.PRNGKey(1), deterministic=False)
        assert action.shape == (3,)
        if algo == "REINFORCE":
            assert not hasattr(agent, "value")
        else:
            assert agent.value(state, obs).shape == (3,)


@pytest.mark.parametrize(
    ("algo", "override", "path"),
    [
        ("A2C", "agent.memory.name=Replay", "agent.memory.name"),
        ("REINFORCE", "agent.memory.name=PrioritizedReplay", "agent.memory.name"),
        ("SARSA", "agent.memory.name=Replay", "agent.memory.name"),
        ("A2C", "agent.algorithm.advantage=td", "agent.algorithm.advantage"),
        ("SARSA", "agent.algorithm.explore=greedy", "agent.algorithm.explore"),
        ("SARSA", "agent.algorithm.loss=l1", "agent.algorithm.loss"),
        ("SARSA", "agent.algorithm.minibatch_count=3", "agent.algorithm.minibatch_count"),
        ("SARSA", "env.name=Pendulum-v1", "env.name"),
        ("REINFORCE", "agent.algorithm.entropy_coef.start_val=-1", "agent.algorithm.entropy_coef"),
    ],
)
def test_spec_errors_are_one_line(algo, override, path):
    with pytest.raises(SpecError) as err:
        spec_from_dict(raw_for(algo), [override])
    assert err.value.path == path, str(err.value)
    assert "\n" not in str(err.value)


def test_sarsa_boltzmann_temperature_must_be_positive():
    raw = raw_for("SARSA-boltzmann")
    raw["agent"]["algorithm"]["explore_var"] = {"start_val": 0.0, "end_val": 0.0}
    with pytest.raises(SpecError, match="temperature"):
        spec_from_dict(raw)


def test_sarsa_hard_target_copies_params_exactly_every_k_updates():
    # 4 envs x 8 steps = 32 frames per update, so 96 frames = a copy after every 3rd update
    overrides = ["agent.algorithm.target_update=hard", "agent.algorithm.target_update_frequency=96"]
    _, agent = make_agent("SARSA", overrides)
    assert agent.target_every == 3
    update = jax.jit(agent.update)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    init_params = state.params
    same = lambda a, b: all(  # noqa: E731
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    for step in (1, 2):
        state, _ = update(state)
        assert not same(state.params, init_params)
        assert same(state.target_params, init_params), step  # not copied before update 3
    state, _ = update(state)
    assert same(state.target_params, state.params)  # copied exactly at update 3
    copied = state.params
    state, _ = update(state)
    assert same(state.target_params, copied) and not same(state.target_params, state.params)


def test_sarsa_polyak_target_moves_by_tau():
    _, agent = make_agent(
        "SARSA", ["agent.algorithm.target_update=polyak", "agent.algorithm.tau=0.25"]
    )
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    new, _ = jax.jit(agent.update)(state)
    expected = jax.tree.map(lambda p, t: 0.25 * p + 0.75 * t, new.params, state.target_params)
    for x, y in zip(jax.tree.leaves(new.target_params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
