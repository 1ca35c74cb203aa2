"""Self-imitation learning on top of PPO and A2C (``agent.algorithm.sil.updates > 0``).

Oh et al. (2018): besides its own update, the agent imitates its past actions that
turned out better than its critic expected. The state adds

* ``episodes``: each env's unfinished episode (:class:`~jaxlab.memory.episodes.EpisodeBuffer`,
  up to ``sil.max_episode`` steps), so an episode longer than a rollout still gets its
  true Monte-Carlo return;
* ``sil_memory``: a prioritized replay of past steps ``{obs, action, ret}``.

After each rollout, the steps whose episodes ended get their discounted returns
(truncated episodes bootstrap from ``V`` of their true final observation, as the main
update does) and enter the memory at the highest priority. After the algorithm's own
update, ``sil.updates`` minibatch steps of ``sil.batch_size`` replayed steps minimise
(:func:`~jaxlab.rl.losses.self_imitation_losses`)

    L = -mean(w log pi(a|s) max(R - V(s), 0)) + value_coef * 0.5 * mean(w max(R - V(s), 0)^2)

and set each replayed step's priority to ``max(R - V(s), 0)`` (+1e-6).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms.base import clipped_step
from jaxlab.algorithms.onpolicy import ActorCriticOnPolicy, Decide, OnPolicyState
from jaxlab.memory import make_replay
from jaxlab.memory.episodes import EpisodeBuffer, finish_episodes
from jaxlab.rl import losses
from jaxlab.rl.branching import branch
from jaxlab.rl.rollout import Transition

PRIORITY_FLOOR = 1e-6


@struct.dataclass
class SILState(OnPolicyState):
    episodes: Any = None  # EpisodeBuffer [N, L, ...]
    sil_memory: Any = None  # PrioritizedReplay of {obs, action, ret}


class SelfImitation(ActorCriticOnPolicy):
    """The self-imitation additions to an on-policy actor-critic; see the module
    docstring. Mixed in before PPO or A2C (:mod:`jaxlab.algorithms.forms`)."""

    def init(self, key: jax.Array) -> SILState:
        base = super().init(key)
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        sil, env = self.cfg.sil, self.env
        obs, actions = env.observation_spec, env.action_spec
        action = jnp.int32(0) if actions.discrete else jnp.zeros((actions.dim,), jnp.float32)
        steps = min(env.max_episode_steps, sil.max_episode)
        item = {"obs": jnp.zeros((obs.dim,), obs.dtype), "action": action, "ret": jnp.float32(0)}
        return SILState(
            **fields,
            episodes=EpisodeBuffer.create(env.num_envs, steps, obs.dim, action, obs.dtype),
            sil_memory=make_replay(True, item, sil.capacity, sil.batch_size),
        )

    def sample_rollout(
        self, state: SILState, decide: Decide, key: jax.Array
    ) -> tuple[SILState, Transition]:
        """The rollout, then its finished episodes' steps into the memory."""
        state, ro = super().sample_rollout(state, decide, key)
        with jax.named_scope("self_imitation"):
            end_value = self.bootstrap(state, ro)
            episodes, rows, keep = finish_episodes(state.episodes, ro, end_value, state.hyper.gamma)
            memory = state.sil_memory.add_where(rows, keep, self.cfg.sil.alpha)
        return state.replace(episodes=episodes, sil_memory=memory), ro

    def sil_loss(self, params: Any, items: dict, weight: jax.Array) -> tuple[jax.Array, dict]:
        pi, value = self.net.apply(params, items["obs"])
        policy, value_loss, clipped = losses.self_imitation_losses(
            pi.log_prob(items["action"]), value, items["ret"], weight
        )
        total = policy + self.cfg.sil.value_coef * value_loss
        return total, {"sil_policy_loss": policy, "sil_value_loss": value_loss,
                       "sil_advantage": clipped}  # fmt: skip

    def self_imitate(self, state: SILState, lr: jax.Array) -> tuple[SILState, dict]:
        """``sil.updates`` prioritized minibatch steps (none until a batch is stored)."""
        sil = self.cfg.sil
        key, k_sil = jax.random.split(state.key)

        def step(carry: tuple, k: jax.Array) -> tuple:
            params, opt_state, memory = carry
            idx, items, weight = memory.sample(k, sil.batch_size, sil.alpha, sil.beta)
            loss = lambda p: self.sil_loss(p, items, weight)  # noqa: E731
            new_params, new_opt, aux = clipped_step(
                self.tx, loss, params, opt_state, lr, state.hyper.max_grad_norm
            )
            ready = memory.size >= sil.batch_size
            params, opt_state = jax.tree.map(
                lambda a, b: jnp.where(ready, a, b), (new_params, new_opt), (params, opt_state)
            )
            priority = aux.pop("sil_advantage") + PRIORITY_FLOOR
            memory = branch(
                ready, lambda m: m.update(idx, priority, 0.0, sil.alpha), lambda m: m, memory
            )
            return (params, opt_state, memory), {**aux, "sil_ready": ready.astype(jnp.float32)}

        with jax.named_scope("self_imitation"):
            carry = (state.params, state.opt_state, state.sil_memory)
            (params, opt_state, memory), aux = jax.lax.scan(
                step, carry, jax.random.split(k_sil, sil.updates)
            )
        state = state.replace(params=params, opt_state=opt_state, sil_memory=memory, key=key)
        return state, jax.tree.map(jnp.mean, aux)

    def update(self, state: SILState) -> tuple[SILState, dict[str, jax.Array]]:
        state, metrics = super().update(state)
        state, sil_metrics = self.self_imitate(state, metrics["lr"])
        stored = state.sil_memory.size.astype(jnp.float32)
        return state, {**metrics, **sil_metrics, "sil_memory_size": stored}


__all__ = ["SILState", "SelfImitation"]
