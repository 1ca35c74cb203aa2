"""Trustworthy runs: kill -9 / SIGINT and resume, corrupt checkpoints, misfit specs, reruns.

The crash tests run ``python -m jaxlab`` in a subprocess (sharing this session's
compilation cache), stop it mid-run and resume; the resumed run must end bit-identical
to an uninterrupted one: final Trial state and every metric column except wall-clock.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from jaxlab.cli import main
from jaxlab.lab.trial import Trial
from jaxlab.logging.table import read_curves, read_rows, truncate_table
from jaxlab.runtime.checkpoint import Checkpointer
from jaxlab.runtime.run import train
from jaxlab.runtime.signals import StopRequest
from jaxlab.spec import load_spec, spec_from_dict
from tests.conftest import REPO

TIMING = {"wall_time", "fps"}


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def rows(run: Path, k: int) -> list[dict]:
    return read_rows(run)[k]


def untimed(table: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in table]


def final_state(run: Path):
    spec = load_spec(run / "spec.yaml")
    state, meta = Checkpointer(run / "checkpoints", read_only=True).restore(
        Trial(spec).abstract_state()
    )
    return jax.device_get(state), meta


def the_run(data: Path) -> Path:
    runs = [p for p in data.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def long_tiny(tiny_raw: dict, path: Path) -> Path:
    """A tiny spec with many chunks (~seconds of training) so a signal lands mid-run."""
    raw = tiny_raw
    raw["env"]["max_frame"] = 32 * 1500
    raw["meta"].update(
        log_frequency=32 * 25, checkpoint_frequency=32 * 100, eval_frequency=32 * 300
    )
    raw["meta"]["checkpoint_keep"] = 2
    path.write_text(yaml.safe_dump(raw))
    return path


def start(spec: Path, data: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    cmd = [sys.executable, "-m", "jaxlab", "train", str(spec), "--data", str(data)]
    return subprocess.Popen(
        [*cmd, "--no-progress", "--no-report"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_checkpoint(proc: subprocess.Popen, data: Path, timeout: float = 240) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        # a finished step only: "<frame>.orbax-checkpoint-tmp" is a save still in flight
        ckpts = [p for p in data.glob("*/checkpoints/*") if p.name.isdigit()]
        if ckpts:
            return ckpts[0].parent.parent
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


def assert_same_run(resumed: Path, reference: Path, sessions: int) -> None:
    a, meta_a = final_state(resumed)
    b, meta_b = final_state(reference)
    assert meta_a["frame"] == meta_b["frame"]
    assert leaves_equal(a, b), "final Trial states differ"
    best = [
        sorted(p.name for p in (r / "best").iterdir() if p.name.isdigit())
        for r in (resumed, reference)
    ]
    assert best[0] == best[1] and len(best[0]) == 1  # the same best checkpoint, re-made
    for k in range(sessions):
        ra, rb = rows(resumed, k), rows(reference, k)
        assert [r["frame"] for r in ra] == [r["frame"] for r in rb]  # none missing/duplicated
        assert untimed(ra) == untimed(rb)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical_to_an_uninterrupted_run(tiny_raw, tmp_path):
    spec_path = long_tiny(tiny_raw, tmp_path / "long.yaml")
    proc = start(spec_path, tmp_path / "killed")
    run = wait_for_checkpoint(proc, tmp_path / "killed")
    time.sleep(0.3)  # let it get past the checkpoint, so the CSV holds rows to roll back
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    logged = int(rows(run, 0)[-1]["frame"])  # usually past the checkpoint: rolled back below
    assert not (run / "trial_summary.json").exists(), "the run finished before the kill"
    # a kill mid-save leaves an orbax "<frame>.orbax-checkpoint-tmp" dir: not a checkpoint
    killed_at = max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert killed_at <= logged < load_spec(spec_path).derived.total_frames
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 0  # resume
    reference = train(
        load_spec(spec_path), root=tmp_path / "ref", progress=False, report=False
    ).run_dir
    assert_same_run(run, reference, 2)
    prov = json.loads((run / "provenance.json").read_text())
    assert [r["frame"] for r in prov["resumes"]] == [killed_at]


@pytest.mark.slow
def test_sigint_checkpoints_exits_cleanly_and_resumes(tiny_raw, tmp_path, capsys):
    spec_path = long_tiny(tiny_raw, tmp_path / "long.yaml")
    proc = start(spec_path, tmp_path / "data")
    run = wait_for_checkpoint(proc, tmp_path / "data")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err.decode()
    err = err.decode()
    assert "SIGINT received" in err and f"python -m jaxlab train {run}/" in err
    summary = json.loads((run / "trial_summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stop_signal"] == "SIGINT"
    stopped = summary["frames_per_session"]
    assert max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == stopped
    assert int(rows(run, 0)[-1]["frame"]) == stopped  # the CSV ends at the checkpoint
    assert main([f"train@{run}", "--no-progress", "--no-report"]) == 0  # the SLM-Lab style spelling
    summary = json.loads((run / "trial_summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["init_s"] == 0.0  # restored, not initialised
    assert summary["frames_per_session"] == load_spec(spec_path).derived.total_frames
    frames = [int(r["frame"]) for r in rows(run, 1)]
    assert frames == sorted(set(frames)) and len(frames) == load_spec(spec_path).derived.num_chunks


def tiny_run(tiny_raw: dict, root: Path, *overrides: str):
    spec = spec_from_dict(
        tiny_raw, ["meta.checkpoint_frequency=64", "meta.checkpoint_keep=5", *overrides]
    )
    return train(spec, root=root, progress=False, report=False)


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of a finished run to damage; the original stays the reference."""
    shutil.copytree(run, dest)
    return dest


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tiny_raw, tmp_path, capsys):
    ref = tiny_run(tiny_raw, tmp_path / "ref")
    run = copy_run(ref.run_dir, tmp_path / "run")
    files = [p for p in (run / "checkpoints" / "320" / "state").rglob("*") if p.is_file()]
    victim = max(files, key=lambda p: p.stat().st_size)
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size // 2)
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "checkpoint at frame 320 is unreadable" in err and "falling back to frame 256" in err
    assert [p.name.split("_")[0] for p in (run / "checkpoints_corrupt").iterdir()] == ["320"]
    assert_same_run(run, ref.run_dir, 2)


def corrupt_arrays(step: Path) -> None:
    """Cut every data file of a checkpoint step's array store in half (its JSON stays
    valid). One file alone is not enough: which arrays a file holds varies by step."""
    chunks = [p for p in (step / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert chunks
    for victim in chunks:
        with open(victim, "r+b") as f:
            f.truncate(victim.stat().st_size // 2)


def test_every_checkpoint_corrupt_is_one_warning_each_and_the_results_are_kept(
    tiny_raw, tmp_path, capsys
):
    """Orbax's failed reads leave dozens of 'Event loop is closed' tracebacks behind;
    the user sees one line per checkpoint and the error. The finished run's summary
    no longer says it can be resumed."""
    run = tiny_run(tiny_raw, tmp_path).run_dir
    steps = sorted((run / "checkpoints").glob("[0-9]*"), key=lambda p: int(p.name))
    for step in steps:
        corrupt_arrays(step)
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Event loop" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == len(steps) + 1, err
    assert all("is unreadable" in line for line in lines[:-1])
    assert "no readable checkpoint" in lines[-1] and "results are kept" in lines[-1]
    summary = json.loads((run / "trial_summary.json").read_text())
    assert summary["status"] == "checkpoints_unreadable"
    assert len(list((run / "checkpoints_corrupt").iterdir())) == len(steps)


def test_a_run_killed_before_its_first_checkpoint_trains_again_in_place(tiny_raw, tmp_path, capsys):
    ref = tiny_run(tiny_raw, tmp_path / "ref")
    run = copy_run(ref.run_dir, tmp_path / "run")
    for step in (run / "checkpoints").iterdir():  # as if killed before the first save
        shutil.rmtree(step)
    shutil.rmtree(run / "best")
    (run / "trial_summary.json").unlink()
    truncate_table(run / "metrics.csv", 64)
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 0
    assert "no checkpoint under" in capsys.readouterr().err
    assert_same_run(run, ref.run_dir, 2)


def test_a_save_cut_short_by_a_kill_is_ignored_and_redone(tiny_raw, tmp_path):
    """kill -9 during an async save leaves orbax's temporary directory, never a step."""
    ref = tiny_run(tiny_raw, tmp_path / "ref")
    run = copy_run(ref.run_dir, tmp_path / "run")
    ckpts = run / "checkpoints"
    (ckpts / "320").rename(ckpts / "320.orbax-checkpoint-tmp")
    (run / "trial_summary.json").unlink()
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 0
    assert_same_run(run, ref.run_dir, 2)


def test_checkpoint_whose_data_no_longer_matches_its_fingerprint_is_rejected(
    tiny_raw, tmp_path, capsys
):
    run = tiny_run(tiny_raw, tmp_path).run_dir
    meta_file = run / "checkpoints" / "320" / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    meta["fingerprint"][0] ^= 1
    meta_file.write_text(json.dumps(meta))
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "frame 320" in err and "fingerprint" in err and "falling back to frame 256" in err


def test_a_run_with_per_session_metrics_files_reports_but_does_not_resume(
    tiny_raw, tmp_path, capsys
):
    """Runs written before the one-file metrics.csv kept session_<k>/metrics.csv: reports
    still read them; a resume is refused in one line and leaves every file as it was."""
    run = tiny_run(tiny_raw, tmp_path).run_dir
    shutil.rmtree(run / "checkpoints" / "320")
    (run / "trial_summary.json").unlink()
    for k, session in enumerate(read_rows(run)):
        with (run / f"session_{k}" / "metrics.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(session[0]))
            writer.writeheader()
            writer.writerows(session)
    curves = read_curves(run)
    (run / "metrics.csv").unlink()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err  # one line (after a dirty checkout's warning, if any)
    assert "keeps its rows in session_<k>/metrics.csv" in err.splitlines()[-1]
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "run.lock"}
    assert after == {p: b for p, b in before.items() if p.name != "run.lock"}
    for old, new in zip(curves, read_curves(run), strict=True):
        assert old.keys() == new.keys()
        assert all(np.array_equal(old[c], new[c], equal_nan=True) for c in old)
    assert main(["report", str(run), "--no-plots"]) == 0
    assert json.loads((run / "trial_metrics.json").read_text())["frames_per_session"] == [320] * 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [("delete", "has no metrics.csv to continue"), ("header", "metrics.csv is damaged")],
)
def test_a_run_whose_metrics_table_is_gone_or_damaged_is_refused_in_one_line(
    tiny_raw, tmp_path, capsys, damage, message
):
    run = tiny_run(tiny_raw, tmp_path).run_dir
    shutil.rmtree(run / "checkpoints" / "320")
    (run / "trial_summary.json").unlink()
    if damage == "delete":
        (run / "metrics.csv").unlink()
    else:
        (run / "metrics.csv").write_text("garbage\n1,2\n")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "run.lock"}
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and message in err.splitlines()[-1]
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "run.lock"}
    assert after == before  # provenance.json gets no resume entry


def test_checkpoint_format_version_is_checked(tiny_raw, tmp_path, capsys):
    run = tiny_run(tiny_raw, tmp_path).run_dir
    for step in (run / "checkpoints").glob("[0-9]*"):
        meta_file = step / "meta" / "metadata"
        meta = json.loads(meta_file.read_text())
        meta_file.write_text(json.dumps({**meta, "format_version": 1}))
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "format version 1; this jaxlab reads version 2" in err


def test_spec_with_other_state_shapes_is_refused_naming_the_difference(tiny_raw, tmp_path, capsys):
    run = tiny_run(tiny_raw, tmp_path).run_dir
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    raw = yaml.safe_load((run / "spec.yaml").read_text())
    raw["env"]["num_envs"] = 8
    (run / "spec.yaml").write_text(yaml.safe_dump(raw))
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "env.num_envs is 4 in the checkpoint, 8 in" in err and "does not fit" in err
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "spec.yaml"}
    assert after == {p: b for p, b in before.items() if p.name != "spec.yaml"}  # nothing touched


def test_resume_with_a_longer_budget_trains_on_and_continues_the_history(
    tiny_raw, tmp_path, capsys
):
    run = tiny_run(tiny_raw, tmp_path).run_dir
    raw = yaml.safe_load((run / "spec.yaml").read_text())
    raw["env"]["max_frame"] = 448
    (run / "spec.yaml").write_text(yaml.safe_dump(raw))
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 0
    assert "env.max_frame is 320 in the checkpoint, 448" in capsys.readouterr().err
    assert [int(r["frame"]) for r in rows(run, 0)] == [64, 128, 192, 256, 320, 384, 448]


def test_resume_refuses_overrides_and_non_runs(tiny_raw, tmp_path, capsys):
    assert main(["train", str(tmp_path), "--no-progress", "--no-report"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    run = tiny_run(tiny_raw, tmp_path / "a").run_dir
    assert main(["train", str(run), "-s", "env.num_envs=8"]) == 2
    assert "-s cannot be used when resuming" in capsys.readouterr().err


def test_rerun_of_a_saved_spec_reproduces_the_final_return(tiny_raw, tmp_path, capsys):
    first = tiny_run(tiny_raw, tmp_path / "a")
    assert (
        main(
            [
                "train",
                str(first.run_dir / "spec.yaml"),
                "--data",
                str(tmp_path / "b"),
                "--no-progress",
            ]
        )
        == 0
    )
    again = json.loads((the_run(tmp_path / "b") / "trial_summary.json").read_text())
    assert again["final_return_per_session"] == first.summary["final_return_per_session"]
    assert leaves_equal(final_state(the_run(tmp_path / "b"))[0], jax.device_get(first.state))


def test_rerun_at_another_sha_warns_with_the_checkout_command(tiny_raw, tmp_path, capsys):
    run = tiny_run(tiny_raw, tmp_path / "a").run_dir
    prov = json.loads((run / "provenance.json").read_text())
    prov.update(git_sha="0123456789abcdef0123456789abcdef01234567", git_dirty=False)
    (run / "provenance.json").write_text(json.dumps(prov))
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                str(run / "spec.yaml"),
                "--data",
                str(tmp_path / "b"),
                "--no-progress",
                "--no-report",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "this rerun may not reproduce exactly" in err
    assert "git checkout 0123456789abcdef0123456789abcdef01234567" in err


def test_first_signal_sets_the_stop_flag_and_a_second_one_aborts():
    # Whatever handler was installed before (SIG_DFL, or Ray's when a search test ran
    # earlier in this worker process) must be back afterwards.
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_an_abort_exits_130_in_one_line(tiny_raw, tmp_path, capsys, monkeypatch):
    import jaxlab.runtime.run

    def abort(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxlab.runtime.run, "train", abort)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    assert main(["train", str(path), "--data", str(tmp_path)]) == 130
    assert (
        capsys.readouterr().err.strip() == "jaxlab: aborted; checkpoints already on disk are intact"
    )


def test_a_fingerprint_taken_on_the_device_equals_the_hosts():
    """On an accelerator the checkpoint fingerprint is computed where the state is (one
    compiled program); it must give the host's numpy words for every dtype a state holds.
    Here both run on this CPU, the device path called directly."""
    from jaxlab.runtime.checkpoint import _unkeyed, _words_on_device, fingerprint

    rng = np.random.default_rng(0)
    tree = {
        "f32": rng.standard_normal((5, 7)).astype(np.float32),
        "bf16": jnp.asarray(rng.standard_normal(9), jnp.bfloat16),
        "f16": rng.standard_normal(3).astype(np.float16),
        "i8": rng.integers(-128, 127, 11).astype(np.int8),
        "u8": rng.integers(0, 255, (4, 84, 84)).astype(np.uint8),
        "bool": rng.random(13) > 0.5,
        "i32": rng.integers(-(2**31), 2**31 - 1, 6).astype(np.int32),
        "u32": rng.integers(0, 2**32, 2_000_003, dtype=np.uint64).astype(np.uint32),  # wraps
        "empty": np.zeros((0, 3), np.float32),
        "scalar": np.float32(2.5),
        "key": jax.random.key(3),
    }
    host = fingerprint(jax.tree.map(np.asarray, {k: v for k, v in tree.items() if k != "key"}))
    leaves = [_unkeyed(jnp.asarray(x)) for x in jax.tree.leaves(tree)]
    device = [int(w) for w in jax.device_get(_words_on_device(leaves))]
    assert device == fingerprint(tree)
    names = sorted(tree)  # jax.tree.leaves orders a dict by key
    assert [w for n, w in zip(names, device, strict=True) if n != "key"] == host
