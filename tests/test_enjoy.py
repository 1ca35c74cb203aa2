"""``enjoy``: play a trained agent from a run, read-only, with an optional GIF."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from jaxlab.cli import main
from jaxlab.runtime.run import train
from jaxlab.spec import spec_from_dict
from tests.probes import register_probes


def snapshot(run):
    return {
        p.relative_to(run): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in run.rglob("*")
        if p.is_file() and "enjoy" not in p.relative_to(run).parts
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tests.conftest import TINY

    spec = spec_from_dict(TINY, ["meta.eval_frequency=128", "meta.checkpoint_frequency=64"])
    return train(spec, root=tmp_path_factory.mktemp("enjoy"), progress=False).run_dir


def only_record(run):
    (out,) = list((run / "enjoy").iterdir())
    return json.loads((out / "enjoy.json").read_text())


def test_enjoy_plays_the_best_checkpoint_and_never_touches_the_run(run_dir, capsys, tmp_path):
    before = snapshot(run_dir)
    assert main(["enjoy", str(run_dir), "--episodes", "4", "--session", "1"]) == 0
    out = capsys.readouterr().out
    assert "session 1" in out and "(best checkpoint)" in out and "over 4 episodes" in out
    assert snapshot(run_dir) == before  # nothing but enjoy/<timestamp>/ was written
    rec = only_record(run_dir)
    best = json.loads((run_dir / "trial_summary.json").read_text())["best_eval_frame"]
    assert rec["frame"] == best and rec["session"] == 1 and len(rec["returns"]) == 4
    assert rec["return_min"] <= rec["return_mean"] <= rec["return_max"]
    assert rec["lengths"] == [int(r) for r in rec["returns"]]  # CartPole: +1 per step
    assert f"return {rec['return_mean']:.2f}" in out


@pytest.mark.parametrize(("which", "frame"), [("latest", 320), ("192", 192)])
def test_enjoy_picks_latest_or_a_frame(run_dir, capsys, which, frame):
    assert main(["enjoy", str(run_dir), "--episodes", "2", "--checkpoint", which]) == 0
    assert f"at frame {frame}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint", "999"], "no checkpoint at frame 999 (kept: 192, 256, 320)"),
        (["--checkpoint", "newest"], "--checkpoint must be best, latest or a frame number"),
        (["--session", "2"], "--session must be in 0..1, got 2"),
        (["--episodes", "0"], "--episodes must lie in [1, 65,536], got 0"),
        (["--episodes", "1000000000"], "--episodes must lie in [1, 65,536]"),
        (["--seed", str(10**30)], "--seed must lie in [0, 4294967295]"),
        (["--seed", "-1"], "--seed must lie in [0, 4294967295], got -1"),
    ],
)
def test_enjoy_bad_arguments_fail_in_one_line(run_dir, capsys, args, message):
    assert main(["enjoy", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_enjoy_renders_a_gif_of_the_first_episode(run_dir, capsys):
    assert main(["enjoy", str(run_dir), "--episodes", "2", "--render", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    record = max((run_dir / "enjoy").iterdir())
    rec = json.loads((record / "enjoy.json").read_text())
    assert rec["gif"] and f"GIF of episode 0 written to {rec['gif']}" in out
    with Image.open(rec["gif"]) as gif:
        assert gif.n_frames == rec["lengths"][0]


def test_enjoy_says_plainly_when_an_env_cannot_be_drawn(tmp_path, capsys):
    register_probes()
    raw = {
        "name": "probe",
        "agent": {"algorithm": {"name": "PPO", "time_horizon": 4, "minibatch_count": 1}},
        "env": {"name": "ConstantReward-probe", "num_envs": 2, "max_frame": 16},
        "meta": {"max_session": 1, "log_frequency": 8, "eval_frequency": 8},
    }
    run = train(spec_from_dict(raw), root=tmp_path, progress=False).run_dir
    assert main(["enjoy", str(run), "--episodes", "1", "--render"]) == 0
    out = capsys.readouterr().out
    assert "no GIF: " in out and "cannot draw 'ConstantReward-probe'" in out
    assert only_record(run)["gif"] is None


def test_best_holds_the_policy_state_and_plays_as_the_full_checkpoint_of_its_frame(tmp_path):
    """``best`` holds parameters and normalisers only; enjoy plays it exactly as the full
    checkpoint of the same frame, and still reads a ``best`` holding the full state (as
    runs wrote before)."""
    import shutil

    import jax

    from jaxlab.api import enjoy
    from jaxlab.lab.trial import Trial
    from jaxlab.runtime.checkpoint import Checkpointer
    from tests.conftest import TINY

    sets = ["meta.eval_frequency=64", "meta.checkpoint_frequency=64", "meta.checkpoint_keep=9"]
    spec = spec_from_dict(TINY, sets)
    run = train(spec, root=tmp_path, progress=False, report=False).run_dir
    (step,) = [p for p in (run / "best").iterdir() if p.name.isdigit()]
    meta = json.loads((step / "meta" / "metadata").read_text())
    assert meta["contents"] == "policy"
    frame = int(step.name)
    played = {which: enjoy(run, checkpoint=which, episodes=3) for which in ("best", str(frame))}
    assert played["best"]["frame"] == played[str(frame)]["frame"] == frame
    assert played["best"]["returns"] == played[str(frame)]["returns"]

    full, _ = Checkpointer(run / "checkpoints", keep=9).restore(Trial(spec).abstract_state(), frame)
    shutil.rmtree(run / "best")
    legacy = Checkpointer(run / "best", keep=1)
    legacy.save(frame, jax.device_get(full), {k: v for k, v in meta.items() if k != "contents"})
    legacy.close()
    assert enjoy(run, checkpoint="best", episodes=3)["returns"] == played["best"]["returns"]
