"""Peer benchmark: rejax 0.1.3 PPO on a gymnax env (CartPole-v1 by default), N seeds vmapped in one jit.

rejax 0.1.3 speaks the pre-1.0 gymnax step API (``obs, state, reward, done, info``);
gymnax 1.0.1 returns ``(obs, state, reward, terminated, truncated, info)``, so the env
is wrapped in :class:`OldStepAPI` and handed to ``PPO.create(env=..., env_params=...)``.

Config mirrors the CleanRL ``ppo.py`` CartPole defaults as far as rejax's options allow.
Known differences that rejax 0.1.3 does NOT let us configure (see ``rejax/algos/ppo.py``):
  * Adam eps is optax's default 1e-8 (not 1e-5).
  * ``max_grad_norm`` is applied with ``optax.clip`` (element-wise value clipping to
    +-0.5), not ``clip_by_global_norm``; actor and critic also have separate Adam
    optimizers/losses instead of one joint loss (so ``vf_coef`` only scales critic grads).
  * Networks use flax's default init (lecun_normal, zero bias), not orthogonal init.
  * rejax runs ``ceil(total_timesteps / (num_envs * num_steps))`` = 977 iterations
    (500_224 frames) where CleanRL runs ``floor`` = 976 (499_712 frames).
  * LR annealing: rejax's ``learning_rate`` is passed straight to ``optax.adam``, so we
    pass an optax linear schedule (annealed to 0 per optimizer step, i.e. per minibatch
    update) rather than CleanRL's per-iteration anneal. Not an advertised rejax option.
"""

from __future__ import annotations

import time
from typing import Any

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from rejax import PPO

from jaxlab.lab.trial import over_sessions

ENV_NAME = "CartPole-v1"
NUM_ENVS = 4
NUM_STEPS = 128
NUM_EPOCHS = 4
NUM_MINIBATCHES = 4
LEARNING_RATE = 2.5e-4


class OldStepAPI:
    """Wrap a gymnax>=1.0 env so ``step`` returns the pre-1.0 5-tuple.

    ``step`` returns ``(obs, state, reward, done, info)`` with
    ``done = terminated | truncated`` (gymnax already auto-resets on either). Every other
    attribute (``reset``, ``default_params``, ``action_space``, ...) is forwarded.
    """

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found normally. Guard dunders and ``_env`` so
        # copy.deepcopy / pickle (which build the object without __init__) don't recurse.
        if name.startswith("__") or name == "_env":
            raise AttributeError(name)
        return getattr(self._env, name)

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any = None
    ) -> tuple[Any, Any, jax.Array, jax.Array, dict[str, Any]]:
        """Step the wrapped env, merging terminated/truncated into one ``done`` flag."""
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


def make_rejax_ppo(total_timesteps: int = 500_000, env_name: str = ENV_NAME) -> PPO:
    """Build rejax PPO for ``env_name`` with the CleanRL-style config (see module doc).

    The same hyperparameters serve every env (rejax's MLP flattens image observations,
    like jaxlab's adapter does).
    """
    env, env_params = gymnax.make(env_name)
    batch = NUM_ENVS * NUM_STEPS
    num_iterations = int(np.ceil(total_timesteps / batch))  # what rejax will run
    # Each of actor_ts / critic_ts owns an optimizer stepped once per minibatch.
    lr = optax.linear_schedule(LEARNING_RATE, 0.0, num_iterations * NUM_EPOCHS * NUM_MINIBATCHES)
    return PPO.create(
        env=OldStepAPI(env),
        env_params=env_params,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
        num_envs=NUM_ENVS,
        num_steps=NUM_STEPS,
        num_epochs=NUM_EPOCHS,
        num_minibatches=NUM_MINIBATCHES,
        total_timesteps=total_timesteps,
        learning_rate=lr,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        normalize_observations=False,
        normalize_rewards=False,
        # rejax evaluates every `eval_freq` env steps (default 4096) plus once before
        # training (unless skip_initial_evaluation). Each evaluation runs 128 episodes
        # (up to max_steps_in_episode=500 steps each) with the stochastic policy. The
        # minimum is one evaluation, at the end: eval_freq = total_timesteps. That final
        # eval is still inside the timed train function (<= 64k batched env steps).
        eval_freq=total_timesteps,
        skip_initial_evaluation=True,
    )


def _no_eval(algo: Any, ts: Any, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A do-nothing evaluation (rejax's default runs 128 episodes inside ``train``)."""
    return jnp.zeros((1,)), jnp.full((1,), jnp.nan)


def compile_rejax_ppo(
    num_seeds: int,
    total_timesteps: int = 500_000,
    seed: int = 0,
    with_eval: bool = True,
    env_name: str = ENV_NAME,
) -> tuple[Any, jax.Array, float]:
    """``jit(vmap(algo.train))`` over ``num_seeds`` keys, compiled ahead of time.

    Returns ``(compiled, keys, compile seconds)``; ``compiled(keys)`` trains. With
    ``with_eval=False`` rejax's final evaluation is a no-op, so a call is training only.
    """
    return compile_algo(make_rejax_ppo(total_timesteps, env_name), num_seeds, seed, with_eval)


def compile_algo(
    algo: Any, num_seeds: int, seed: int = 0, with_eval: bool = True
) -> tuple[Any, jax.Array, float]:
    """``jit(vmap(algo.train))`` of any rejax algorithm over ``num_seeds`` keys, compiled
    ahead of time: ``(compiled, keys, compile seconds)`` (evaluation a no-op unless
    ``with_eval``). One seed is not vmapped (``jit(algo.train)`` with the seed axis
    squeezed and restored), as a 1-seed jaxlab Trial is not: both compile faster so."""
    if not with_eval:
        algo = algo.replace(eval_callback=_no_eval)
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(over_sessions(algo.train, num_seeds, (0,))).lower(keys).compile()
    return compiled, keys, time.perf_counter() - t0


def time_rejax_ppo(
    num_seeds: int,
    total_timesteps: int = 500_000,
    seed: int = 0,
    with_eval: bool = True,
    env_name: str = ENV_NAME,
    repeats: int = 1,
) -> dict:
    """Compile and run ``jit(vmap(algo.train))`` over ``num_seeds`` keys; return timings.

    ``with_eval=False`` swaps rejax's final evaluation for a no-op so the timing covers
    training only (``final_return_*`` are then NaN).

    ``final_return_mean`` is rejax's own final evaluation: the mean undiscounted return
    of 128 episodes with the sampled (stochastic) policy, averaged over seeds.
    ``final_return_per_seed`` lists the per-seed means. ``env_steps`` counts training
    frames as ``num_seeds * total_timesteps`` (rejax actually rounds up to whole
    iterations) and excludes the final-eval steps.
    """
    compiled, keys, compile_s = compile_rejax_ppo(
        num_seeds, total_timesteps, seed, with_eval, env_name
    )
    runs = []
    for _ in range(repeats):  # run_s: the best of ``repeats`` calls
        t0 = time.perf_counter()
        _, (_, returns) = jax.block_until_ready(compiled(keys))
        runs.append(time.perf_counter() - t0)
    run_s = min(runs)

    per_seed = np.asarray(returns)[:, -1].mean(axis=-1)  # (seeds, evals, episodes)
    env_steps = num_seeds * total_timesteps
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "env_steps": env_steps,
        "steps_per_s": env_steps / run_s,
        "final_return_mean": float(per_seed.mean()),
        "final_return_per_seed": per_seed.tolist(),
    }


if __name__ == "__main__":
    print(f"jax {jax.__version__} on {jax.devices()}")
    for n in (1, 4):
        r = time_rejax_ppo(n)
        print(
            f"seeds={n}: compile_s={r['compile_s']:.2f} run_s={r['run_s']:.2f} "
            f"env_steps={r['env_steps']} steps_per_s={r['steps_per_s']:,.0f} "
            f"final_return_mean={r['final_return_mean']:.1f} "
            f"per_seed={[round(x, 1) for x in r['final_return_per_seed']]}"
        )
