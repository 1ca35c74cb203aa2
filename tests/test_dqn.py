"""DQN family: hand-computed TD targets, prioritized replay sampling, the ring buffer, the
one replay interface, learning_starts, a tiny training run and spec errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms.dqn import DQN
from jaxlab.logging.table import read_rows
from jaxlab.memory import PrioritizedReplay, ReplayBuffer, make_replay
from jaxlab.rl.td import q_learning_target
from jaxlab.runtime.run import train
from jaxlab.spec import SpecError, spec_from_dict

# Three transitions, two actions; the last one terminated. gamma = 0.9.
Q_NEXT_TARGET = np.array([[1.0, 3.0], [2.0, 0.5], [4.0, 5.0]], np.float32)
Q_NEXT_ONLINE = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
REWARD = np.array([1.0, 0.5, -1.0], np.float32)
TERMINATED = np.array([False, False, True])


def test_dqn_target_by_hand():
    # a* = argmax Q_targ(s') = [1, 0, 1] -> Q_targ(s', a*) = [3, 2, 5]
    # y = [1 + 0.9 * 3, 0.5 + 0.9 * 2, -1 (terminated: no bootstrap)]
    y = q_learning_target(Q_NEXT_TARGET, Q_NEXT_ONLINE, REWARD, TERMINATED, 0.9, double=False)
    np.testing.assert_allclose(y, [3.7, 2.3, -1.0], rtol=1e-6)


def test_double_dqn_target_by_hand():
    # a* = argmax Q_online(s') = [0, 1, 0] -> Q_targ(s', a*) = [1, 0.5, 4]
    # y = [1 + 0.9 * 1, 0.5 + 0.9 * 0.5, -1]
    y = q_learning_target(Q_NEXT_TARGET, Q_NEXT_ONLINE, REWARD, TERMINATED, 0.9, double=True)
    np.testing.assert_allclose(y, [1.9, 0.95, -1.0], rtol=1e-6)


def per_with_priorities(block: int = 1) -> PrioritizedReplay:
    """Capacity 8, slots 0..3 filled with p = [1, 2, 4, 8] (|td| + eps, eps = 0.5), alpha
    0.5, in blocks of ``block`` slots."""
    mem = PrioritizedReplay.create({"x": jnp.float32(0)}, 8, block=block)
    mem = mem.add({"x": jnp.arange(4, dtype=jnp.float32)}, 0.5)
    np.testing.assert_allclose(mem.priority, [1, 1, 1, 1, 0, 0, 0, 0])  # at max_priority 1
    return mem.update(jnp.arange(4), jnp.array([-0.5, 1.5, -3.5, 7.5]), 0.5, 0.5)


def test_prioritized_update_sets_abs_td_plus_eps_and_raises_max():
    mem = per_with_priorities()
    np.testing.assert_allclose(mem.priority, [1, 2, 4, 8, 0, 0, 0, 0])
    assert float(mem.max_priority) == 8.0
    mem = mem.add({"x": jnp.array([9.0])}, 0.5)  # new items enter at the running maximum
    assert float(mem.priority[4]) == 8.0


@pytest.mark.parametrize("block", [1, 2, 4, 8])
def test_prioritized_probabilities_and_weights_by_hand(block: int):
    mem = per_with_priorities(block)
    # alpha = 0.5: p^alpha = [1, 1.41421, 2, 2.82843], sum 7.24264
    expected = np.array([0.138071, 0.195262, 0.276142, 0.390524, 0, 0, 0, 0])
    np.testing.assert_allclose(mem.probabilities(0.5), expected, atol=1e-6)
    # beta = 1: w_i = (n P_i)^-1 / max_k; with slot 0 in the batch, w_i = P_0 / P_i
    # = sqrt(p_0 / p_i) = [1, 0.707107, 0.5, 0.353553]
    idx, items, weight = mem.sample(jax.random.PRNGKey(0), 64, 0.5, 1.0)
    assert set(np.asarray(idx).tolist()) == {0, 1, 2, 3}
    np.testing.assert_allclose(items["x"], np.asarray(idx, np.float32))
    table = np.array([1.0, 0.707107, 0.5, 0.353553])
    np.testing.assert_allclose(weight, table[np.asarray(idx)], rtol=1e-5)
    # beta = 0.5: (n P_i)^-0.5 / max = table ** 0.5
    idx, _, weight = mem.sample(jax.random.PRNGKey(1), 64, 0.5, 0.5)
    np.testing.assert_allclose(weight, np.sqrt(table[np.asarray(idx)]), rtol=1e-5)


@pytest.mark.parametrize("block", [1, 2, 4])
def test_prioritized_sampling_frequencies_match_probabilities(block: int):
    mem = per_with_priorities(block)
    draws, batch = 2000, 32
    keys = jax.random.split(jax.random.PRNGKey(7), draws)
    idx = jax.jit(jax.vmap(lambda k: mem.sample(k, batch, 0.5, 0.4)[0]))(keys)
    counts = np.bincount(np.asarray(idx).ravel(), minlength=8)
    assert counts[4:].sum() == 0  # empty slots are never drawn
    n = draws * batch
    prob = np.array([0.138071, 0.195262, 0.276142, 0.390524])
    chi2 = (((counts[:4] - n * prob) ** 2) / (n * prob)).sum()
    assert chi2 < 16.3, (counts, chi2)  # the 99.9% quantile of chi-square with 3 dof
    np.testing.assert_allclose(counts[:4] / n, prob, atol=0.01)


def test_prioritized_block_totals_stay_exact_through_wraps_and_updates():
    # capacity 37 in blocks of 4 (the last block is partial): 60 adds of 3 wrap the ring
    # several times; every block total must equal the sum recomputed from the priorities.
    alpha, rng = 0.7, np.random.default_rng(0)
    mem = PrioritizedReplay.create({"x": jnp.float32(0)}, 37, block=4)
    add = jax.jit(lambda m, x: m.add({"x": x}, alpha))
    update = jax.jit(lambda m, i, td: m.update(i, td, 0.01, alpha))
    for step in range(60):
        mem = add(mem, jnp.full((3,), float(step)))
        filled = int(mem.size)
        idx = jnp.asarray(rng.integers(0, filled, 5), jnp.int32)
        mem = update(mem, idx, jnp.asarray(rng.normal(size=5) * 3, jnp.float32))
        mass = np.where(np.arange(37) < filled, np.asarray(mem.priority) ** alpha, 0.0)
        expected = np.pad(mass, (0, 3)).reshape(10, 4).sum(axis=1)
        np.testing.assert_allclose(mem.block_mass, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("filled", [23, 37])
def test_prioritized_two_level_sampling_matches_probabilities(filled: int):
    # A partly and a fully filled memory whose last block is partial; random priorities.
    alpha, rng = 0.6, np.random.default_rng(filled)
    mem = PrioritizedReplay.create({"x": jnp.float32(0)}, 37, block=8)
    mem = mem.add({"x": jnp.arange(filled, dtype=jnp.float32)}, alpha)
    td = jnp.asarray(rng.exponential(size=filled), jnp.float32)
    mem = mem.update(jnp.arange(filled, dtype=jnp.int32), td, 0.01, alpha)
    prob = np.asarray(mem.probabilities(alpha))
    assert prob[filled:].sum() == 0 and abs(prob.sum() - 1) < 1e-5
    keys = jax.random.split(jax.random.PRNGKey(3), 4000)
    idx, items, weight = jax.jit(jax.vmap(lambda k: mem.sample(k, 16, alpha, 1.0)))(keys)
    np.testing.assert_array_equal(items["x"], np.asarray(idx, np.float32))
    counts = np.bincount(np.asarray(idx).ravel(), minlength=37)
    n = counts.sum()
    assert counts[filled:].sum() == 0
    chi2 = (((counts[:filled] - n * prob[:filled]) ** 2) / (n * prob[:filled])).sum()
    # 99.9% quantile of chi-square: 49.7 (22 dof), 67.98 (36 dof)
    assert chi2 < {23: 49.7, 37: 67.98}[filled], chi2
    # beta = 1: w_i = (n P_i)^-1 / max over the batch = min_batch P / P_i
    p = prob[np.asarray(idx)]
    np.testing.assert_allclose(weight, p.min(axis=1, keepdims=True) / p, rtol=1e-4)


def test_replay_ring_wraps_and_overwrites_the_oldest():
    buf = ReplayBuffer.create({"x": jnp.int32(0)}, 5)
    buf = buf.add({"x": jnp.arange(3, dtype=jnp.int32)})
    assert (int(buf.pos), int(buf.size)) == (3, 3)
    buf = buf.add({"x": jnp.arange(3, 7, dtype=jnp.int32)})  # 3, 4 then 5, 6 wrap to 0, 1
    assert (int(buf.pos), int(buf.size)) == (2, 5)
    np.testing.assert_array_equal(buf.data["x"], [5, 6, 2, 3, 4])
    buf = buf.add({"x": jnp.array([7], jnp.int32)})
    assert (int(buf.pos), int(buf.size)) == (3, 5)
    np.testing.assert_array_equal(buf.data["x"], [5, 6, 7, 3, 4])
    idx, items, weight = buf.sample(jax.random.PRNGKey(0), 100)
    assert int(idx.min()) >= 0 and int(idx.max()) <= 4
    np.testing.assert_array_equal(items["x"], buf.data["x"][idx])
    np.testing.assert_array_equal(weight, np.ones(100, np.float32))


def test_uniform_replay_takes_the_prioritized_interface_and_ignores_priorities():
    """Same draw as ``randint`` on the key, weights 1, ``update`` a no-op, no priority leaves;
    the priority arguments change nothing."""
    buf = ReplayBuffer.create({"x": jnp.int32(0)}, 8).add({"x": jnp.arange(6, dtype=jnp.int32)})
    two = {"x": jnp.arange(2, dtype=jnp.int32)}
    jax.tree.map(np.testing.assert_array_equal, buf.add(two, 0.3), buf.add(two))
    key = jax.random.PRNGKey(4)
    idx, items, weight = buf.sample(key, 16, 0.5, 0.2)
    np.testing.assert_array_equal(idx, jax.random.randint(key, (16,), 0, 6))
    np.testing.assert_array_equal(items["x"], idx)
    assert weight.dtype == jnp.float32 and np.all(np.asarray(weight) == 1.0)
    assert buf.update(idx, jnp.ones(16), 0.1, 0.5) is buf
    assert buf.priorities == () and buf.with_priorities(()) is buf


@pytest.mark.parametrize("prioritized", [False, True])
def test_one_learner_step_runs_on_either_memory_under_jit_and_vmap(prioritized: bool):
    """The code path DQN and SAC share (add, sample, update, priorities round trip), with
    the memory and keys batched over 3 sessions; the state structure is unchanged."""

    def step(mem, key):
        mem = mem.add({"x": jnp.arange(4, dtype=jnp.float32)}, 0.6)
        prio = mem.priorities
        idx, items, weight = mem.with_priorities(prio).sample(key, 5, 0.6, 0.4)
        prio = mem.with_priorities(prio).update(idx, items["x"] - 1.0, 0.01, 0.6).priorities
        return mem.with_priorities(prio), (idx, items["x"], weight)

    one = make_replay(prioritized, {"x": jnp.float32(0)}, 8, batch_size=5)
    assert isinstance(one, PrioritizedReplay if prioritized else ReplayBuffer)
    mems = jax.tree.map(lambda x: jnp.stack([x] * 3), one)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    new, (idx, x, weight) = jax.jit(jax.vmap(step))(mems, keys)
    assert jax.tree.structure(new) == jax.tree.structure(mems)
    np.testing.assert_array_equal(x, np.asarray(idx, np.float32))
    assert weight.shape == (3, 5) and float(weight.max()) <= 1.0 and float(weight.min()) > 0.0
    if not prioritized:
        np.testing.assert_array_equal(weight, np.ones((3, 5)))


def dqn_raw(memory: str = "Replay", **algo: object) -> dict:
    return {
        "name": "tiny_dqn",
        "agent": {
            "algorithm": {
                "name": "DQN", "train_freq": 2, "gradient_steps": 2, "learning_starts": 24,
                "target_update_frequency": 16,
                "explore_var": {"name": "linear_decay", "start_val": 1.0, "end_val": 0.1,
                                "end_step": 64},
                **algo,
            },
            "net": {"hid_layers": [16], "activation": "relu", "optim": {"lr": 1.0e-3}},
            "memory": {"name": memory, "capacity": 64, "batch_size": 8},
        },
        "env": {"name": "CartPole-v1", "num_envs": 4, "max_frame": 96},
        "meta": {"max_session": 2, "log_frequency": 32, "eval_frequency": 96,
                 "eval_episodes": 2, "random_seed": 1},
    }  # fmt: skip


def test_no_learning_before_learning_starts():
    """8 frames per update, learning_starts 24: updates 1 and 2 leave the params alone;
    uniform replay, Huber loss and the hard target copy run here."""
    agent = DQN(spec_from_dict(dqn_raw()))
    update = jax.jit(agent.update)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    params0 = state.params
    for _ in range(2):
        state, metrics = update(state)
        assert float(metrics["loss"]) == 0.0
        jax.tree.map(np.testing.assert_array_equal, state.params, params0)
    assert int(state.memory.size) == 16
    state, metrics = update(state)  # the memory now holds 24: learning starts
    assert float(metrics["loss"]) > 0.0
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), state.params, params0)
    assert all(jax.tree.leaves(changed))
    # target_update_frequency 16 frames = every 2 updates: the third update (step 2) copies
    jax.tree.map(np.testing.assert_array_equal, state.target_params, state.params)


def test_double_dueling_per_dqn_trains_with_finite_metrics(tmp_path):
    """Double DQN, dueling head, prioritized replay, polyak target, MSE loss under
    ``train`` (uniform replay, hard targets and Huber run in the learning_starts test)."""
    raw = dqn_raw("PrioritizedReplay", double=True, target_update="polyak", loss="mse")
    raw["agent"]["net"]["dueling"] = True
    result = train(spec_from_dict(raw), root=tmp_path, progress=False, report=False)
    assert result.summary["status"] == "complete" and not result.summary["diverged_sessions"]
    rows = read_rows(result.run_dir)[0]
    assert len(rows) == 3
    last = rows[-1]
    for key in (
        "loss",
        "q_mean",
        "td_abs_mean",
        "epsilon",
        "lr",
        "grad_norm",
        "beta",
        "weight_mean",
    ):
        assert math.isfinite(float(last[key])), (key, last)
    assert float(last["loss"]) > 0.0
    # epsilon at frames 64, 72, 80, 88 (the last chunk's updates) is end_val
    assert float(last["epsilon"]) == pytest.approx(0.1)
    assert math.isfinite(float(last["eval_return_mean"]))


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        (["agent.memory.name=OnPolicyBatch"], "agent.memory.name"),
        (["agent.algorithm.learning_starts=500"], "agent.algorithm.learning_starts"),
        (["agent.memory.batch_size=128"], "agent.memory.batch_size"),
        (
            [
                "agent.memory.capacity=6",
                "agent.memory.batch_size=4",
                "agent.algorithm.learning_starts=0",
            ],
            "agent.memory.capacity",
        ),
        (["env.name=Pendulum-v1"], "env.name"),
        (["agent.algorithm.target_update=soft"], "agent.algorithm.target_update"),
        (["agent.algorithm.explore_var.end_val=1.5"], "agent.algorithm.explore_var.end_val"),
        (["agent.algorithm.train_freq=0"], "agent.algorithm.train_freq"),
    ],
)
def test_spec_errors_are_one_line(overrides, path):
    with pytest.raises(SpecError) as err:
        spec_from_dict(dqn_raw(), overrides)
    assert "\n" not in str(err.value) and path in str(err.value), str(err.value)
