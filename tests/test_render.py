"""GIFs of recorded episodes (jaxlab.envs.gymnax_render): frame counts, real motion, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnax
import jax
import numpy as np
import pytest
from gymnax.environments.classic_control import cartpole, pendulum
from PIL import Image

from jaxlab.envs import CannotRender
from jaxlab.envs.gymnax_render import CAPTION_H, RENDERABLE, can_render, write_gif


def rollout(env_name: str, steps: int, seed: int = 0, action: int | None = None) -> tuple:
    """``(params, states)``: ``steps`` states of one env, stacked on a leading time axis."""
    env, params = gymnax.make(env_name)

    def step(state: Any, key: jax.Array) -> tuple[Any, Any]:
        k_act, k_step = jax.random.split(key)
        a = env.action_space(params).sample(k_act) if action is None else action
        _, nxt, *_ = env.step(k_step, state, a, params)
        return nxt, state

    @jax.jit
    def run(key: jax.Array) -> Any:
        k_reset, k_run = jax.random.split(key)
        _, state = env.reset(k_reset, params)
        return jax.lax.scan(step, state, jax.random.split(k_run, steps))[1]

    return params, jax.tree.map(np.asarray, run(jax.random.PRNGKey(seed)))


def frames(path: Path) -> list[np.ndarray]:
    """Every frame of the GIF at ``path`` as an RGB array, caption strip cut off."""
    with Image.open(path) as im:
        out = []
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.asarray(im.convert("RGB"))[:-CAPTION_H])
        return out


def state_at(states: Any, t: int) -> list[np.ndarray]:
    return [np.asarray(x[t]) for x in jax.tree.leaves(states)]


@pytest.mark.parametrize(
    ("env_name", "action"),
    [
        ("CartPole-v1", None),
        ("Pendulum-v1", None),
        ("Acrobot-v1", None),
        ("MountainCar-v0", 2),  # always push right: random pushes barely move the car
        ("MountainCarContinuous-v0", None),
        # The other MinAtar envs draw the same way; their step takes seconds to compile.
        ("Breakout-MinAtar", None),
    ],
)
def test_write_gif_draws_every_step(tmp_path: Path, env_name: str, action: int | None) -> None:
    steps = 12
    params, states = rollout(env_name, steps, action=action)
    path = tmp_path / "episode.gif"
    assert can_render(env_name)
    assert write_gif(env_name, params, states, path, fps=20) == steps
    assert path.exists()
    with Image.open(path) as im:
        assert im.n_frames == steps
        assert im.info["duration"] == 50
    got = frames(path)
    first, last = state_at(states, 0), state_at(states, steps - 1)
    assert any(not np.array_equal(a, b) for a, b in zip(first, last, strict=True))
    assert not np.array_equal(got[0], got[-1]), "different states drew identical scenes"


def test_can_render_lists_registered_envs() -> None:
    drawn = [name for name in gymnax.registered_envs if can_render(name)]
    assert drawn == list(RENDERABLE)
    assert not can_render("Catch-bsuite") and not can_render("NoSuchEnv-v0")


def test_unsupported_env_refused_and_nothing_written(tmp_path: Path) -> None:
    assert "DeepSea-bsuite" in gymnax.registered_envs
    assert not can_render("DeepSea-bsuite")
    path = tmp_path / "deep_sea.gif"
    with pytest.raises(CannotRender, match="DeepSea-bsuite") as err:
        write_gif("DeepSea-bsuite", None, {"x": np.zeros(3)}, path)
    assert "\n" not in str(err.value) and "CartPole-v1" in str(err.value)
    assert not path.exists()


def test_long_episode_subsampled_to_max_frames(tmp_path: Path) -> None:
    steps = 300  # a synthetic episode: the cart slides left to right, no env compile needed
    x = np.linspace(-2.0, 2.0, steps, dtype=np.float32)
    zeros = np.zeros(steps, np.float32)
    states = cartpole.EnvState(
        x=x, x_dot=zeros, theta=zeros, theta_dot=zeros, time=np.arange(steps)
    )
    path = tmp_path / "long.gif"
    assert write_gif("CartPole-v1", None, states, path, max_frames=7) == 7
    with Image.open(path) as im:
        assert im.n_frames == 7
    got = frames(path)
    assert all(not np.array_equal(a, b) for a, b in zip(got, got[1:], strict=False))


def test_default_params_when_none(tmp_path: Path) -> None:
    theta = np.array([0.0, 1.0, 3.0], np.float32)
    states = pendulum.EnvState(theta=theta, theta_dot=theta, last_u=theta, time=np.arange(3))
    assert write_gif("Pendulum-v1", None, states, tmp_path / "p.gif") == 3
