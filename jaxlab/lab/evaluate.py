"""Evaluation episodes: the deterministic policy in separate envs, pure and jittable.

``E`` fresh envs (not the training envs, whose state is untouched) each play one full
episode with the agent's greedy/mean action. One ``lax.scan`` of ``max_steps_in_episode``
steps covers the longest possible episode; an env's return stops accumulating at its
first ``terminated | truncated``:

    R_e = sum_{t < T_e} r_{e,t},   T_e = first step where env e's episode ends

The training ``state`` is only read (params, normaliser statistics), never changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.envs import Env, make_env

EVAL_METRICS = ("eval_return_mean", "eval_return_std")
EVAL_SALT = 0x6576616C  # folded into the session key, so eval never draws from training's
# The ``contents`` a checkpoint's metadata names when it holds a PolicyState (``best``).
POLICY_CONTENTS = "policy"


@struct.dataclass
class Episodes:
    """Per env ``[E]``: the first episode's return and length. ``trace``: env 0 per step."""

    returns: jax.Array
    lengths: jax.Array
    # when recorded: (env_state pytree [T, ...], obs [T, obs_dim], done-before-step mask [T])
    trace: Any = None


@struct.dataclass
class PolicyState:
    """What the deterministic policy reads of a training state: the parameters and the
    normalisers' statistics. ``agent.policy(state, obs, key)`` (deterministic) and
    :func:`make_episodes` take it in place of the full state; ``best`` checkpoints hold
    it (no replay buffer, optimiser or env states: SAC's at 4,096 seeds would otherwise
    write its replay, 17.6 GiB, at each new best)."""

    params: Any
    norm: Any


def policy_state(state: Any) -> PolicyState:
    """``state``'s :class:`PolicyState` (leaves shared, nothing copied)."""
    return PolicyState(state.params, state.norm)


def make_episodes(
    agent: Any, env: Env, deterministic: bool = True, record: bool = False
) -> Callable[[Any, jax.Array], Episodes]:
    """``run(state, key) -> Episodes`` for ``env.num_envs`` episodes of ``agent``'s policy.

    An agent with memory (``policy_carry(state, n)`` and ``policy_step(state, carry, obs,
    first, key, deterministic) -> (action, carry)``, :mod:`jaxlab.algorithms.recurrent`)
    carries it through the episode, reset where one starts."""
    steps = env.max_episode_steps
    memory = hasattr(agent, "policy_carry")

    def run(state: Any, key: jax.Array) -> Episodes:
        k_reset, k_run = jax.random.split(key)
        env_state = env.reset(k_reset)
        n = env.num_envs

        def step(carry: tuple, k: jax.Array) -> tuple:
            es, finished, ret, length, (mem, first) = carry
            k_act, k_env = jax.random.split(k)
            if memory:
                action, mem = agent.policy_step(state, mem, es.obs, first, k_act, deterministic)
            else:
                action = agent.policy(state, es.obs, k_act, deterministic)
            new_es, out = env.step(k_env, es, action)
            live = ~finished
            ret = ret + jnp.where(live, out.reward, 0.0)
            length = length + live.astype(jnp.int32)
            ended = out.terminated | out.truncated
            seen = (es.env_state, es.obs, finished)
            trace = jax.tree.map(lambda x: x[0], seen) if record else None
            mem = (mem, ended) if memory else (mem, first)
            return (new_es, finished | ended, ret, length, mem), trace

        mem = (agent.policy_carry(state, n), jnp.ones(n, bool)) if memory else ((), ())
        zeros = jnp.zeros(n, jnp.float32), jnp.zeros(n, jnp.int32)
        init = (env_state, jnp.zeros(n, bool), *zeros, mem)
        (_, _, ret, length, _), trace = jax.lax.scan(step, init, jax.random.split(k_run, steps))
        return Episodes(ret, length, trace)

    return run


def make_evaluate(agent: Any, spec: Any) -> Callable[[Any, jax.Array], dict[str, jax.Array]]:
    """``evaluate(state, key) -> {eval_return_mean, eval_return_std}`` over
    ``meta.eval_episodes`` deterministic episodes (one session, unbatched)."""
    env = make_env(spec.env, spec.meta.eval_episodes, evaluation=True)
    run = make_episodes(agent, env)

    def evaluate(state: Any, key: jax.Array) -> dict[str, jax.Array]:
        ret = run(state, key).returns
        return {"eval_return_mean": ret.mean(), "eval_return_std": ret.std()}

    return evaluate
