"""Frame, update and step counters never wrap past int32 (issue #28, finding 10).

JAX runs without x64, so jitted counters are int32. These tests pin that the schedules'
frame counts, the session chunk's ``active`` predicate and the off-policy critic-step
counter stay right (and bit-identical to the old int32 arithmetic wherever that did not
overflow) up to and past ``2**31 - 1``, and that a spec at the ``env.max_frame`` cap builds
and trains its first and last chunks.
"""

from __future__ import annotations

import copy
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.algorithms.offpolicy import next_step
from jaxlab.algorithms.skeleton import INT32_MAX, frames_done
from jaxlab.lab import trial as trial_module
from jaxlab.lab.session import active_update
from jaxlab.lab.trial import Trial
from jaxlab.spec import spec_from_dict
from tests.conftest import TINY
from tests.test_conformance import _equal
from tests.test_td3 import td3_raw

# A linear decay from 1 to 0 over 2**32 frames: 0.5 at frame 2**31, 1.0 at any frame <= 0
# (where a wrapped int32 frame count lands).
DECAY = {"name": "linear_decay", "start_val": 1.0, "end_val": 0.0, "end_step": 2**32}


def raw_with(algorithm: dict, **env: int) -> dict:
    raw = copy.deepcopy(TINY)
    raw["agent"]["algorithm"] = algorithm
    raw["env"].update(env)
    raw["meta"].update(max_session=1, eval_frequency=0)
    return raw


def make_agent(algorithm: dict, max_frame: int = 320):
    """The agent of a tiny spec (4 CartPole envs) trained for ``max_frame`` frames. Past
    the cap (2**31 - 1) the spec is validated at 320 frames and then given ``max_frame``:
    the run a raised cap would allow."""
    spec = spec_from_dict(raw_with(algorithm))
    spec = spec.replace(env=dataclasses.replace(spec.env, max_frame=max_frame))
    return get_algorithm(spec.agent.algorithm.name).make(spec)


def sample_steps(fpu: int) -> np.ndarray:
    """Update counts from 0 to the last whose frame count fits in int32 (``int32``)."""
    last = INT32_MAX // fpu
    picks = np.concatenate(
        [np.arange(0, 4096), np.linspace(0, last, 20_000).astype(np.int64), last - np.arange(64)]
    )
    return np.unique(picks[(picks >= 0) & (picks <= last)]).astype(np.int32)


@pytest.mark.parametrize("fpu", [1, 3, 32, 12_345])
def test_within_the_cap_frames_done_is_the_old_int32_product_graph(fpu):
    """Every spec within ``env.max_frame``'s cap keeps the int32 product, the same jaxpr
    as before (so the same compiled program and bits): no reachable count wraps, as
    ``update_step <= num_updates`` and ``num_updates * fpu <= max_frame <= 2**31 - 1``."""
    num_updates = INT32_MAX // fpu
    u = jnp.int32(0)
    new = jax.make_jaxpr(lambda x: frames_done(x, fpu, num_updates))(u)
    assert str(new) == str(jax.make_jaxpr(lambda x: x * fpu)(u))
    last = frames_done(jnp.int32(num_updates), fpu, num_updates)
    assert last.dtype == jnp.int32 and int(last) == num_updates * fpu > 0


@pytest.mark.parametrize("fpu", [1, 3, 8, 24, 1000, 12_345, 2**20 + 7])
def test_past_the_cap_frames_done_is_the_rounded_int32_product_wherever_it_fits(fpu):
    """A run past 2**31 - 1 frames gets float32 frames; below the int32 limit they are
    exactly ``float32(int32 product)``, what schedules read before (past 2**24 updates
    too), so a schedule's value does not jump where the counter crosses the limit."""
    steps = sample_steps(fpu)
    past = jax.jit(lambda u: frames_done(u, fpu, 2**40))
    got = np.asarray(past(jnp.asarray(steps)))
    old = np.asarray(jax.jit(lambda u: jnp.asarray(u * fpu, jnp.float32))(jnp.asarray(steps)))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.int32), old.view(np.int32))
    assert np.array_equal(old, (steps.astype(np.int64) * fpu).astype(np.float32))  # no wrap


@pytest.mark.parametrize("fpu", [3, 8, 24, 12_345])
def test_past_the_cap_frames_done_keeps_counting_past_int32(fpu):
    first = INT32_MAX // fpu + 1  # the first update whose int32 frame count would wrap
    steps = np.array([first, first + 1, first + 1000, INT32_MAX // 2, INT32_MAX], np.int64)
    steps = steps[steps >= first].astype(np.int32)
    got = np.asarray(jax.jit(lambda u: frames_done(u, fpu, 2**40))(jnp.asarray(steps)))
    exact = steps.astype(np.float64) * fpu
    assert np.all(got.astype(np.float64) >= 2**31)  # where the int32 product wraps negative
    np.testing.assert_allclose(got, exact, rtol=2e-7)
    assert np.all(np.diff(got) >= 0)


def at_update(state, steps: int):
    return state.replace(update_step=jnp.int32(steps))


def test_a2c_entropy_schedule_reads_the_true_frame_past_int32():
    """fpu = 4 envs x 8 steps = 32; update 2**26 + 1 is frame 2**31 + 32, halfway."""
    agent = make_agent({"name": "A2C", "time_horizon": 8, "entropy_coef": DECAY}, 2**33)
    assert (agent.frames_per_update, agent.num_updates) == (32, 2**28)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    _, metrics = jax.jit(agent.update)(at_update(state, 2**26 + 1))
    assert float(metrics["entropy_coef"]) == pytest.approx(0.5, abs=1e-6)
    _, metrics = jax.jit(agent.update)(at_update(state, 2**25))  # frame 2**30
    assert float(metrics["entropy_coef"]) == pytest.approx(0.75, abs=1e-6)


def test_reinforce_entropy_schedule_reads_the_true_frame_past_int32():
    algo = {"name": "REINFORCE", "time_horizon": 16, "entropy_coef": DECAY}
    agent = make_agent(algo, 2**33)  # fpu = 4 x 16 = 64; update 2**25 + 1 is frame 2**31 + 64
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    _, metrics = jax.jit(agent.update)(at_update(state, 2**25 + 1))
    assert float(metrics["entropy_coef"]) == pytest.approx(0.5, abs=1e-6)


def test_sarsa_epsilon_reads_the_true_frame_past_int32():
    algo = {"name": "SARSA", "time_horizon": 8, "explore_var": DECAY}
    agent = make_agent(algo, 2**33)  # fpu 32, as A2C's above
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    eps = jax.jit(agent.explore_var)
    assert float(eps(at_update(state, 2**26 + 1))) == pytest.approx(0.5, abs=1e-6)
    assert float(eps(at_update(state, 2**28))) == pytest.approx(0.0, abs=1e-6)  # the end
    # below the limit it is the old int32 frame: update 2**26 - 1 is frame 2**31 - 32
    frame = jnp.int32((2**26 - 1) * 32)
    old = agent.cfg.explore_var.value(state.hyper.explore_var, frame)
    assert eps(at_update(state, 2**26 - 1)) == old


def python_active(chunk: int, i: int, upc: int, total: int) -> bool:
    return chunk * upc + i < total


@pytest.mark.parametrize(
    ("upc", "total"),
    [(1000, INT32_MAX), (1000, INT32_MAX - 999), (7, INT32_MAX), (1, INT32_MAX),
     (1000, 3 * 2**31 + 5), (4096, 2**40), (10, 95), (10, 100)],
)  # fmt: skip
def test_the_chunks_active_predicate_is_exact_where_the_int32_sum_wraps(upc, total):
    """``chunk * upc + i < total`` in exact integers, for the last chunks of runs near (and
    past) 2**31 updates, where the int32 sum wraps negative and read as active."""
    last = -(-total // upc) - 1
    chunks = sorted({c for c in (0, 1, last - 2, last - 1, last, last + 1) if 0 <= c <= INT32_MAX})
    i = jnp.arange(upc, dtype=jnp.int32)
    predicate = jax.jit(active_update, static_argnums=(2, 3))
    for chunk in chunks:
        got = np.asarray(predicate(jnp.int32(chunk), i, upc, total))
        want = np.array([python_active(chunk, j, upc, total) for j in range(upc)])
        np.testing.assert_array_equal(got, want, err_msg=f"chunk {chunk}")
    assert int(np.asarray(predicate(jnp.int32(last), i, upc, total)).sum()) == total - last * upc


@pytest.mark.parametrize("period", [1, 2, 3, 7, 1000])
def test_the_critic_step_counter_never_wraps_and_keeps_its_cadence(period):
    step = jax.jit(lambda s, p: next_step(s, p, 2**40), static_argnums=1)  # a run past int32
    below = jnp.array([0, 1, 5, 2**24 + 3, INT32_MAX - 2, INT32_MAX - 1], jnp.int32)
    np.testing.assert_array_equal(np.asarray(step(below, period)), np.asarray(below) + 1)
    # 3 * period steps from just below INT32_MAX: always positive, and due (a multiple of
    # period) exactly every period steps, as the exact count would be.
    steps, exact = jnp.int32(INT32_MAX - period), INT32_MAX - period
    for _ in range(3 * period):
        steps, exact = step(steps, period), exact + 1
        assert int(steps) > 0
        assert int(steps) % period == exact % period


def test_a_critic_step_count_within_int32_keeps_the_old_graph():
    s = jnp.int32(0)
    new = jax.make_jaxpr(lambda x: next_step(x, 3, INT32_MAX))(s)
    assert str(new) == str(jax.make_jaxpr(lambda x: x + 1)(s))


def test_td3_critic_steps_keep_counting_past_int32_at_the_cap():
    """One frame per update and 2 gradient steps: 2 * (2**31 - 1) critic steps in a valid
    spec. From 2**31 - 2 steps one update used to leave the counter at -2**31."""
    raw = td3_raw(policy_delay=3, gradient_steps=2)
    raw["env"].update(num_envs=1, max_frame=INT32_MAX)
    agent = get_algorithm("TD3").make(spec_from_dict(raw))
    assert agent.critic_steps_most() == 2 * INT32_MAX
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    for _ in range(8):  # learning starts at 8 transitions
        state, _ = update(state)
    assert int(state.opt.critic_steps) == 2
    near = state.opt.replace(critic_steps=jnp.int32(INT32_MAX - 1))
    state, _ = update(state.replace(opt=near))  # steps 2**31 - 1 and 2**31: neither due
    assert int(state.opt.critic_steps) == 2  # 2**31 % 3, kept positive
    after, _ = update(state)  # steps 3 (due) and 4
    assert int(after.opt.critic_steps) == 4
    assert not _equal(state.params["actor"], after.params["actor"])


@pytest.mark.parametrize("tail", [False, True], ids=["masked", "tail-program"])
def test_a_spec_at_the_max_frame_cap_trains_its_first_and_last_chunks(tail, monkeypatch):
    """2**31 - 1 frames at one frame per update: 2,147,484 chunks of 1,000 updates, the last
    holding 647 (masked as on CPU, or a tail program as on an accelerator). Its int32
    index sum ``chunk * 1000 + i`` passes 2**31 - 1 at i = 648, which used to wrap
    negative and train 999 updates there, the counter ending past the cap."""
    algo = {"name": "A2C", "time_horizon": 1, "entropy_coef": {**DECAY, "end_step": INT32_MAX}}
    raw = raw_with(algo, num_envs=1, max_frame=INT32_MAX)
    raw["meta"]["log_frequency"] = 1000
    raw["agent"]["net"]["hid_layers"] = [4]
    spec = spec_from_dict(raw)
    d = spec.derived
    assert (d.frames_per_update, d.num_updates, d.updates_per_chunk) == (1, INT32_MAX, 1000)
    assert d.num_chunks == 2_147_484
    monkeypatch.setattr(trial_module, "cheap_conds", lambda platform: not tail)
    trial = Trial(spec)
    assert trial.group_limit(d.num_chunks - 2) == (1 if tail else 2)
    state, first = trial.chunk(trial.init(), 0)
    assert first["updates"][0] == 1000 and int(state.update_step[0]) == 1000
    assert np.all(np.isfinite(first["entropy_coef"]))
    state = state.replace(update_step=jnp.full_like(state.update_step, INT32_MAX - 647))
    state, last = trial.chunk(state, d.num_chunks - 1)
    assert last["updates"][0] == 647
    assert int(state.update_step[0]) == INT32_MAX  # exactly num_updates, no wrap
    assert 0.0 <= last["entropy_coef"][0] < 1e-6  # the decay's end, read at the true frame
    assert trial.frames_after(d.num_chunks - 1) == INT32_MAX


def test_batch_renorm_stops_counting_at_its_warmup_where_a_run_could_wrap_it():
    """CrossQ's BatchRenorm counts its training calls in int32 to end its warm-up; a run
    that may call it 2**31 times (``saturate``) stops at ``warmup_steps`` instead of
    wrapping negative (which would restart the warm-up)."""
    from jaxlab.networks.batchrenorm import BatchRenorm

    x = jnp.arange(12.0).reshape(4, 3)

    def steps_after(saturate, start):
        module = BatchRenorm(train=True, warmup_steps=10, saturate=saturate)
        stats = module.init(jax.random.PRNGKey(0), x)["batch_stats"]
        stats = {**stats, "steps": jnp.int32(start)}
        variables = {
            "params": module.init(jax.random.PRNGKey(0), x)["params"],
            "batch_stats": stats,
        }
        _, new = module.apply(variables, x, mutable=["batch_stats"])
        return int(new["batch_stats"]["steps"])

    assert [steps_after(True, s) for s in (0, 9, 10, 11)] == [1, 10, 10, 11]
    assert steps_after(False, INT32_MAX) < 0  # what the plain count does there
    assert steps_after(True, INT32_MAX) == INT32_MAX


def test_crossq_saturates_its_renorm_count_only_where_a_run_could_wrap_it():
    from jaxlab.spec import load_spec
    from tests.conftest import REPO

    path = REPO / "specs" / "crossq" / "crossq_pendulum.yaml"
    at_cap = ["env.num_envs=1", f"env.max_frame={INT32_MAX}", "agent.algorithm.train_freq=1"]
    long = get_algorithm("CrossQ").make(
        load_spec(path, [*at_cap, "agent.algorithm.gradient_steps=2"])
    )
    assert long.critic_steps_most() > INT32_MAX and long.critic_train.saturate
    assert not get_algorithm("CrossQ").make(load_spec(path)).critic_train.saturate
