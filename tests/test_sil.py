"""Self-imitation learning (agent.algorithm.sil): Monte-Carlo returns of episodes that
span rollouts, the masked replay insert, the clipped-advantage losses by hand, and the
spec rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.memory import PrioritizedReplay, ReplayBuffer
from jaxlab.memory.episodes import EpisodeBuffer, finish_episodes
from jaxlab.rl.losses import self_imitation_losses
from jaxlab.rl.rollout import Transition
from jaxlab.spec import SpecError, spec_from_dict

G = 0.5


def rollout(reward, terminated, truncated):
    """A one-env rollout ``[T, 1]`` whose observation is the step's global index."""
    r = jnp.asarray(reward, jnp.float32)[:, None]
    term = jnp.asarray(terminated)[:, None]
    done = term | jnp.asarray(truncated)[:, None]
    steps = r.shape[0]
    obs = jnp.arange(steps, dtype=jnp.float32)[:, None, None]
    zeros = jnp.zeros_like(r)
    return Transition(obs, jnp.zeros((steps, 1), jnp.int32), r, term, done, obs, zeros,
                      zeros.astype(jnp.int32), {})  # fmt: skip


def test_an_episode_across_two_rollouts_gets_its_whole_return():
    """Rollout 1: steps 0-2 of an episode; rollout 2: its last step (terminated at its
    step 1), then a new episode truncated at step 3 (bootstrapping from V = 10) and step
    4 unfinished. Observations are each step's index within its rollout."""
    buf = EpisodeBuffer.create(1, 4, 1, jnp.int32(0))
    no = [False] * 3
    buf, rows, keep = finish_episodes(buf, rollout([1, 2, 3], no, no), jnp.zeros((3, 1)), G)
    assert not bool(keep.any())  # nothing final yet
    np.testing.assert_array_equal(buf.valid[0], [False, True, True, True])
    ro = rollout([1, 2, 1, 4, 1], [False, True, False, False, False],
                 [False, False, False, True, False])  # fmt: skip
    end = jnp.zeros((5, 1)).at[3, 0].set(10.0)
    buf, rows, keep = finish_episodes(buf, ro, end, G)
    # The joined row: 4 buffer slots (the first empty), then the 5 new steps.
    assert keep.tolist() == [False, True, True, True, True, True, True, True, False]
    # terminated: 2; before it 1 + G 2 = 2, 3 + G 2 = 4, 2 + G 4 = 4, 1 + G 4 = 3;
    # truncated: 4 + G 10 = 9, before it 1 + G 9 = 5.5
    np.testing.assert_allclose(rows["ret"][keep], [3.0, 4.0, 4.0, 2.0, 2.0, 5.5, 9.0])
    np.testing.assert_array_equal(buf.valid[0], [False, False, False, True])  # step 4 waits
    np.testing.assert_array_equal(buf.obs[0, -1], [4.0])


def test_an_episode_longer_than_the_buffer_keeps_its_last_steps():
    buf = EpisodeBuffer.create(1, 2, 1, jnp.int32(0))
    no = [False] * 3
    buf, _, _ = finish_episodes(buf, rollout([1, 1, 1], no, no), jnp.zeros((3, 1)), G)
    np.testing.assert_array_equal(buf.obs[0, :, 0], [1.0, 2.0])  # step 0 dropped
    buf, rows, keep = finish_episodes(buf, rollout([1], [True], [False]), jnp.zeros((1, 1)), G)
    np.testing.assert_allclose(np.asarray(rows["ret"])[np.asarray(keep)], [1.75, 1.5, 1.0])


def test_a_masked_insert_writes_the_kept_rows_in_order_and_the_last_capacity_of_them():
    buf = ReplayBuffer.create({"x": jnp.float32(0)}, 4)
    buf, idx = buf.add_where({"x": jnp.arange(5.0)}, jnp.array([1, 0, 1, 1, 0], bool))
    np.testing.assert_array_equal(buf.data["x"], [0.0, 2.0, 3.0, 0.0])
    assert idx.tolist() == [0, 4, 1, 2, 4] and int(buf.size) == 3 and int(buf.pos) == 3
    buf, idx = buf.add_where({"x": 10 + jnp.arange(6.0)}, jnp.ones(6, bool))
    np.testing.assert_array_equal(buf.data["x"], [13.0, 14.0, 15.0, 12.0])  # the last 4
    assert int(buf.size) == 4 and int(buf.pos) == 3  # next overwrites 12, the oldest
    prio = PrioritizedReplay.create({"x": jnp.float32(0)}, 8, batch_size=2, block=2)
    prio = prio.update(jnp.array([0]), jnp.array([3.0]), 0.0, 1.0)  # max priority 3
    prio = prio.add_where({"x": jnp.arange(3.0)}, jnp.array([1, 0, 1], bool), 1.0)
    np.testing.assert_array_equal(prio.priority[:2], [3.0, 3.0])
    np.testing.assert_allclose(prio.block_mass, [6.0, 0.0, 0.0, 0.0])


def test_the_losses_imitate_only_returns_above_the_value():
    logp = jnp.log(jnp.array([0.5, 0.25]))
    ret, weight = jnp.array([2.0, 0.0]), jnp.array([1.0, 0.5])

    def total(value):
        policy, value_loss, clipped = self_imitation_losses(logp, value, ret, weight)
        return policy + value_loss, (policy, value_loss, clipped)

    (_, (policy, value_loss, clipped)), grad = jax.value_and_grad(total, has_aux=True)(
        jnp.array([1.0, 1.0])
    )
    np.testing.assert_allclose(clipped, [1.0, 0.0])
    np.testing.assert_allclose(policy, -(1.0 * np.log(0.5) * 1.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(value_loss, 0.5 * (1.0 * 1.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(grad, [-0.5, 0.0])  # only V(s) below R is pulled up


def sil_raw(algo: str, **sil) -> dict:
    algorithm = {"name": algo, "time_horizon": 16, "sil": {"updates": 2, "batch_size": 32, **sil}}
    if algo == "PPO":
        algorithm["minibatch_count"] = 2
    return {
        "name": "sil",
        "agent": {"algorithm": algorithm, "net": {"hid_layers": [16]}},
        "env": {"name": "CartPole-v1", "num_envs": 4, "max_frame": 64 * 30},
    }


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_finished_episodes_fill_the_memory_and_train_it(algo):
    agent = get_algorithm(algo).make(spec_from_dict(sil_raw(algo)))
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    for _ in range(6):
        state, metrics = update(state)
    assert float(metrics["sil_memory_size"]) > 32 and float(metrics["sil_ready"]) == 1.0
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    stored = int(state.sil_memory.size)
    ret = np.asarray(state.sil_memory.buffer.data["ret"][:stored])
    assert ret.max() <= 1 / (1 - 0.99) and ret.min() >= 1.0 - 1e-6  # CartPole pays 1 per step


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["agent.net.recurrent=GRU"], r"sil\.updates: self-imitation replays single steps"),
        (["agent.algorithm.sil.batch_size=64", "agent.algorithm.sil.capacity=32"],
         r"sil\.batch_size: 64 is larger than capacity 32"),
        (["agent.algorithm.sil.alpha=2"], r"sil\.alpha: must lie in \[0.0, 1.0\]"),
    ],
)  # fmt: skip
def test_sil_spec_errors_are_one_line(sets, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(sil_raw("A2C"), sets)
