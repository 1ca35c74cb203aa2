"""The Brax and MuJoCo Playground adapters (:mod:`jaxlab.envs.mjx_state`): episode
boundaries against the suites' own ``step``, action repeat, both reset modes, and
``env.params`` checks."""

from __future__ import annotations

import functools

import brax.envs
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.config.parse import SpecError
from jaxlab.envs import check_env, make_env
from jaxlab.spec.schema import EnvSpec

PENDULUM = "brax/inverted_pendulum"


@functools.cache
def brax_env(**params):
    """The env and its jitted reset and step, built once per params (compiles dominate
    this file; an eager reset dispatches, and compiles, op by op)."""
    env = make_env(EnvSpec(name=PENDULUM, num_envs=2, params={"backend": "mjx", **params}))
    return env, jax.jit(env.reset), jax.jit(env.step)


@functools.cache
def raw_step():
    """Brax's own jitted step, built once (a new env's step would compile again)."""
    return jax.jit(brax.envs.get_environment("inverted_pendulum", backend="mjx").step)


def own_step(state, action):
    """Brax's own step of env 0's inner state (the reference for ``final_obs``)."""
    one = jax.tree.map(lambda x: x[0], state.env_state.current)
    with jax.numpy_rank_promotion("allow"):
        return raw_step()(one, action)


def run(env_step, actions, key=0):
    _, reset, step = env_step
    state = reset(jax.random.PRNGKey(key))
    outs = []
    for t, a in enumerate(actions):
        before = state
        state, out = step(jax.random.PRNGKey(100 + t), state, jnp.full((2, 1), a, jnp.float32))
        outs.append((before, state, out))
    return outs


def test_brax_specs_and_limits():
    env, _, _ = brax_env(episode_length=10, action_repeat=3)
    assert env.observation_spec.shape == (4,) and env.action_spec.dim == 1
    np.testing.assert_array_equal(env.action_spec.low, [-1.0])
    assert env.time_limit == env.max_episode_steps == 4  # ceil(10 / 3)


def test_time_limit_truncates_with_the_true_final_observation():
    outs = run(brax_env(episode_length=3), [0.0, 0.0, 0.0])
    first = outs[0][0]
    for t, (_, _, out) in enumerate(outs):
        assert not out.terminated.any()
        assert out.truncated.tolist() == [t == 2] * 2
    before, after, out = outs[-1]
    want = own_step(before, jnp.zeros((1,)))
    np.testing.assert_allclose(out.final_obs[0], want.obs, rtol=1e-6, atol=1e-6)
    # reset "cached": the env starts again from the initial state it drew at reset.
    np.testing.assert_array_equal(out.obs, first.obs)
    np.testing.assert_array_equal(after.obs, first.obs)
    assert after.episode_length.tolist() == [0, 0]
    assert out.done_length.tolist() == [3, 3]


def test_falling_terminates_and_is_not_truncated():
    outs = run(brax_env(episode_length=100), [1.0] * 40)
    ended = [i for i, (_, _, o) in enumerate(outs) if bool(o.terminated[0])]
    assert ended, "the pole never fell under a constant push"
    before, _, out = outs[ended[0]]
    assert not bool(out.truncated[0])
    want = own_step(before, jnp.ones((1,)))
    assert float(want.done) == 1.0
    np.testing.assert_allclose(out.final_obs[0], want.obs, rtol=1e-6, atol=1e-6)


def test_action_repeat_sums_rewards():
    one, two = brax_env(episode_length=100), brax_env(episode_length=100, action_repeat=2)
    assert float(run(two, [0.0])[0][2].reward[0]) == 2 * float(run(one, [0.0])[0][2].reward[0])


def test_pool_reset_hands_fresh_starts_to_the_ended_envs_in_turn():
    env = make_env(
        EnvSpec(name=PENDULUM, num_envs=20, params={"episode_length": 1, "reset": "pool"})
    )
    assert env.reset_mode == "pool"
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    new, out = jax.jit(env.step)(jax.random.PRNGKey(1), state, jnp.zeros((20, 1)))
    assert out.truncated.all()
    starts = np.asarray(new.obs)
    # ceil(20 / 16) = 2 fresh starts, handed out in turn: envs 0, 2, 4... share the first.
    np.testing.assert_array_equal(starts[0::2], np.broadcast_to(starts[0], starts[0::2].shape))
    np.testing.assert_array_equal(starts[1::2], np.broadcast_to(starts[1], starts[1::2].shape))
    assert not np.allclose(starts[0], starts[1])  # fresh draws, not the first states
    assert not np.allclose(starts[0], np.asarray(state.obs[0]))
    assert not np.allclose(starts[1], np.asarray(state.obs[1]))


def test_playground_task_and_its_limits():
    env = make_env(
        EnvSpec(
            name="playground/CartpoleBalance",
            num_envs=2,
            params={"impl": "jax", "episode_length": 2},
        )
    )
    assert env.observation_spec.shape == (5,) and env.action_spec.dim == 1
    np.testing.assert_array_equal(env.action_spec.high, [1.0])
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    state, out = step(jax.random.PRNGKey(1), state, jnp.zeros((2, 1)))
    assert not (out.terminated | out.truncated).any()
    _, out = step(jax.random.PRNGKey(2), state, jnp.zeros((2, 1)))
    assert out.truncated.all() and not out.terminated.any()
    assert np.isfinite(np.asarray(out.final_obs)).all()


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (PENDULUM, {"backend": "warp"}, "env.params.backend: must be one of mjx, generalized"),
        (PENDULUM, {"episode_lenght": 5}, "did you mean 'episode_length'?"),
        (PENDULUM, {"episode_length": 0}, "must be an integer >= 1, got 0"),
        (PENDULUM, {"reset": "sometimes"}, "must be one of full, pool, cached, got 'sometimes'"),
        ("brax/ant", {"ctrl_cost_weight": "high"}, "must be a number, got 'high'"),
        ("playground/CartpoleBalance", {"obs_key": "state"}, "takes no obs_key"),
        ("playground/CartpoleBalance", {"impl": "cuda"}, "unknown 'cuda'; known: jax, warp"),
        ("playground/CartpoleBalance", {"config": {"ctrl_dtt": 0.1}}, "did you mean 'ctrl_dt'?"),
        ("ant", {}, "unknown gymnax environment 'ant' (did you mean 'brax/ant'?)"),
        ("playground/CartPoleBalance", {}, "did you mean 'CartpoleBalance'?"),
    ],
)
def test_bad_params_are_named(name, params, message):
    with pytest.raises(SpecError) as err:
        check_env(name, params, "env.name", "env.params")
    assert message in str(err.value)


def test_a_recorded_episode_is_drawn_by_mujoco(tmp_path):
    """``enjoy --render``'s path: env 0's recorded states -> a GIF (headless EGL)."""
    env, reset, step = brax_env(episode_length=3)
    state = reset(jax.random.PRNGKey(0))
    trace = []
    for t in range(3):
        trace.append(jax.tree.map(lambda x: np.asarray(x[0]), state.env_state))
        state, _ = step(jax.random.PRNGKey(t), state, jnp.ones((2, 1)))
    states = jax.tree.map(lambda *xs: np.stack(xs), *trace)
    env.write_gif(states, tmp_path / "ep.gif")
    from PIL import Image

    gif = Image.open(tmp_path / "ep.gif")
    assert (gif.n_frames, gif.size) == (3, (320, 240))
