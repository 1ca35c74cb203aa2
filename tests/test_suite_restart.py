"""The restart of the ended envs only (``restart_ended_only``: Jumanji, in ``full`` reset
mode on CPU): the same states, observations and episode statistics, bit for bit, as the
batched reset of every env it replaced, with no round on steps where none ended and
several rounds where more envs end than one round takes, vmapped over sessions (their
rounds differ)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

pytest.importorskip("jumanji")

from jaxlab.envs import adapter, make_env  # noqa: E402
from jaxlab.spec.schema import EnvSpec  # noqa: E402

STEPS, ENVS, SESSIONS = 60, 32, 2  # 32 envs: 2 restarts per round
CASES = [
    ("jumanji/Snake-v1", {"time_limit": 12}),
    ("jumanji/Maze-v0", {"time_limit": 5}),  # all end together: 16 rounds
]


def rollout(env, key: jax.Array) -> tuple:
    """``STEPS`` steps of random actions from a reset: the final state and, per step,
    rewards, ends, the true final observations and the next observations."""
    k_reset, k_steps, k_actions = jax.random.split(key, 3)
    actions = jax.random.randint(k_actions, (STEPS, ENVS), 0, env.action_spec.dim)

    def body(state, xs):
        k, action = xs
        state, out = env.step(k, state, action)
        ends = out.terminated | out.truncated
        return state, (out.reward, ends, out.final_obs, state.obs, out.done_return)

    state = env.reset(k_reset)
    return jax.lax.scan(body, state, (jax.random.split(k_steps, STEPS), actions))


def both_ways(env, keys: jax.Array, monkeypatch) -> tuple:
    """The rollouts of ``keys [S]`` (vmapped) with the ended-only restart, then with the
    batched restart of all envs (what an accelerator runs, under the CPU's cond), and how
    many more ``while_loop``s the first program holds than the second."""

    def run(keys: jax.Array) -> tuple:
        rollouts = jax.vmap(lambda k: rollout(env, k))
        return jax.jit(rollouts)(keys), str(jax.make_jaxpr(rollouts)(keys)).count("while[")

    ended_only, loops = run(keys)
    with monkeypatch.context() as patch:
        patch.setattr(adapter, "cheap_conds", lambda platform: False)
        every_env, batched_loops = run(keys)
    return ended_only, every_env, loops - batched_loops


@pytest.mark.parametrize(("name", "params"), CASES)
def test_restarting_only_the_ended_envs_matches_restarting_every_env(name, params, monkeypatch):
    env = make_env(EnvSpec(name=name, num_envs=ENVS, params=params))
    assert env.reset_mode == "full" and env.restart_ended_only
    keys = jax.random.split(jax.random.PRNGKey(7), SESSIONS)
    ended_only, every_env, more_loops = both_ways(env, keys, monkeypatch)
    assert more_loops == 1  # the rounds' loop: the ended-only restart is what ran
    for got, want in zip(jax.tree.leaves(ended_only), jax.tree.leaves(every_env), strict=True):
        np.testing.assert_array_equal(got, want)
    ends = np.asarray(ended_only[1][1]).sum(axis=-1)  # [S, STEPS]
    per_round = -(-ENVS // adapter.POOL_RATIO)
    assert (ends == 0).any() and (ends > per_round).any(), ends  # no round; several
