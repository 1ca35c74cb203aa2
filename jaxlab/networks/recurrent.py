"""The recurrent actor-critic: a torso, then a GRU or LSTM cell over time, then the heads.

Everything runs on sequences, batch-major: observations ``[B, T, D]`` and episode-start
flags ``first [B, T]`` (the observation at ``t`` begins a new episode). The cell's carry
``[B, H]`` (GRU) or ``(c, h)`` (LSTM) is set to zero where ``first`` is true, before the
step reads that observation:

    x_t = torso(o_t)
    c_t = cell(where(first_t, 0, c_{t-1}), x_t)        -> policy head, value head

Acting is the same call with ``T = 1``; the update replays a stored sequence from its
stored first carry, so both see the same hidden states (``tests/test_recurrent.py``).
The carry passed around is a tuple with one entry per core: ``(actor,)`` when the torso
is shared, ``(actor, critic)`` otherwise.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.networks.init import kernel_init, orthogonal
from jaxlab.networks.mlp import Torso, TorsoDef, dense, policy_dist
from jaxlab.rl.distributions import Categorical, DiagGaussian

CELLS = {"GRU": nn.GRUCell, "LSTM": nn.OptimizedLSTMCell}


def zero_carry(cell: str, size: int, lead: tuple[int, ...]) -> Any:
    """One core's initial carry for a batch ``lead``: ``[*lead, size]`` zeros (GRU), or
    the pair ``(c, h)`` of them (LSTM)."""
    zeros = jnp.zeros((*lead, size), jnp.float32)
    return (zeros, zeros) if cell == "LSTM" else zeros


def reset_carry(carry: Any, first: jax.Array) -> Any:
    """``carry`` with the rows where ``first`` ``[B]`` is true set to zero."""
    return jax.tree.map(lambda c: jnp.where(first[:, None], 0.0, c), carry)


class ResetStep(nn.Module):
    """One step of the cell: reset the carry at episode starts, then read ``x [B, F]``.

    The input kernels start from ``agent.net.kernel_init`` at gain 1, the recurrent ones
    orthogonal, by :func:`jaxlab.networks.init.orthogonal` (flax's default calls a batched
    LAPACK QR, which deadlocks a vmapped init on CPU; see that module)."""

    cell: str
    size: int
    kernel_init: str = "orthogonal"

    @nn.compact
    def __call__(self, carry: Any, inputs: tuple[jax.Array, jax.Array]) -> tuple[Any, jax.Array]:
        x, first = inputs
        cell = CELLS[self.cell](
            self.size,
            kernel_init=kernel_init(self.kernel_init, 1.0),
            recurrent_kernel_init=orthogonal(1.0),
        )
        return cell(reset_carry(carry, first), x)


class RecurrentCore(nn.Module):
    """``(carry, obs [B, T, D], first [B, T]) -> (carry, features [B, T, size])``."""

    torso: TorsoDef
    cell: str
    size: int

    @nn.compact
    def __call__(self, carry: Any, obs: jax.Array, first: jax.Array) -> tuple[Any, jax.Array]:
        scan = nn.scan(
            ResetStep,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        step = scan(self.cell, self.size, self.torso.kernel_init)
        return step(carry, (Torso(self.torso)(obs), first))


class RecurrentActorCritic(nn.Module):
    """``(carry, obs [B, T, D], first [B, T]) -> (carry, policy [B, T], value [B, T])``;
    see the module docstring. Heads and initialisation as in
    :class:`~jaxlab.networks.ActorCritic`."""

    action_dim: int
    discrete: bool
    torso: TorsoDef = TorsoDef()
    shared: bool = False
    cell: str = "GRU"
    size: int = 128

    def setup(self) -> None:
        self.actor_core = RecurrentCore(self.torso, self.cell, self.size)
        if not self.shared:
            self.critic_core = RecurrentCore(self.torso, self.cell, self.size)
        self.policy_head = dense(self.action_dim, 0.01, self.torso.kernel_init)
        self.value_head = dense(1, 1.0, self.torso.kernel_init)
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def initial_carry(self, batch: int) -> tuple[Any, ...]:
        """Zero carries for ``batch`` rows, one per core."""
        return tuple(zero_carry(self.cell, self.size, (batch,)) for _ in range(2 - self.shared))

    def __call__(
        self, carry: tuple[Any, ...], obs: jax.Array, first: jax.Array
    ) -> tuple[tuple[Any, ...], Categorical | DiagGaussian, jax.Array]:
        actor_carry, actor_h = self.actor_core(carry[0], obs, first)
        if self.shared:
            carry, critic_h = (actor_carry,), actor_h
        else:
            critic_carry, critic_h = self.critic_core(carry[1], obs, first)
            carry = (actor_carry, critic_carry)
        log_std = None if self.discrete else self.log_std
        pi = policy_dist(self.policy_head(actor_h), obs, self.torso.mask_dim, log_std)
        return carry, pi, self.value_head(critic_h)[..., 0]

    def value(self, carry: tuple[Any, ...], obs: jax.Array, first: jax.Array) -> jax.Array:
        """The critic only: ``V`` ``[B, T]`` (no policy head work)."""
        core = self.actor_core if self.shared else self.critic_core
        _, h = core(carry[0 if self.shared else 1], obs, first)
        return self.value_head(h)[..., 0]


__all__ = ["CELLS", "RecurrentActorCritic", "RecurrentCore", "reset_carry", "zero_carry"]
