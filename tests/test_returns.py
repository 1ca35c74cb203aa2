"""n-step, Q(lambda) and reward-to-go returns against hand-computed numbers (gamma = 0.5)."""

from __future__ import annotations

import jax
import numpy as np

from jaxlab.rl.returns import discounted_returns, nstep_returns, q_lambda_returns

F, T = False, True


def cols(*columns: list) -> np.ndarray:
    """Per-env time series -> a time-major ``[T, B]`` array."""
    return np.stack([np.asarray(c) for c in columns], axis=1)


def test_nstep_bootstraps_at_rollout_end_and_truncation_not_termination():
    reward = cols([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]).astype(np.float32)
    next_value = cols([10.0, 20.0, 30.0, 40.0], [2.0, 4.0, 6.0, 8.0]).astype(np.float32)
    # env 1: terminated at t=1, truncated at t=2
    terminated = cols([F, F, F, F], [F, T, F, F])
    done = cols([F, F, F, F], [F, T, T, F])
    ret = nstep_returns(reward, next_value, terminated, done, 0.5)
    # env 0: R3 = 4 + .5*40 = 24, R2 = 3 + .5*24 = 15, R1 = 2 + .5*15 = 9.5, R0 = 1 + .5*9.5
    # env 1: R3 = 1 + .5*8 = 5, R2 = 1 + .5*V(s'_2)=6 -> 4 (truncation), R1 = 1 (termination),
    #        R0 = 1 + .5*1 = 1.5
    expected = cols([5.75, 9.5, 15.0, 24.0], [1.5, 1.0, 4.0, 5.0])
    np.testing.assert_allclose(np.asarray(ret), expected, rtol=1e-6)


def test_nstep_terminal_last_step_and_jit():
    reward = cols([1.0, 1.0, 2.0], [0.0, 0.0, 0.0]).astype(np.float32)
    next_value = cols([3.0, 3.0, 100.0], [4.0, 8.0, 16.0]).astype(np.float32)
    terminated = cols([F, F, T], [F, F, F])
    done = cols([F, F, T], [F, F, F])
    ret = jax.jit(nstep_returns)(reward, next_value, terminated, done, 0.5)
    # env 0: R2 = 2 (terminal, no bootstrap), R1 = 1 + 1 = 2, R0 = 1 + 1 = 2
    # env 1: R2 = .5*16 = 8, R1 = 4, R0 = 2
    np.testing.assert_allclose(np.asarray(ret), cols([2.0, 2.0, 2.0], [2.0, 4.0, 8.0]))


def test_reward_to_go_and_validity_mask():
    reward = cols([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]).astype(np.float32)
    # env 0 ends (terminates) at t=2; env 1 terminates at t=1 and is truncated at t=2
    done = cols([F, F, T, F], [F, T, T, F])
    ret, valid = discounted_returns(reward, done, 0.5)
    # env 0: G2 = 3, G1 = 2 + 1.5 = 3.5, G0 = 1 + 1.75 = 2.75; G3 = 4 (episode unfinished)
    # env 1: G2 = 1, G1 = 1, G0 = 1.5; G3 = 1 (unfinished)
    np.testing.assert_allclose(np.asarray(ret), cols([2.75, 3.5, 3.0, 4.0], [1.5, 1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(np.asarray(valid), cols([T, T, T, F], [T, T, T, F]))


def test_reward_to_go_with_no_episode_end_is_all_invalid():
    reward = cols([1.0, 1.0, 1.0], [2.0, 0.0, 2.0]).astype(np.float32)
    done = cols([F, F, F], [F, F, T])
    ret, valid = discounted_returns(reward, done, 0.5)
    # env 0: truncated sums 1.75, 1.5, 1 - all invalid; env 1: 2 + 0 + .25*2 = 2.5, 1, 2
    np.testing.assert_allclose(np.asarray(ret), cols([1.75, 1.5, 1.0], [2.5, 1.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(valid), cols([F, F, F], [T, T, T]))


def test_next_values_match_a_full_critic_pass_wherever_they_are_used():
    """The rollout's own values plus a pass over the last and truncated steps give the
    same ``V(s'_t)`` as evaluating every ``next_obs``, at every non-terminated step."""
    import jax.numpy as jnp

    from jaxlab.envs import max_truncations
    from jaxlab.envs.gymnax_suite import make
    from jaxlab.rl.rollout import Normalizers, collect, next_values
    from jaxlab.spec.schema import EnvSpec

    env = make("CartPole-v1", 3, {"max_steps_in_episode": 4})  # truncations every 4 steps
    w = jnp.array([0.3, -1.2, 0.7, 2.0])

    def critic(obs):
        return jnp.tanh(obs @ w) + obs[..., 0]

    def act(obs, key):
        return jax.random.bernoulli(key, 0.5, obs.shape[:1]).astype(jnp.int32), {
            "value": critic(obs)
        }

    steps = 10
    assert max_truncations(env, steps) == 3 * 3  # ceil(10 / 4) per env
    spec = EnvSpec(name="CartPole-v1", num_envs=3)
    _, _, ro = collect(
        env, env.reset(jax.random.PRNGKey(0)), Normalizers.create(4, 3), act,
        jax.random.PRNGKey(1), steps, spec,
    )  # fmt: skip
    truncated = np.asarray(ro.done & ~ro.terminated)
    assert truncated.sum() >= 3  # the case under test happens
    got = next_values(ro.extra["value"], ro, critic, max_truncations(env, steps))
    full = critic(ro.next_obs)
    used = ~np.asarray(ro.terminated)
    np.testing.assert_allclose(np.asarray(got)[used], np.asarray(full)[used], rtol=1e-6)
    # no bound: the full pass itself
    np.testing.assert_array_equal(
        np.asarray(next_values(ro.extra["value"], ro, critic, steps * 3)), np.asarray(full)
    )


def test_q_lambda_mixes_one_step_and_nstep_and_bootstraps_through_truncation():
    reward = cols([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]).astype(np.float32)
    next_value = cols([10.0, 20.0, 30.0], [2.0, 4.0, 6.0]).astype(np.float32)
    terminated = cols([F, F, F], [T, F, F])  # env 1: terminated at t=0, truncated at t=1
    done = cols([F, F, F], [T, T, F])
    ret = jax.jit(q_lambda_returns)(reward, next_value, terminated, done, 0.5, 0.5)
    # env 0: R2 = 3 + .5*30 = 18 (last step: V only);
    #        R1 = 2 + .5*(.5*20 + .5*18) = 11.5;  R0 = 1 + .5*(.5*10 + .5*11.5) = 6.375
    # env 1: R2 = 1 + .5*6 = 4;  R1 = 1 + .5*V(s'_1)=4 -> 3 (truncated: bootstraps, no mix);
    #        R0 = 1 (terminated)
    expected = cols([6.375, 11.5, 18.0], [1.0, 3.0, 4.0])
    np.testing.assert_allclose(np.asarray(ret), expected, rtol=1e-6)
    # lam = 1 is the n-step return; lam = 0 the one-step target r + gamma (1 - x) V(s').
    args = (reward, next_value, terminated, done, 0.5)
    np.testing.assert_allclose(q_lambda_returns(*args, 1.0), nstep_returns(*args), rtol=1e-6)
    one_step = reward + 0.5 * (1.0 - terminated) * next_value
    np.testing.assert_allclose(q_lambda_returns(*args, 0.0), one_step, rtol=1e-6)
