"""The env protocol and its factory: suite names, spec checks, immutability, lazy suites."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxlab.config.parse import SpecError
from jaxlab.envs import check_env, make_env, max_truncations, split_name
from jaxlab.spec.schema import EnvSpec


def test_a_bare_id_is_gymnax_and_the_prefixed_id_is_the_same_env():
    assert split_name("CartPole-v1") == ("gymnax", "CartPole-v1")
    assert split_name("gymnax/CartPole-v1") == ("gymnax", "CartPole-v1")
    bare = make_env(EnvSpec(name="CartPole-v1", num_envs=3))
    prefixed = make_env(EnvSpec(name="gymnax/CartPole-v1", num_envs=3))
    a, b = bare.reset(jax.random.PRNGKey(0)), prefixed.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(a.obs, b.obs)
    assert bare.observation_spec == prefixed.observation_spec == prefixed.observation_spec
    assert (bare.action_spec.discrete, bare.action_spec.dim) == (True, 2)
    assert make_env(EnvSpec(name="CartPole-v1", num_envs=3), num_envs=5).num_envs == 5


def test_specs_and_limits_of_a_continuous_env():
    env = make_env(EnvSpec(name="Pendulum-v1", num_envs=2, params={"max_steps_in_episode": 7}))
    spec = env.action_spec
    assert (spec.discrete, spec.dim, spec.shape) == (False, 1, (1,))
    np.testing.assert_array_equal(spec.low, [-2.0])
    np.testing.assert_array_equal(spec.high, [2.0])
    assert env.observation_spec.shape == (3,) and env.observation_spec.dim == 3
    assert env.time_limit == env.max_episode_steps == 7
    assert max_truncations(env, 10) == 2 * 2  # ceil(10 / 7) per env


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "foo/ant",
            {},
            "env.name: unknown env suite 'foo' (known: brax, craftax, envpool, gymnax, jumanji, navix, playground, xminigrid)",
        ),
        ("gymnx/CartPole-v1", {}, "env.name: unknown env suite 'gymnx' (did you mean 'gymnax'?)"),
        (
            "gymnax/CartPole-v2",
            {},
            "env.name: unknown gymnax environment 'CartPole-v2' (did you mean 'CartPole-v1'?)",
        ),
        (
            "gymnax/CartPole-v1",
            {"max_steps_in_episod": 3},
            "env.params.max_steps_in_episod: not a parameter of gymnax/CartPole-v1 "
            "(did you mean 'max_steps_in_episode'?)",
        ),
    ],
)
def test_check_env_names_what_is_wrong(name, params, message):
    with pytest.raises(SpecError) as err:
        check_env(name, params, "env.name", "env.params")
    assert str(err.value) == message


def test_with_params_returns_a_new_env_and_leaves_the_old_one():
    env = make_env(EnvSpec(name="CartPole-v1", num_envs=2))
    other = env.with_params(env.params.replace(max_steps_in_episode=3))
    assert env.params.max_steps_in_episode == 500
    assert other.params.max_steps_in_episode == 3
    state = other.reset(jax.random.PRNGKey(0))
    for _ in range(3):
        state, out = other.step(jax.random.PRNGKey(1), state, np.zeros(2, np.int32))
    assert out.truncated.all() and not out.terminated.any()


def test_importing_the_envs_package_loads_no_suite():
    code = "import sys, jaxlab.envs; print('gymnax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_env_param_values_must_fit_the_default():
    from jaxlab.envs.gymnax_suite import check_param

    assert check_param("Pendulum-v1", "max_speed", 3) is None  # an int serves for a float
    assert check_param("Pendulum-v1", "max_speed", "x") == "must be a number, got 'x'"
    assert check_param("Pendulum-v1", "max_speed", True) == "must be a number, got True"
    assert check_param("CartPole-v1", "max_steps_in_episode", 2.5) == (
        "must be an integer, got 2.5"
    )
    assert check_param("CartPole-v1", "max_steps_in_episode", 0) == "must be >= 1, got 0"
