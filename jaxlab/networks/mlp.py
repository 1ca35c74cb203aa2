"""Torsos (MLP, convolutional) and the actor-critic used by the policy-gradient family.

By default (``agent.net.kernel_init: orthogonal``) hidden layers use ``orthogonal(sqrt(2))``
(see :mod:`jaxlab.networks.init`), the policy head ``orthogonal(0.01)`` and value/Q heads
``orthogonal(1.0)``; another ``kernel_init`` applies to every layer as flax defines it
(:func:`~jaxlab.networks.init.kernel_init`). Biases start at zero.
Observations arrive flat, ``[..., obs_dim]``; a convolutional torso reshapes them to the
env's image shape ``[..., H, W, C]`` first (MinAtar: ``[10, 10, C]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.networks.init import kernel_init
from jaxlab.rl.distributions import Categorical, DiagGaussian

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}


MASKED = -1e9  # a disallowed action's logit / Q: exp() is exactly 0, no inf or nan


def mask_actions(out: jax.Array, obs: jax.Array, mask_dim: int) -> jax.Array:
    """Logits or Q values ``[..., A]`` with the actions the observation's mask forbids
    (its last ``mask_dim == A`` entries, 1 = allowed) set to :data:`MASKED`; unchanged
    when the env has no mask (``mask_dim == 0``)."""
    if not mask_dim:
        return out
    return jnp.where(obs[..., -mask_dim:] > 0.5, out, MASKED)


def allowed(out: jax.Array) -> jax.Array:
    """Which actions :func:`mask_actions` left allowed, ``[..., A]`` bool."""
    return out > MASKED / 2


def dense(features: int, gain: float, init: str = "orthogonal") -> nn.Dense:
    """A dense layer whose kernel starts from ``kernel_init(init, gain)``, bias zeros."""
    return nn.Dense(features, kernel_init=kernel_init(init, gain), bias_init=nn.initializers.zeros)


@dataclass(frozen=True)
class TorsoDef:
    """What a torso is: ``kind`` MLP or Conv, layer sizes, activation, the obs image shape,
    and the kernel initializer of its layers and of the heads built on it.

    ``conv_layers``: ``(filters, kernel, stride)`` per layer (Conv only), ``padding``
    SAME or VALID, ``conv_impl`` xla or patches (:func:`patch_conv`). ``layer_norm``: a LayerNorm after each hidden layer, before its
    activation. ``mask_dim``:
    the action-mask entries at the end of each observation (see
    :class:`~jaxlab.envs.ObservationSpec`); the torso does not read them."""

    kind: str = "MLP"
    hid_layers: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    conv_layers: tuple[tuple[int, ...], ...] = ()
    obs_shape: tuple[int, ...] = ()
    kernel_init: str = "orthogonal"
    mask_dim: int = 0
    padding: str = "SAME"
    layer_norm: bool = False
    conv_impl: str = "xla"

    @classmethod
    def from_spec(cls, net: object, obs_shape: Sequence[int], mask_dim: int = 0) -> TorsoDef:
        """From a :class:`~jaxlab.spec.schema.NetSpec` and the env's observation shape."""
        return cls(
            net.type,  # type: ignore[attr-defined]
            tuple(net.hid_layers),  # type: ignore[attr-defined]
            net.activation,  # type: ignore[attr-defined]
            tuple(tuple(c) for c in net.conv_layers),  # type: ignore[attr-defined]
            tuple(obs_shape),
            net.kernel_init,  # type: ignore[attr-defined]
            mask_dim,
            net.conv_padding,  # type: ignore[attr-defined]
            net.layer_norm,  # type: ignore[attr-defined]
            net.conv_impl,  # type: ignore[attr-defined]
        )


def pixels_to_float(x: jax.Array) -> jax.Array:
    """uint8 pixels ``[..., D]`` -> float32 in ``[0, 1]`` (``x * (1/255)``); float
    observations pass unchanged."""
    if x.dtype == jnp.uint8:
        return x.astype(jnp.float32) * jnp.float32(1 / 255)
    return x


def patch_conv(
    lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int], padding: Any,
    lhs_dilation: Any = None, rhs_dilation: Any = None, dimension_numbers: Any = None,
    feature_group_count: int = 1, precision: Any = None,
) -> jax.Array:  # fmt: skip
    """``lax.conv_general_dilated`` of NHWC images ``lhs [B, H, W, C]`` and an HWIO kernel
    ``rhs [kh, kw, C, F]`` as one matmul (im2col): the ``[B, H', W', C*kh*kw]`` patches
    (features ordered ``(C, kh, kw)``) times the kernel as a ``[C*kh*kw, F]`` matrix.
    Flax's ``nn.Conv`` calls it with its own arguments (undilated, one feature group)."""
    assert feature_group_count == 1, feature_group_count
    kh, kw, c, f = rhs.shape
    patches = jax.lax.conv_general_dilated_patches(
        lhs, (kh, kw), window_strides, padding, lhs_dilation, rhs_dilation,
        dimension_numbers=("NHWC", "OIHW", "NHWC"), precision=precision,
    )  # fmt: skip
    return patches @ rhs.transpose(2, 0, 1, 3).reshape(c * kh * kw, f)


CONV_IMPLS = {"xla": jax.lax.conv_general_dilated, "patches": patch_conv}


class MLP(nn.Module):
    """Torso: ``x [..., D] -> [..., hid_layers[-1]]`` (identity when ``hid_layers`` is empty)."""

    hid_layers: Sequence[int]
    activation: str = "tanh"
    kernel_init: str = "orthogonal"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hid_layers:
            x = dense(width, math.sqrt(2), self.kernel_init)(x)
            x = act(nn.LayerNorm()(x) if self.layer_norm else x)
        return x


class Torso(nn.Module):
    """``obs [..., obs_dim] -> features [..., F]``: convolutions (Conv) then the MLP."""

    defn: TorsoDef

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        d = self.defn
        x = pixels_to_float(x)
        if d.mask_dim:
            x = x[..., : -d.mask_dim]
        if d.kind == "Conv":
            lead = x.shape[:-1]
            x = x.reshape((-1,) + d.obs_shape)
            if x.ndim == 3:  # [B, H, W] -> one channel
                x = x[..., None]
            act = ACTIVATIONS[d.activation]
            for filters, kernel, stride in d.conv_layers:
                x = nn.Conv(
                    filters, (kernel, kernel), (stride, stride), padding=d.padding,
                    kernel_init=kernel_init(d.kernel_init, math.sqrt(2)),
                    bias_init=nn.initializers.zeros,
                    conv_general_dilated=CONV_IMPLS[d.conv_impl],
                )(x)  # fmt: skip
                x = act(nn.LayerNorm()(x) if d.layer_norm else x)
            x = x.reshape(lead + (-1,))
        return MLP(d.hid_layers, d.activation, d.kernel_init, d.layer_norm)(x)


def policy_dist(
    out: jax.Array, obs: jax.Array, mask_dim: int, log_std: jax.Array | None
) -> Categorical | DiagGaussian:
    """The policy head's output ``[..., A]`` as a distribution: a Categorical over the
    actions ``obs``'s mask allows (``log_std`` None), else a DiagGaussian with the
    state-independent ``log_std`` ``[A]``."""
    if log_std is None:
        return Categorical(mask_actions(out, obs, mask_dim))
    return DiagGaussian(out, jnp.broadcast_to(log_std, out.shape))


class ActorCritic(nn.Module):
    """``obs [..., D] -> (distribution over actions, value [...])``; ``value`` alone too.

    With ``shared=True`` one torso feeds both heads; otherwise actor and critic have
    separate torsos of the same shape. For continuous actions the policy outputs a mean
    and a state-independent ``log_std``.
    """

    action_dim: int
    discrete: bool
    torso: TorsoDef = TorsoDef()
    shared: bool = False

    def setup(self) -> None:
        self.actor_torso = Torso(self.torso)
        if not self.shared:
            self.critic_torso = Torso(self.torso)
        self.policy_head = dense(self.action_dim, 0.01, self.torso.kernel_init)
        self.value_head = dense(1, 1.0, self.torso.kernel_init)
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def _dist(self, out: jax.Array, obs: jax.Array) -> Categorical | DiagGaussian:
        log_std = None if self.discrete else self.log_std
        return policy_dist(out, obs, self.torso.mask_dim, log_std)

    def __call__(self, obs: jax.Array) -> tuple[Categorical | DiagGaussian, jax.Array]:
        actor_h = self.actor_torso(obs)
        critic_h = actor_h if self.shared else self.critic_torso(obs)
        return self._dist(self.policy_head(actor_h), obs), self.value_head(critic_h)[..., 0]

    def policy(self, obs: jax.Array) -> Categorical | DiagGaussian:
        """The actor only (no critic work): ``obs [..., D] ->`` action distribution."""
        return self._dist(self.policy_head(self.actor_torso(obs)), obs)

    def value(self, obs: jax.Array) -> jax.Array:
        """The critic only (no policy head work): ``obs [..., D] -> [...]``."""
        torso = self.actor_torso if self.shared else self.critic_torso
        return self.value_head(torso(obs))[..., 0]
