"""``meta.detailed_sessions``: only the first K sessions get TensorBoard scalars, parameter
histograms and session graphs; every session keeps its ``metrics.csv`` rows and counts in
the Trial's aggregates (``tb_trial``, ``trial_metrics.json``)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboardX.proto.event_pb2 import Event

from jaxlab.analysis.report import SESSION_GRAPHS, graphed_sessions
from jaxlab.cli import main
from jaxlab.logging.table import read_rows
from jaxlab.runtime.run import train_batch
from jaxlab.spec import spec_from_dict

KERNEL = "params/params/actor_torso/MLP_0/Dense_0/kernel"


def kernel(params: dict, k: int) -> np.ndarray:
    """Session ``k``'s :data:`KERNEL` in a Trial's parameters (``[S, ...]`` leaves)."""
    return np.asarray(params["params"]["actor_torso"]["MLP_0"]["Dense_0"]["kernel"][k])


def events(directory: Path) -> list[Event]:
    """Every ``Event`` of the TensorBoard files in ``directory`` (TFRecord framing)."""
    found = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            found.append(Event.FromString(data[at + 12 : at + 12 + length]))
            at += 12 + length + 4
    return found


def tags(directory: Path) -> set[str]:
    """The summary tags logged in ``directory``."""
    return {v.tag for e in events(directory) for v in e.summary.value}


def trained(tiny_raw: dict, root: Path, detailed: int) -> Path:
    """A 3-session tiny Trial with ``meta.detailed_sessions=detailed``, via the CLI."""
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_raw))
    args = ["train", str(spec), "--data", str(root / "data"), "--no-progress"]
    args += ["-s", "meta.max_session=3", "-s", f"meta.detailed_sessions={detailed}"]
    assert main(args) == 0
    (run,) = (root / "data").iterdir()
    return run


def test_one_detailed_session_of_three(tiny_raw, tmp_path):
    run = trained(tiny_raw, tmp_path, 1)
    for k in range(3):  # every session's rows, all five log points
        rows = read_rows(run)[k]
        assert [int(r["frame"]) for r in rows] == [64, 128, 192, 256, 320]
    assert "session/return" in tags(run / "session_0" / "tb")
    assert KERNEL in tags(run / "session_0" / "tb") and "actions" in tags(run / "session_0" / "tb")
    assert not (run / "session_1" / "tb").exists() and not (run / "session_2" / "tb").exists()
    assert {"trial/return_mean", "trial/diverged_sessions"} <= tags(run / "tb_trial")
    graphs = sorted(p.name for p in (run / "graphs").iterdir())
    assert graphs == ["session_0.png", "trial.png"]


def test_no_detailed_sessions(tiny_raw, tmp_path):
    run = trained(tiny_raw, tmp_path, 0)
    assert not list(run.glob("session_*/tb"))
    assert not list(run.glob("session_*")) and len(read_rows(run)) == 3
    assert "trial/return_mean" in tags(run / "tb_trial")
    assert sorted(p.name for p in (run / "graphs").iterdir()) == ["trial.png"]
    # a retro report keeps to the spec too
    assert main(["report", str(run)]) == 0
    assert sorted(p.name for p in (run / "graphs").iterdir()) == ["trial.png"]


def test_histograms_of_a_batched_setting_come_from_its_own_rows(tiny_raw, tmp_path):
    """In a search batch each Trial's detailed sessions are its own rows of the combined
    state (setting 1's session 0 is row S), sliced on the device before the copy."""
    specs = [
        spec_from_dict(tiny_raw, [f"agent.net.optim.lr={lr}", "meta.detailed_sessions=1"])
        for lr in (1e-4, 3e-3)
    ]
    dirs = [tmp_path / "a", tmp_path / "b"]
    results = train_batch(specs, run_dirs=dirs, progress=False, report=False)
    for run, result in zip(dirs, results, strict=True):
        assert not (run / "session_1" / "tb").exists()
        mine = kernel(result.state.params, 0).astype(np.float64)
        (last,) = [
            v.histo for e in events(run / "session_0" / "tb") if e.step == 320
            for v in e.summary.value if v.tag == KERNEL
        ]  # fmt: skip
        assert (last.min, last.max) == (mine.min(), mine.max())
        assert last.sum == pytest.approx(mine.sum(), rel=1e-12)
    first, second = (kernel(r.state.params, 0) for r in results)
    assert not np.array_equal(first, second)  # the settings trained apart


def test_graphs_follow_the_spec_capped_by_the_caller():
    assert graphed_sessions({"meta": {"detailed_sessions": 3}}) == 3
    assert graphed_sessions({"meta": {"detailed_sessions": 30}}) == SESSION_GRAPHS
    assert graphed_sessions({"meta": {"detailed_sessions": 3}}, session_graphs=0) == 0
    assert graphed_sessions({"meta": {}}) == graphed_sessions({}) == SESSION_GRAPHS
