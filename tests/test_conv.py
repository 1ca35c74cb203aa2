"""``agent.net.conv_impl``: the im2col convolution (:func:`jaxlab.networks.mlp.patch_conv`)
computes XLA's convolution (same function, its own rounding) for the paddings and strides
the specs use, with the same parameters, and is chosen from the spec."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.config.parse import SpecError, build
from jaxlab.networks import Torso, TorsoDef
from jaxlab.networks.mlp import patch_conv
from jaxlab.spec.schema import NetSpec

DIMS = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize(
    ("image", "kernel", "stride", "padding"),
    [
        ((10, 10, 4), 3, 1, "SAME"),  # MinAtar
        ((10, 10, 4), 3, 2, "SAME"),
        ((84, 84, 4), 8, 4, "VALID"),  # the Nature CNN's first layer
        ((9, 7, 3), 4, 2, "VALID"),  # odd sizes, a non-square image
        ((9, 7, 3), 2, 3, "SAME"),
    ],
)
def test_patch_conv_is_xla_s_convolution(image, kernel, stride, padding):
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(k1, (3, *image))
    w = jax.random.normal(k2, (kernel, kernel, image[-1], 5))
    want = jax.lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=DIMS)
    got = patch_conv(x, w, (stride, stride), padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # and its gradients, with respect to the image and the kernel
    loss = {
        "xla": lambda x, w: jnp.sum(
            jax.lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=DIMS)
            ** 2
        ),
        "patches": lambda x, w: jnp.sum(patch_conv(x, w, (stride, stride), padding) ** 2),
    }
    grads = {k: jax.grad(f, argnums=(0, 1))(x, w) for k, f in loss.items()}
    for g_xla, g_patches in zip(grads["xla"], grads["patches"], strict=True):
        np.testing.assert_allclose(g_patches, g_xla, rtol=1e-4, atol=1e-2)


def test_the_torso_has_the_same_parameters_and_function_either_way():
    obs = jax.random.uniform(jax.random.PRNGKey(1), (2, 10 * 10 * 4))
    torsos = {
        impl: Torso(
            TorsoDef("Conv", (32,), "relu", ((16, 3, 1), (8, 3, 2)), (10, 10, 4), conv_impl=impl)
        )
        for impl in ("xla", "patches")
    }
    params = {k: t.init(jax.random.PRNGKey(0), obs) for k, t in torsos.items()}
    same = jax.tree.map(np.array_equal, params["xla"], params["patches"])
    assert all(jax.tree.leaves(same)), "init draws the same parameters"
    np.testing.assert_allclose(
        torsos["patches"].apply(params["xla"], obs),
        torsos["xla"].apply(params["xla"], obs),
        rtol=1e-5,
        atol=1e-5,
    )


def test_the_torso_scales_uint8_pixels_to_the_unit_interval():
    """Bytes in, the same features as the float pixels ``x / 255`` (bit for bit)."""
    pixels = jax.random.randint(jax.random.PRNGKey(2), (2, 10 * 10 * 4), 0, 256).astype(jnp.uint8)
    torso = Torso(TorsoDef("Conv", (32,), "relu", ((16, 3, 1),), (10, 10, 4)))
    params = torso.init(jax.random.PRNGKey(0), pixels.astype(jnp.float32))
    scaled = pixels.astype(jnp.float32) * jnp.float32(1 / 255)
    np.testing.assert_array_equal(torso.apply(params, pixels), torso.apply(params, scaled))


def test_conv_impl_is_checked_against_its_names():
    with pytest.raises(SpecError, match="conv_impl"):
        build(NetSpec, {"conv_impl": "cudnn"}, "agent.net")
    assert build(NetSpec, {"conv_impl": "patches"}).conv_impl == "patches"
    assert NetSpec().conv_impl == "xla"
