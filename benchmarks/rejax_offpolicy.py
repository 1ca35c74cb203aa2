"""Peer benchmarks: rejax 0.1.3 DQN and discrete SAC on CartPole-v1, N seeds vmapped in one jit.

The configurations mirror ``specs/dqn/dqn_cartpole.yaml`` and
``specs/sac/sac_discrete_cartpole.yaml`` as far as rejax's options allow. The env is
wrapped in :class:`rejax_peer.OldStepAPI` (rejax 0.1.3 speaks the pre-1.0 gymnax step API).

How rejax counts (``rejax/algos/mixins.py``, ``dqn.py``, ``sac.py``): one
``train_iteration`` steps each of ``num_envs`` envs once (``global_step += num_envs``,
frames), adds those transitions to the replay, then takes ``num_epochs`` gradient steps
if ``global_step > fill_buffer``, then updates the target when ``global_step`` crosses a
multiple of ``target_update_freq`` (``target <- polyak * target + (1 - polyak) * online``;
``polyak = 0`` is a hard copy). ``train`` runs ``ceil(total_timesteps / num_envs)``
iterations (with ``eval_freq = total_timesteps``). jaxlab's update instead collects
``train_freq`` steps in each of ``num_envs`` envs, then takes ``gradient_steps`` steps;
it runs ``max_frame // (num_envs * train_freq)`` updates. Both peers are handed jaxlab's
frame count (:func:`peer_frames`), so both frameworks train the same frames per seed.

DQN (jaxlab: 4 envs x train_freq 10 = 40 frames, then 4 gradient steps, i.e. one gradient
step per 10 frames): rejax has no ``train_freq`` (always one env step per iteration), so
the peer runs **40 envs x 1 step, then ``num_epochs=4`` gradient steps**: the same 40
transitions and 4 minibatch steps per update, the same number of updates, the same
epsilon for all 40 actions of an update. Matched: batch 128, replay 10,000, learning
from the update whose collection fills the replay to 10,000 (``fill_buffer = 9959``),
hard target copy every 480 frames (jaxlab rounds 500 frames to 12 updates of 40),
``0.5 * td^2`` loss, epsilon 1 -> 0.02 linearly over the first 250,000 frames
(``exploration_fraction = 250000 / total frames``, which can exceed 1, as jaxlab's window
is in absolute frames), MLP 120-84 relu, Adam lr 2.5e-4, gamma 0.99, no double
(``ddqn=False``), no dueling. Known differences:
  * Layout: ``seed_scaling.py`` runs jaxlab's DQN in rejax's layout too (``env.num_envs=40,
    agent.algorithm.train_freq=1``), so both step 40 envs once per update. With the spec's
    own 4 envs x 10 steps, jaxlab makes 10 sequential env calls of width 4 per update
    where rejax makes one of width 40 (same frames and policy staleness).
  * Grad clip: ``optax.clip(10)`` (element-wise) instead of ``clip_by_global_norm(10)``.
  * Adam eps: optax's default 1e-8 instead of the spec's 1e-5.
  * Targets are masked by ``done = terminated | truncated``: rejax does not bootstrap
    through CartPole's 500-step time limit, jaxlab does (only ``terminated`` masks).
  * Before learning starts (first 9,960 frames) rejax acts uniformly at random; jaxlab is
    epsilon-greedy at epsilon 1 -> 0.96 over those frames.
  * The hard copy happens after frames 480, 960, ... (rejax) vs 40, 520, 1000, ... (jaxlab).
  * Replay sampling: rejax draws each minibatch without replacement
    (``jax.random.choice(..., replace=False, p=...)`` over the whole capacity); jaxlab
    draws slots uniformly with replacement.
  * Networks use flax's default init (lecun_normal, zero bias); jaxlab's MLPs are
    orthogonal (sqrt 2 hidden, 1.0 head).
  * The hidden sizes are set by replacing ``algo.agent`` after ``DQN.create`` (rejax's
    ``create_agent`` hard-codes 64-64 and rejects ``hidden_layer_sizes`` in ``agent_kwargs``).

SAC (jaxlab: 4 envs x train_freq 1 = 4 frames, then ``gradient_steps: 4``, i.e. one
gradient step per frame, four per vectorised env step; the spec comment's "1 gradient step
per env step" counts single-env steps): rejax **4 envs, ``num_epochs=4``**, the same
update. Matched: batch 128, replay 100,000, learning once the replay holds 500
transitions (``fill_buffer = 499``), twin critics, exact expectations over the 2 actions,
auto temperature from alpha = 1 with target entropy ``0.1 * log 2``
(``target_entropy_ratio=0.1``), Adam lr 5e-4 (eps 1e-8) for actor, critics and
temperature, no grad clip, MLPs 64-64 relu, gamma 0.99. Known differences:
  * Target critics: rejax moves them once per update (after the 4 gradient steps), jaxlab
    after every gradient step with tau 0.005. The peer uses ``polyak = 0.995 ** 4``
    (tau 0.0199 per update): the same weight left on the old target after an update, but
    the new weight goes to the last of the 4 critics rather than to each in turn.
  * Order within a gradient step: rejax updates the actor (against the current critics),
    then the critics (their target uses the just-updated actor), then the temperature
    (with the pre-update actor's log-probs); jaxlab: critics, then the actor against the
    updated critics, then the temperature.
  * Temperature loss: rejax's is in ``alpha`` (``-alpha * (...)``), jaxlab's in
    ``log_alpha``; the gradient w.r.t. ``log_alpha`` differs by a factor alpha.
  * Critic loss: rejax ``sum_j mean 0.5 (Q_j - y)^2``, jaxlab without the 0.5 (Adam is
    nearly scale-invariant).
  * Log-probs: rejax takes ``log(probs)``, which underflows once the policy is nearly
    deterministic: unguarded, rejax's discrete SAC went NaN (actor, critics, alpha) on
    this config between 12k and 16k frames (seed 0; eval return 259 -> 5.8). The peer's
    actor is therefore :class:`GuardedDiscretePolicy`, rejax's ``DiscretePolicy`` with its
    log-probs floored at -80 (probabilities >= 1.8e-35; identical above the floor), so
    the peer learns (eval return 500.0 at 100k frames, seed 0). jaxlab uses ``log_softmax``.
  * Before learning starts rejax acts with the (untrained) policy; jaxlab uniformly.
  * ``done`` masking, replay sampling without replacement and flax default init: as DQN.

Evaluation is replaced by a no-op (``with_eval=False``) in the seed-scaling rows, as for PPO.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import distrax
import gymnax
import jax
import jax.numpy as jnp
from flax import linen as nn
from rejax import DQN, SAC
from rejax.networks import DiscretePolicy, DiscreteQNetwork, EpsilonGreedyPolicy
from rejax_peer import NUM_ENVS as PPO_ENVS
from rejax_peer import NUM_STEPS as PPO_STEPS
from rejax_peer import OldStepAPI, compile_algo, compile_rejax_ppo

ENV_NAME = "CartPole-v1"

# DQN (specs/dqn/dqn_cartpole.yaml)
DQN_FRAMES_PER_UPDATE = 4 * 10  # jaxlab: num_envs x train_freq; rejax: num_envs x 1
DQN_GRADIENT_STEPS = 4
DQN_LEARNING_STARTS = 10_000
DQN_TARGET_FRAMES = max(1, round(500 / DQN_FRAMES_PER_UPDATE)) * DQN_FRAMES_PER_UPDATE  # 480
DQN_EPS_FRAMES = 250_000

# SAC (specs/sac/sac_discrete_cartpole.yaml)
SAC_NUM_ENVS = 4
SAC_FRAMES_PER_UPDATE = SAC_NUM_ENVS * 1  # train_freq 1
SAC_GRADIENT_STEPS = 4
SAC_TAU = 0.005


def peer_frames(algo: str, frames: int) -> int:
    """Frames per seed the rejax peer of ``algo`` trains for ``--frames frames``.

    DQN/SAC: jaxlab's count, whole updates (``frames // frames_per_update`` of them).
    PPO: rejax's own, ``ceil(frames / (num_envs * num_steps))`` iterations (jaxlab runs
    the floor, so PPO rows can differ by one iteration)."""
    if algo == "PPO":
        batch = PPO_ENVS * PPO_STEPS
        return -(-frames // batch) * batch
    fpu = {"DQN": DQN_FRAMES_PER_UPDATE, "SAC": SAC_FRAMES_PER_UPDATE}[algo]
    if frames < fpu:
        raise ValueError(f"{algo}: {frames} frames is less than one update ({fpu})")
    return frames // fpu * fpu


def _fraction(window: int, total: int) -> float:
    """``f`` with ``int(f * total) == window`` (rejax computes the schedule length so)."""
    f = window / total
    while int(f * total) < window:
        f = math.nextafter(f, math.inf)
    return f


def make_rejax_dqn(total_timesteps: int = 500_000, env_name: str = ENV_NAME) -> DQN:
    """rejax DQN configured like ``specs/dqn/dqn_cartpole.yaml`` (see the module doc)."""
    frames = peer_frames("DQN", total_timesteps)
    env, env_params = gymnax.make(env_name)
    algo = DQN.create(
        env=OldStepAPI(env),
        env_params=env_params,
        agent_kwargs={"activation": "relu"},
        num_envs=DQN_FRAMES_PER_UPDATE,  # one step in each of 40 envs = jaxlab's update
        num_epochs=DQN_GRADIENT_STEPS,
        total_timesteps=frames,
        buffer_size=10_000,
        batch_size=128,
        # rejax trains when the step count *before* collection exceeds fill_buffer; jaxlab
        # when the replay (after collection) holds learning_starts transitions.
        fill_buffer=DQN_LEARNING_STARTS - DQN_FRAMES_PER_UPDATE - 1,
        target_update_freq=DQN_TARGET_FRAMES,
        polyak=0.0,  # hard copy
        eps_start=1.0,
        eps_end=0.02,
        exploration_fraction=_fraction(DQN_EPS_FRAMES, frames),
        learning_rate=2.5e-4,
        max_grad_norm=10.0,
        gamma=0.99,
        ddqn=False,
        normalize_observations=False,
        normalize_rewards=False,
        eval_freq=frames,  # one evaluation, at the end (a no-op unless with_eval)
        skip_initial_evaluation=True,
    )
    n = env.action_space(env_params).n
    qnet = EpsilonGreedyPolicy(DiscreteQNetwork)
    return algo.replace(agent=qnet(hidden_layer_sizes=(120, 84), action_dim=n, activation=nn.relu))


class GuardedDiscretePolicy(DiscretePolicy):
    """rejax's ``DiscretePolicy`` with log-probs floored at -80, so rejax SAC's
    ``log(probs)`` stays finite (see the module doc); same parameters."""

    def _action_dist(self, obs: jax.Array) -> distrax.Categorical:
        logits = jax.nn.log_softmax(self.action_logits(self.features(obs)))
        return distrax.Categorical(logits=jnp.maximum(logits, -80.0))


def make_rejax_sac(total_timesteps: int = 100_000, env_name: str = ENV_NAME) -> SAC:
    """rejax discrete SAC configured like ``specs/sac/sac_discrete_cartpole.yaml``."""
    frames = peer_frames("SAC", total_timesteps)
    env, env_params = gymnax.make(env_name)
    algo = SAC.create(
        env=OldStepAPI(env),
        env_params=env_params,
        agent_kwargs={"activation": "relu"},
        hidden_layer_sizes=(64, 64),
        num_envs=SAC_NUM_ENVS,
        num_epochs=SAC_GRADIENT_STEPS,
        total_timesteps=frames,
        buffer_size=100_000,
        batch_size=128,
        fill_buffer=500 - 1,  # trains once global_step (after collection) >= 500
        target_update_freq=1,  # every update
        polyak=(1.0 - SAC_TAU) ** SAC_GRADIENT_STEPS,
        target_entropy_ratio=0.1,
        learning_rate=5e-4,
        gamma=0.99,
        normalize_observations=False,
        normalize_rewards=False,
        eval_freq=frames,
        skip_initial_evaluation=True,
    )
    a = algo.actor
    return algo.replace(
        actor=GuardedDiscretePolicy(a.action_dim, a.hidden_layer_sizes, a.activation)
    )


def compile_rejax_dqn(
    num_seeds: int,
    total_timesteps: int = 500_000,
    seed: int = 0,
    with_eval: bool = True,
    env_name: str = ENV_NAME,
) -> tuple[Any, jax.Array, float]:
    """``jit(vmap(DQN.train))`` over ``num_seeds`` keys, compiled ahead of time:
    ``(compiled, keys, compile seconds)``, like ``rejax_peer.compile_rejax_ppo``."""
    return compile_algo(make_rejax_dqn(total_timesteps, env_name), num_seeds, seed, with_eval)


def compile_rejax_sac(
    num_seeds: int,
    total_timesteps: int = 100_000,
    seed: int = 0,
    with_eval: bool = True,
    env_name: str = ENV_NAME,
) -> tuple[Any, jax.Array, float]:
    """``jit(vmap(SAC.train))`` over ``num_seeds`` keys, compiled ahead of time:
    ``(compiled, keys, compile seconds)``, like ``rejax_peer.compile_rejax_ppo``."""
    return compile_algo(make_rejax_sac(total_timesteps, env_name), num_seeds, seed, with_eval)


# algo -> its rejax peer's compile function (seed_scaling.RejaxRun dispatches on this).
PEERS: dict[str, Callable[..., tuple[Any, jax.Array, float]]] = {
    "PPO": compile_rejax_ppo,
    "DQN": compile_rejax_dqn,
    "SAC": compile_rejax_sac,
}


if __name__ == "__main__":
    import argparse

    import numpy as np

    parser = argparse.ArgumentParser(description="Train a rejax peer with evaluation on.")
    parser.add_argument("algo", choices=["DQN", "SAC"])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    compiled, keys, compile_s = PEERS[args.algo](args.seeds, args.frames)
    t0 = time.perf_counter()
    ts, (_, returns) = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - t0
    per_seed = np.asarray(returns)[:, -1].mean(axis=-1)  # (seeds, evals, episodes)
    print(
        f"rejax {args.algo}: {int(np.asarray(ts.global_step)[0])} frames/seed, "
        f"compile {compile_s:.1f} s, run {run_s:.1f} s, final return (128 episodes) "
        f"mean {per_seed.mean():.1f} per seed {[round(float(x), 1) for x in per_seed]}"
    )
