"""Recurrent PPO and A2C (``agent.net.recurrent``): the update replays the rollout's
hidden states exactly, episode starts reset them, truncated steps bootstrap from the
carry the episode ended with, and evaluation carries the state through an episode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.lab.evaluate import make_episodes
from jaxlab.networks.recurrent import reset_carry
from jaxlab.spec import SpecError, spec_from_dict

ENVS, STEPS = 4, 24


def agent_for(algo: str = "PPO", cell: str = "GRU", shared: bool = False, **env):
    algorithm = {"name": algo, "time_horizon": STEPS}
    if algo == "PPO":
        algorithm["minibatch_count"] = 2
    raw = {
        "name": "rnn",
        "agent": {
            "algorithm": algorithm,
            "net": {"recurrent": cell, "recurrent_size": 8, "hid_layers": [16],
                    "shared": shared},
        },  # fmt: skip
        # Episodes of at most 7 steps: every rollout holds starts and truncations.
        "env": {"name": "CartPole-v1", "num_envs": ENVS, "max_frame": 10 * ENVS * STEPS,
                "params": {"max_steps_in_episode": 7}, **env},
    }  # fmt: skip
    spec = spec_from_dict(raw)
    return get_algorithm(algo).make(spec)


def rollout(agent):
    """(state before, state after, rollout) of one collect after one update, compiled (an
    eager rollout dispatches every op of every step)."""
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    state, _ = jax.jit(agent.update)(state)  # parameters that are not the initial ones
    before = state
    state, ro = jax.jit(agent._collect)(state, jax.random.PRNGKey(5))
    return before, state, ro


def unbatched(agent, params, ro, env: int):
    """Env ``env``'s sequence stepped one observation at a time, from the carry it started
    the rollout with: its log-probabilities and values ``[T]``."""

    @jax.jit
    def step(carry, t):
        obs, first = ro.obs[t, env][None, None], ro.extra["first"][t, env][None, None]
        carry, pi, value = agent.net.apply(params, carry, obs, first)
        return carry, pi.log_prob(ro.action[t, env][None, None])[0, 0], value[0, 0]

    carry = jax.tree.map(lambda c: c[0, env : env + 1], ro.extra["carry"])
    logps, values = [], []
    for t in range(STEPS):  # one call per step: nothing batched over time or envs
        carry, logp, value = step(carry, t)
        logps.append(logp)
        values.append(value)
    return np.array(logps), np.array(values)


@pytest.mark.parametrize(("cell", "shared"), [("GRU", False), ("LSTM", True)])
def test_sequence_minibatches_replay_the_rollouts_hidden_states(cell, shared):
    """A minibatch of whole env sequences (envs 3 and 1, as the shuffle might pick them),
    replayed by the update from its stored first carry, gives the rollout's own
    log-probabilities and values, and those of each env stepped alone."""
    agent = agent_for(cell=cell, shared=shared)
    before, after, ro = rollout(agent)
    assert bool(ro.done.any()) and bool(ro.extra["first"][1:].any()), "no episode starts"
    batch = jax.jit(lambda a, r: agent.learn_layout(agent._advantages(a, r)))(after, ro)
    envs = np.array([3, 1])
    mb = jax.tree.map(lambda x: x[envs], batch)
    pi, value = jax.jit(agent.forward)(before.params, mb)
    np.testing.assert_allclose(pi.log_prob(mb.action), mb.log_prob, atol=1e-5)
    np.testing.assert_allclose(value, mb.value, atol=1e-5)
    for row, env in enumerate(envs):
        logp, v = unbatched(agent, before.params, ro, env)
        np.testing.assert_allclose(logp, ro.extra["log_prob"][:, env], atol=1e-5)
        np.testing.assert_allclose(v, ro.extra["value"][:, env], atol=1e-5)
        np.testing.assert_allclose(pi.log_prob(mb.action)[row], logp, atol=1e-5)


def test_an_episode_start_forgets_the_carry():
    agent = agent_for()
    params = jax.jit(agent.init)(jax.random.PRNGKey(0)).params
    obs = jnp.ones((2, 1, 4))
    noise = jax.tree.map(lambda c: c + 3.0, agent.net.initial_carry(2))
    fresh = agent.net.initial_carry(2)
    starts = jnp.ones((2, 1), bool)
    _, pi_a, v_a = agent.net.apply(params, noise, obs, starts)
    _, pi_b, v_b = agent.net.apply(params, fresh, obs, starts)
    np.testing.assert_array_equal(pi_a.logits, pi_b.logits)
    np.testing.assert_array_equal(v_a, v_b)
    _, _, v_c = agent.net.apply(params, noise, obs, ~starts)
    assert not np.allclose(v_c, v_b)
    kept = reset_carry(noise, jnp.array([True, False]))
    np.testing.assert_array_equal(kept[0][0], 0.0)
    np.testing.assert_array_equal(kept[0][1], noise[0][1])


def test_truncated_steps_bootstrap_from_the_carry_the_episode_ended_with():
    """``V(s'_t)`` at a truncated step is the critic on the true final observation after
    the carry of step t (the next step's raw carry), read as a continuing step."""
    agent = agent_for()
    _, after, ro = rollout(agent)
    next_value = jax.jit(agent.bootstrap)(after, ro)
    truncated = np.argwhere(np.asarray(ro.done & ~ro.terminated)[:-1])
    assert len(truncated), "no truncation inside the rollout"
    for t, n in truncated:
        carry = jax.tree.map(lambda c, t=t, n=n: c[t + 1, n][None], ro.extra["carry"])
        obs = ro.next_obs[t, n][None, None]
        want = agent.net.apply(after.params, carry, obs, jnp.zeros((1, 1), bool))[2]
        np.testing.assert_allclose(next_value[t, n], want[0, 0], atol=1e-5)
    # Continuing steps bootstrap from the next step's recorded value.
    cont = ~np.asarray(ro.done)[:-1]
    np.testing.assert_allclose(
        np.asarray(next_value)[:-1][cont], np.asarray(ro.extra["value"])[1:][cont], atol=1e-6
    )


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_update_trains_and_evaluation_carries_the_state(algo):
    agent = agent_for(algo)
    state = jax.jit(agent.init)(jax.random.PRNGKey(1))
    state, metrics = jax.jit(agent.update)(state)
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    seen = []

    def spy(state, carry, obs, first, key, deterministic):
        seen.append(first)
        return type(agent).policy_step(agent, state, carry, obs, first, key, deterministic)

    agent.policy_step = spy
    out = jax.jit(make_episodes(agent, agent.env))(state, jax.random.PRNGKey(2))
    assert seen, "evaluation did not step the recurrent policy"
    assert np.all(np.asarray(out.lengths) <= 7) and np.all(np.asarray(out.lengths) >= 1)


@pytest.mark.parametrize(
    ("algo", "sets", "message"),
    [
        ("SAC", {}, r"agent\.net\.recurrent: SAC has no recurrent form \(A2C, PPO have\)"),
        ("PPO", {"num_envs": 3}, r"minibatch_count: .*whole env sequences: env\.num_envs 3"),
    ],
)
def test_recurrent_spec_errors_are_one_line(algo, sets, message):
    raw = {
        "name": "rnn",
        "agent": {"algorithm": {"name": algo}, "net": {"recurrent": "GRU"},
                  **({"memory": {"name": "Replay"}} if algo == "SAC" else {})},
        "env": {"name": "Pendulum-v1" if algo == "SAC" else "CartPole-v1",
                "num_envs": 4, "max_frame": 100_000, **sets},
    }  # fmt: skip
    with pytest.raises(SpecError, match=message):
        spec_from_dict(raw)


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_the_vmapped_init_calls_no_lapack(cell):
    """flax's default recurrent kernels start from a batched LAPACK QR, which deadlocked
    the vmapped init of 4 sessions with 64-unit GRUs on CPU (jaxlab.networks.init): the
    cells use jaxlab's orthogonal init, so no QR is left in the program."""
    agent = agent_for(cell=cell)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    text = jax.jit(jax.vmap(agent.init)).lower(keys).as_text()
    assert "lapack" not in text.lower() and "geqrf" not in text.lower()
