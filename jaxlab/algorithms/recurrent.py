"""The recurrent form of PPO and A2C (``agent.net.recurrent: GRU`` or ``LSTM``).

The network is :class:`~jaxlab.networks.recurrent.RecurrentActorCritic`. The state adds
the cell's ``carry`` per env and ``first [N]`` (the current observation starts an
episode). The carry is kept *raw*: the cell zeroes it where ``first`` is set, before the
step reads the observation, so the carry an episode ended with stays available.

* **Rollout.** Each step records the raw carry it started from (``extra["carry"]``,
  ``[T, N, ...]``) and its ``first`` flags; after the step ``first = done``.
* **Bootstrapping.** ``V(s'_t)`` needs the carry after step ``t``: the next step's raw
  carry, or the state's carry after the last step. The critic reads the true successor
  with it, so truncated episodes bootstrap exactly as in the feed-forward form.
* **Update.** Minibatches are whole env sequences ``[N/M, T, ...]`` (``num_envs`` must
  divide into ``minibatch_count``). The update replays each from its recorded first
  carry and ``first`` flags, so at unchanged parameters it reproduces the rollout's
  log-probabilities and values exactly (``tests/test_recurrent.py``).
* **Evaluation and enjoy** carry the state through their episodes
  (:meth:`policy_step`, used by :func:`jaxlab.lab.evaluate.make_episodes`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxlab.algorithms.onpolicy import ActorCriticOnPolicy, Decide, OnPolicyState
from jaxlab.networks.recurrent import RecurrentActorCritic
from jaxlab.rl.distributions import Categorical, DiagGaussian
from jaxlab.rl.rollout import Transition, collect, next_values


@struct.dataclass
class RecurrentState(OnPolicyState):
    carry: Any = None  # the cell's raw carry per env, a tuple (one per core) of [N, ...]
    first: jax.Array = None  # [N] bool: the current observation starts an episode


@struct.dataclass
class Sequences:
    """How to replay a rollout's sequences: the raw carry each env started the rollout
    with (``[N, ...]``) and the episode-start flags (``[T, N]``, ``[N, T]`` once laid out)."""

    carry: Any
    first: jax.Array


def _step(x: Any) -> Any:
    """A ``[B, 1, ...]`` network output (one time step) as ``[B, ...]``."""
    return jax.tree.map(lambda v: v[:, 0], x)


class Recurrent(ActorCriticOnPolicy):
    """The recurrent overrides of the on-policy actor-critic hooks; see the module
    docstring. Mixed in before PPO or A2C (:mod:`jaxlab.algorithms.forms`)."""

    def make_net(self) -> RecurrentActorCritic:
        actions, net = self.env.action_spec, self.spec.agent.net
        return RecurrentActorCritic(
            action_dim=actions.dim, discrete=actions.discrete, torso=self.torso(),
            shared=net.shared, cell=net.recurrent, size=net.recurrent_size,
        )  # fmt: skip

    def init_params(self, key: jax.Array) -> Any:
        obs = jnp.zeros((1, 1, self.env.observation_spec.dim), jnp.float32)
        return self.net.init(key, self.net.initial_carry(1), obs, jnp.ones((1, 1), bool))

    def init(self, key: jax.Array) -> RecurrentState:
        base = super().init(key)
        n = self.env.num_envs
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        return RecurrentState(**fields, carry=self.net.initial_carry(n), first=jnp.ones((n,), bool))

    # ------------------------------------------------------------------ acting

    def policy_carry(self, state: RecurrentState, n: int) -> Any:
        """The carry ``n`` evaluation envs start from (zeros)."""
        return self.net.initial_carry(n)

    def policy_step(
        self, state: RecurrentState, carry: Any, obs: jax.Array, first: jax.Array,
        key: jax.Array, deterministic: bool = True,
    ) -> tuple[jax.Array, Any]:  # fmt: skip
        """Actions for raw ``obs [N, D]`` from ``carry`` (reset where ``first``), and the
        carry after the step."""
        obs = state.norm.observe(obs, self.spec.env)
        carry, pi, _ = self.net.apply(state.params, carry, obs[:, None], first[:, None])
        pi = _step(pi)
        return (pi.mode() if deterministic else pi.sample(key)), carry

    def policy(
        self, state: RecurrentState, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array:
        """Actions for ``obs`` as the first step of an episode."""
        n = obs.shape[0]
        first = jnp.ones((n,), bool)
        return self.policy_step(state, self.policy_carry(state, n), obs, first, key, deterministic)[
            0
        ]

    def value(self, state: RecurrentState, obs: jax.Array) -> jax.Array:
        """``V`` of ``obs`` as the first step of an episode, ``[N]``."""
        n = obs.shape[0]
        obs = state.norm.observe(obs, self.spec.env)
        first = jnp.ones((n, 1), bool)
        carry = self.net.initial_carry(n)
        return self.net.apply(state.params, carry, obs[:, None], first, method=self.net.value)[:, 0]

    # ------------------------------------------------------------------ the hooks

    def sample_rollout(
        self, state: RecurrentState, decide: Decide, key: jax.Array
    ) -> tuple[RecurrentState, Transition]:
        def act(obs: jax.Array, k: jax.Array, memory: tuple) -> tuple:
            carry, first = memory
            new, pi, value = self.net.apply(state.params, carry, obs[:, None], first[:, None])
            action, extra = decide(_step(pi), value[:, 0], k)
            return action, {**extra, "carry": carry, "first": first}, new

        env, norm, (carry, first), ro = collect(
            self.env, state.env, state.norm, act, key, self.cfg.time_horizon, self.spec.env,
            state.hyper.gamma, memory=(state.carry, state.first),
        )  # fmt: skip
        return state.replace(env=env, norm=norm, carry=carry, first=first), ro

    def bootstrap(self, state: RecurrentState, ro: Transition) -> jax.Array:
        """The carry after step ``t`` is step ``t+1``'s raw carry, or ``state.carry``
        (the state after the rollout) for the last step; the critic reads the true
        successor with it, as a continuing step (no reset)."""
        after = jax.tree.map(
            lambda c, last: jnp.concatenate([c[1:], last[None]], axis=0),
            ro.extra["carry"], state.carry,
        )  # fmt: skip

        def critic(inputs: tuple) -> jax.Array:
            obs, carry = inputs
            lead = obs.shape[:-1]
            flat = lambda x: x.reshape((-1,) + x.shape[len(lead) :])  # noqa: E731
            obs, carry = flat(obs), jax.tree.map(flat, carry)
            first = jnp.zeros((obs.shape[0], 1), bool)
            v = self.net.apply(state.params, carry, obs[:, None], first, method=self.net.value)
            return v[:, 0].reshape(lead)

        return next_values(
            ro.extra["value"], ro, critic, self.truncations, next_inputs=(ro.next_obs, after)
        )

    def sequences(self, ro: Transition) -> Sequences:
        return Sequences(jax.tree.map(lambda c: c[0], ro.extra["carry"]), ro.extra["first"])

    def learn_layout(self, batch: Any) -> Any:
        """Whole sequences, env-major: step fields ``[T, N, ...] -> [N, T, ...]``; the
        sequence starts keep ``[N, ...]``."""
        seq = batch.seq
        swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        steps = jax.tree.map(swap, batch.replace(seq=()))
        return steps.replace(seq=Sequences(seq.carry, swap(seq.first)))

    def forward(self, params: Any, mb: Any) -> tuple[Categorical | DiagGaussian, jax.Array]:
        """The sequences ``mb`` ``[B, T]`` replayed from their first carry."""
        _, pi, value = self.net.apply(params, mb.seq.carry, mb.obs, mb.seq.first)
        return pi, value


__all__ = ["Recurrent", "RecurrentState", "Sequences"]
