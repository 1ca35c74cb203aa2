"""One writer per run folder (jaxlab.runtime.lock) and run names that never collide:
a second process on a held folder exits 2 with one line naming the holder, two resumes
started together leave one history with no duplicated frame, a killed holder leaves no
stale lock, and runs started in the same second get distinct folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import yaml

from jaxlab.runtime.lock import LOCK_NAME, FolderLocked, acquire, locked, release
from jaxlab.runtime.provenance import make_run_dir
from jaxlab.spec import spec_from_dict
from tests.conftest import REPO
from tests.test_resume import rows, tiny_run


def jaxlab(*args: str, wait: bool = True):
    cmd = [sys.executable, "-m", "jaxlab", *args, "--no-progress", "--no-report"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc.communicate(timeout=600) + (proc.returncode,) if wait else proc


def longer(run, frames: int) -> None:
    """Raise the run's budget so that resuming it trains on."""
    raw = yaml.safe_load((run / "spec.yaml").read_text())
    raw["env"]["max_frame"] = frames
    (run / "spec.yaml").write_text(yaml.safe_dump(raw))


def test_a_held_run_folder_refuses_a_second_writer_in_one_line(tiny_raw, tmp_path):
    run = tiny_run(tiny_raw, tmp_path).run_dir
    longer(run, 640)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with locked(run):  # this test process holds it, as a running train would
        out, err, code = jaxlab("train", str(run))
    assert code == 2, err
    assert err.strip() == (
        f"jaxlab: locked: {run.resolve()} is being written by another jaxlab process "
        f"(PID {os.getpid()}); wait for it to finish or stop it"
    )
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing written
    out, err, code = jaxlab("train", str(run))  # released: it resumes
    assert code == 0, err
    assert [int(r["frame"]) for r in rows(run, 0)][-1] == 640


def test_two_resumes_at_once_one_trains_and_the_other_exits_2(tiny_raw, tmp_path):
    run = tiny_run(tiny_raw, tmp_path).run_dir
    longer(run, 64 * 40)
    procs = [jaxlab("train", str(run), wait=False) for _ in range(2)]
    results = [(*p.communicate(timeout=600), p.returncode) for p in procs]
    codes = sorted(code for _, _, code in results)
    assert codes == [0, 2], results
    _, err, _ = next(r for r in results if r[2] == 2)
    assert err.count("\n") == 1 and "jaxlab: locked:" in err and "Traceback" not in err
    for k in range(2):
        frames = [int(r["frame"]) for r in rows(run, k)]
        assert frames == [64 * (i + 1) for i in range(40)]  # none duplicated or missing


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = (
        "import sys, time; from jaxlab.runtime.lock import acquire; "
        f"acquire({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"held"
    try:
        acquire(tmp_path)
        raise AssertionError("the lock was not held")
    except FolderLocked as err:
        assert f"PID {holder.pid}" in str(err)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert acquire(tmp_path)  # the kernel dropped the dead holder's lock
    assert (tmp_path / LOCK_NAME).read_text() == str(os.getpid())
    release(tmp_path)


def test_runs_started_in_the_same_second_get_distinct_folders(tiny_raw, tmp_path):
    spec = spec_from_dict(tiny_raw)
    made, errors = [], []
    barrier = threading.Barrier(16)

    def start() -> None:
        barrier.wait()
        try:
            made.append(make_run_dir(spec, tmp_path))
        except Exception as err:  # noqa: BLE001 - any failure is the finding
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(made)) == 16
