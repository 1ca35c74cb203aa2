"""Observation wrappers (env.obs_dims, env.frame_stack): kept entries and stacks by hand,
episode ends (a fresh stack after the reset, the rolled pre-reset stack as the true
successor), and the spec errors for observations that cannot be cut."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.envs import make_env
from jaxlab.spec import SpecError
from jaxlab.spec.schema import EnvSpec


def test_kept_entries_stack_oldest_first_and_restart_at_episode_ends():
    plain = make_env(EnvSpec(name="CartPole-v1", num_envs=2, params={"max_steps_in_episode": 2}))
    env = make_env(
        EnvSpec(name="CartPole-v1", num_envs=2, params={"max_steps_in_episode": 2},
                obs_dims=(2, 0), frame_stack=3)
    )  # fmt: skip
    assert env.observation_spec.dim == 6
    key, action = jax.random.PRNGKey(0), jnp.array([0, 1])
    p, w = plain.reset(key), env.reset(key)
    o0 = np.asarray(p.obs)[:, [2, 0]]
    np.testing.assert_array_equal(w.obs, np.tile(o0, 3))  # the first observation 3 times
    k1, k2 = jax.random.split(key)
    p, pout = plain.step(k1, p, action)
    w, wout = env.step(k1, w, action)
    o1 = np.asarray(pout.obs)[:, [2, 0]]
    np.testing.assert_array_equal(wout.obs, np.concatenate([o0, o0, o1], axis=1))
    np.testing.assert_array_equal(w.obs, wout.obs)
    p, pout = plain.step(k2, p, action)  # the time limit (2 steps) ends both episodes
    w, wout = env.step(k2, w, action)
    assert bool(pout.truncated.all()) and bool(wout.truncated.all())
    final, fresh = np.asarray(pout.final_obs)[:, [2, 0]], np.asarray(pout.obs)[:, [2, 0]]
    np.testing.assert_array_equal(wout.final_obs, np.concatenate([o0, o1, final], axis=1))
    np.testing.assert_array_equal(wout.obs, np.tile(fresh, 3))
    np.testing.assert_array_equal(wout.reward, pout.reward)
    np.testing.assert_array_equal(wout.done_return, pout.done_return)


@pytest.mark.parametrize(
    ("env", "sets", "message"),
    [
        ("CartPole-v1", {"obs_dims": (0, 4)}, r"env\.obs_dims: entries \[4\] are outside"),
        ("CartPole-v1", {"obs_dims": (1, 1)}, r"env\.obs_dims: repeats an entry"),
        ("CartPole-v1", {"obs_dims": ()}, r"env\.obs_dims: must name at least one"),
        ("CartPole-v1", {"frame_stack": 0}, r"env\.frame_stack: must be positive"),
        ("Breakout-MinAtar", {"frame_stack": 2}, r"env\.frame_stack: .*are images"),
        ("jumanji/Snake-v1", {"obs_dims": (0,)}, r"env\.obs_dims: .*appends an action mask"),
    ],
)
def test_observations_that_cannot_be_cut_are_spec_errors(env: str, sets: dict, message: str):
    with pytest.raises(SpecError, match=message):
        EnvSpec(name=env, **sets).validate("env")
