"""``enjoy``: load a trained agent from a run and watch it play, without touching the run.

Restores one checkpoint of ``data/<run>/`` read-only (``best`` by default, ``latest``, or
a frame number), takes one session's slice of the Trial state, and plays
``--episodes`` episodes with the deterministic (greedy/mean) policy in fresh envs, in one
compiled scan (:func:`jaxlab.lab.evaluate.make_episodes`). Results, and a GIF of the first
episode with ``--render``, go to ``data/<run>/enjoy/<timestamp>/`` and nowhere else.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxlab.envs import CannotRender, Env, make_env
from jaxlab.lab.evaluate import POLICY_CONTENTS, make_episodes, policy_state
from jaxlab.lab.trial import Trial
from jaxlab.logging.console import warn
from jaxlab.runtime.checkpoint import Checkpointer, CheckpointError
from jaxlab.runtime.resume import is_run_dir, session_keys
from jaxlab.spec import load_spec

MAX_EPISODES = 65_536


def _select(run_dir: Path, which: str) -> tuple[Checkpointer, int | None]:
    """The read-only checkpointer and the frame (None = newest good) for ``--checkpoint``."""
    if which == "best":
        if not (run_dir / "best").is_dir():
            raise CheckpointError(
                f"{run_dir} has no best checkpoint (evaluation was off: meta.eval_frequency "
                "= 0); use --checkpoint latest"
            )
        return Checkpointer(run_dir / "best", read_only=True), None
    ckpt = Checkpointer(run_dir / "checkpoints", read_only=True)
    if which == "latest":
        return ckpt, None
    if not which.isdigit():
        ckpt.close()
        raise CheckpointError(f"--checkpoint must be best, latest or a frame number, got {which!r}")
    if int(which) not in ckpt.steps():
        steps = ", ".join(map(str, ckpt.steps())) or "none"
        ckpt.close()
        raise CheckpointError(f"{run_dir} has no checkpoint at frame {which} (kept: {steps})")
    return ckpt, int(which)


def enjoy(
    run_dir: str | Path,
    *,
    session: int = 0,
    episodes: int = 10,
    checkpoint: str = "best",
    render: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Play ``episodes`` greedy episodes of ``session`` from a checkpoint of ``run_dir``.

    Returns the result record (also saved as ``enjoy/<timestamp>/enjoy.json``).
    """
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise CheckpointError(f"{run_dir} is not a jaxlab run directory (no spec.yaml/checkpoints)")
    if not 1 <= episodes <= MAX_EPISODES:  # all episodes run at once, one env each
        raise ValueError(f"--episodes must lie in [1, {MAX_EPISODES:,}], got {episodes}")
    if not 0 <= seed <= 2**32 - 1:  # jax keeps a seed's low 32 bits: larger ones would alias
        raise ValueError(f"--seed must lie in [0, 4294967295], got {seed}")
    spec = load_spec(run_dir / "spec.yaml")
    prov = json.loads((run_dir / "provenance.json").read_text())
    trial = Trial(spec, session_keys(prov, spec.meta.max_session))
    if not 0 <= session < trial.num_sessions:
        raise ValueError(f"--session must be in 0..{trial.num_sessions - 1}, got {session}")
    state, meta = _restore(run_dir, trial, checkpoint)
    one = jax.tree.map(lambda x: x[session], state)
    env = make_env(spec.env, episodes, evaluation=True)
    run = jax.jit(make_episodes(trial.agent, env, record=render))
    result = jax.device_get(run(one, jax.random.PRNGKey(seed)))
    returns = np.asarray(result.returns, float)
    out_dir = run_dir / "enjoy" / datetime.now().strftime("%Y_%m_%d_%H%M%S_%f")
    out_dir.mkdir(parents=True)
    record: dict[str, Any] = {
        "run": str(run_dir),
        "checkpoint": checkpoint,
        "frame": int(meta["frame"]),
        "session": session,
        "episodes": episodes,
        "seed": seed,
        "returns": returns.tolist(),
        "lengths": np.asarray(result.lengths).tolist(),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "gif": None,
        "render_note": None,
    }
    if render:
        gif = out_dir / f"{spec.name}_session{session}_episode0.gif"
        _render(env, result, gif, record)
    (out_dir / "enjoy.json").write_text(json.dumps(record, indent=2))
    record["out_dir"] = str(out_dir)
    return record


def _restore(run_dir: Path, trial: Trial, checkpoint: str) -> tuple[Any, dict[str, Any]]:
    """The Trial state and meta of ``--checkpoint`` (read only): the full state, or its
    :class:`~jaxlab.lab.evaluate.PolicyState` where the checkpoint holds only that
    (``best``; a ``best`` written before it did holds the full state)."""
    ckpt, frame = _select(run_dir, checkpoint)
    try:
        template = trial.abstract_state()
        if checkpoint == "best" and _holds_policy(ckpt):
            template = policy_state(template)
        if frame is None:
            return ckpt.restore_latest(template, warn=warn)
        return ckpt.restore(template, frame)
    finally:
        ckpt.close()


def _holds_policy(ckpt: Checkpointer) -> bool:
    """Whether the newest step of ``ckpt`` holds a policy state (an unreadable one: no,
    and restoring it reports why)."""
    steps = ckpt.steps()
    try:
        return bool(steps) and ckpt.read_meta(steps[-1]).get("contents") == POLICY_CONTENTS
    except Exception:  # noqa: BLE001 - any storage error: the restore reports it
        return False


def _render(env: Env, result: Any, gif: Path, record: dict[str, Any]) -> None:
    """Write the first episode of ``result`` as ``gif`` and note it (or why not) in
    ``record``: from its recorded env states, or its observations where the env draws
    those (``draws_observations``: EnvPool's Atari frames, its states being in C++)."""
    steps = int(result.lengths[0])
    states, observations = (
        jax.tree.map(lambda x: np.asarray(x[:steps]), t) for t in result.trace[:2]
    )
    try:
        env.write_gif(observations if getattr(env, "draws_observations", False) else states, gif)
        record["gif"] = str(gif)
    except CannotRender as err:
        record["render_note"] = str(err)


def format_enjoy(record: dict[str, Any]) -> str:
    lines = [
        f"enjoy {record['run']} session {record['session']} at frame {record['frame']:,} "
        f"({record['checkpoint']} checkpoint): return {record['return_mean']:.2f} ± "
        f"{record['return_std']:.2f} (min {record['return_min']:.2f}, max "
        f"{record['return_max']:.2f}) over {record['episodes']} episodes"
    ]
    if record["gif"]:
        lines.append(f"GIF of episode 0 written to {record['gif']}")
    if record["render_note"]:
        lines.append(f"no GIF: {record['render_note']}")
    lines.append(f"results saved to {record['out_dir']}")
    return "\n".join(lines)
