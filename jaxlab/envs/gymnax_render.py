"""Animated GIFs of recorded gymnax episodes, drawn directly with Pillow.

``write_gif(env_name, env_params, states, path)`` takes ONE env's state pytree whose leaves
carry a leading time axis ``[T, ...]`` (host arrays, already cut to the episode) and writes
one frame per step (evenly subsampled to ``max_frames``). Classic-control envs are drawn as
simple shapes from their state fields; MinAtar envs from their ``get_obs`` grid, one fixed
colour per channel (the highest active channel wins, as in MinAtar's own display). Every
frame carries a caption strip ``frame t/T`` below the scene, ``CAPTION_H`` pixels high.
gymnax's own visualiser needs gymnasium + pygame, which jaxlab does not install.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnax
import jax
import numpy as np
from PIL import Image, ImageDraw

from jaxlab.envs.protocol import CannotRender

W, H = 400, 300  # classic-control scene size in pixels
CELL = 20  # pixels per MinAtar grid cell
CAPTION_H = 16  # caption strip below every scene
# Frames are drawn in palette ("P") mode with this one fixed palette, so Pillow need not
# quantize each frame when writing the GIF (that took ~12 ms a frame). name -> (index, RGB).
_NAMED = ("bg", "ink", "caption", "pole", "axle", "red", "cyan", "yellow", "blue")
_NAMED_RGB = [
    (255, 255, 255),
    (40, 40, 40),
    (235, 235, 235),
    (202, 152, 101),
    (129, 132, 203),
    (204, 77, 77),
    (0, 204, 204),
    (204, 204, 0),
    (0, 0, 200),
]
C = {name: i for i, name in enumerate(_NAMED)}
# One colour per MinAtar channel (Seaquest has the most, 10); cycled if an env has more.
MINATAR_RGB = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 200, 0),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 220, 220),
    (240, 50, 230),
    (128, 128, 0),
    (0, 0, 128),
]
_PALETTE = [v for rgb in _NAMED_RGB + MINATAR_RGB for v in rgb]

Point = tuple[float, float]


def _cartpole(d: ImageDraw.ImageDraw, p: Any, x: float, theta: float) -> None:
    scale = W / (2 * float(p.x_threshold))
    track_y, cart_w, cart_h = 200, 50, 30
    cx = W / 2 + x * scale
    d.line([(0, track_y), (W, track_y)], fill=C["ink"], width=1)
    d.rectangle(
        [cx - cart_w / 2, track_y - cart_h / 2, cx + cart_w / 2, track_y + cart_h / 2],
        fill=C["ink"],
    )
    pole = 2 * float(p.length) * scale
    tip = (cx + pole * math.sin(theta), track_y - pole * math.cos(theta))
    d.line([(cx, track_y), tip], fill=C["pole"], width=10)
    d.ellipse([cx - 5, track_y - 5, cx + 5, track_y + 5], fill=C["axle"])


def _pendulum(d: ImageDraw.ImageDraw, p: Any, theta: float) -> None:
    cx, cy, rod = W / 2, H / 2, 0.4 * H
    tip = (cx - rod * math.sin(theta), cy - rod * math.cos(theta))  # theta = 0 is upright
    d.line([(cx, cy), tip], fill=C["red"], width=14)
    d.ellipse([tip[0] - 7, tip[1] - 7, tip[0] + 7, tip[1] + 7], fill=C["red"])
    d.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=C["ink"])


def _acrobot(d: ImageDraw.ImageDraw, p: Any, a1: float, a2: float) -> None:
    l1, l2 = float(p.link_length_1), float(p.link_length_2)
    scale = min(W, H) / (2 * (l1 + l2 + 0.2))

    def px(x: float, y: float) -> Point:
        return (W / 2 + x * scale, H / 2 - y * scale)

    p1 = (l1 * math.sin(a1), -l1 * math.cos(a1))
    p2 = (p1[0] + l2 * math.sin(a1 + a2), p1[1] - l2 * math.cos(a1 + a2))
    d.line([px(-2.2, 1.0), px(2.2, 1.0)], fill=C["ink"], width=1)  # the height to swing above
    pts = [px(0.0, 0.0), px(*p1), px(*p2)]
    d.line(pts, fill=C["cyan"], width=10, joint="curve")
    for x, y in pts[:2]:
        d.ellipse([x - 6, y - 6, x + 6, y + 6], fill=C["yellow"])


def _mountain_car(d: ImageDraw.ImageDraw, p: Any, position: float) -> None:
    lo, hi = float(p.min_position), float(p.max_position)
    scale = W / (hi - lo)

    def px(x: float) -> Point:
        return ((x - lo) * scale, H - 20 - (math.sin(3 * x) * 0.45 + 0.55) * scale)

    d.line([px(x) for x in np.linspace(lo, hi, 100)], fill=C["ink"], width=2)
    fx, fy = px(float(p.goal_position))
    d.line([(fx, fy), (fx, fy - 40)], fill=C["ink"], width=2)
    d.polygon([(fx, fy - 40), (fx + 22, fy - 34), (fx, fy - 28)], fill=C["yellow"])
    cx, cy = px(position)
    d.ellipse([cx - 10, cy - 20, cx + 10, cy], fill=C["blue"])


# env name -> (state fields passed to the drawer, in order, drawer)
_CLASSIC: dict[str, tuple[tuple[str, ...], Callable[..., None]]] = {
    "CartPole-v1": (("x", "theta"), _cartpole),
    "Pendulum-v1": (("theta",), _pendulum),
    "Acrobot-v1": (("joint_angle1", "joint_angle2"), _acrobot),
    "MountainCar-v0": (("position",), _mountain_car),
    "MountainCarContinuous-v0": (("position",), _mountain_car),
}
_MINATAR = (
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
)
RENDERABLE: tuple[str, ...] = (*_CLASSIC, *_MINATAR)


def can_render(env_name: str) -> bool:
    """Whether :func:`write_gif` can draw ``env_name``."""
    return env_name in RENDERABLE


def _canvas(width: int, height: int, colour: str) -> Image.Image:
    img = Image.new("P", (width, height), C[colour])
    img.putpalette(_PALETTE)
    return img


def _draw(img: Image.Image) -> ImageDraw.ImageDraw:
    d = ImageDraw.Draw(img)
    d.fontmode = "1"  # no anti-aliasing: blending palette indices would give random colours
    return d


def _classic_scenes(env_name: str, params: Any, states: Any, idx: np.ndarray) -> list[Image.Image]:
    fields, draw = _CLASSIC[env_name]
    cols = [np.asarray(getattr(states, f), dtype=float).reshape(-1)[idx] for f in fields]
    scenes = []
    for values in zip(*cols, strict=True):
        img = _canvas(W, H, "bg")
        draw(_draw(img), params, *(float(v) for v in values))
        scenes.append(img)
    return scenes


def _minatar_scenes(env: Any, params: Any, states: Any, idx: np.ndarray) -> list[Image.Image]:
    picked = jax.tree.map(lambda x: np.asarray(x)[idx], states)
    obs = np.asarray(jax.jit(jax.vmap(env.get_obs, in_axes=(0, None)))(picked, params)) > 0
    n_ch = obs.shape[-1]
    # Palette index per channel; the highest active channel wins, an empty cell is "bg".
    lut = np.array([C["bg"], *(len(_NAMED) + k % len(MINATAR_RGB) for k in range(n_ch))])
    top = (obs * np.arange(1, n_ch + 1)).max(axis=-1)  # [N, h, w]; 0 = empty cell
    cells = lut[top].astype(np.uint8).repeat(CELL, axis=1).repeat(CELL, axis=2)
    scenes = []
    for grid in cells:
        img = Image.fromarray(grid)  # mode "L"; putpalette makes it "P"
        img.putpalette(_PALETTE)
        scenes.append(img)
    return scenes


def _caption(scene: Image.Image, text: str) -> Image.Image:
    frame = _canvas(scene.width, scene.height + CAPTION_H, "caption")
    frame.paste(scene, (0, 0))
    _draw(frame).text((4, scene.height + 2), text, fill=C["ink"])
    return frame


def write_gif(
    env_name: str,
    env_params: Any,
    states: Any,
    path: str | Path,
    fps: int = 30,
    max_frames: int = 1000,
) -> int:
    """Write an animated GIF of one recorded episode; return the number of frames written.

    ``states``: a gymnax env-state pytree for ONE env whose leaves have a leading time axis
    ``[T, ...]``, already cut to the episode's steps. ``env_params``: the env's gymnax
    params (``None``: gymnax's defaults). If ``T > max_frames``, ``max_frames`` evenly
    spaced steps (first and last included) are drawn. Raises :class:`CannotRender`, before
    writing anything, for an env it cannot draw.
    """
    if not can_render(env_name):
        raise CannotRender(
            f"jaxlab cannot draw {env_name!r} (it draws {', '.join(RENDERABLE)}); no GIF written"
        )
    if fps < 1 or max_frames < 1:
        raise ValueError(f"fps and max_frames must be >= 1, got fps={fps}, max_frames={max_frames}")
    leaves = jax.tree.leaves(states)
    lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if len(lengths) != 1 or None in lengths or 0 in lengths:
        raise ValueError(f"states must share one non-empty leading time axis, got {lengths}")
    (steps,) = lengths
    if steps <= max_frames:
        idx = np.arange(steps)
    else:
        idx = np.linspace(0, steps - 1, max_frames).round().astype(int)
    env, default_params = gymnax.make(env_name)
    params = default_params if env_params is None else env_params
    if env_name in _CLASSIC:
        scenes = _classic_scenes(env_name, params, states, idx)
    else:
        scenes = _minatar_scenes(env, params, states, idx)
    # The caption also keeps every frame distinct: Pillow merges identical consecutive frames.
    frames = [_caption(s, f"frame {t + 1}/{steps}") for s, t in zip(scenes, idx, strict=True)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=max(1, 1000 // fps), loop=0
    )
    return len(frames)
