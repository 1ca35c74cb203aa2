"""``meta.loggers``: W&B (offline) and MLflow (sqlite) runs hold the spec, the git SHA, the
seeds and every ``metrics.csv`` value; a resume continues the same runs without logging a
step twice; bad names and missing extras are one line through the CLI, nothing written.

The W&B runs are read back from their offline ``.wandb`` files: the installed wandb keeps
no Python reader for them (its Go core writes them), so :func:`wandb_records` reads the
format, LevelDB's log (32 KiB blocks of CRC-checked chunks) of ``Record`` protos.
"""

from __future__ import annotations

import json
import math
import struct
import sys
import zlib
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from jaxlab.cli import main
from jaxlab.logging.table import read_rows
from jaxlab.runtime.run import train
from jaxlab.spec import SpecError, spec_from_dict

TIMING = ("wall_time", "fps")
FAST = ["meta.compile=fast", "meta.checkpoint_frequency=128"]  # 5 chunks of 64 frames
SETTINGS = ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def default_stores(monkeypatch):
    """The defaults under test: W&B offline in the run folder, MLflow's sqlite there."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def tiny_run(tiny_raw: dict, root: Path, loggers: str, **kwargs) -> Path:
    spec = spec_from_dict(tiny_raw, [*FAST, f"meta.loggers={loggers}"])
    return train(spec, root=root, progress=False, report=False, **kwargs).run_dir


def csv_rows(run: Path, k: int) -> list[dict[str, str]]:
    return read_rows(run)[k]


def expected(rows: list[dict[str, str]], timing: bool = True) -> dict[int, dict[str, float]]:
    """frame -> {session/<column>: value} of the CSV's finite cells (the tracker's tags)."""
    out = {}
    for row in rows:
        cells = {k: v for k, v in row.items() if k != "frame" and v != ""}
        out[int(row["frame"])] = {
            f"session/{k}": float(v)
            for k, v in cells.items()
            if math.isfinite(float(v)) and (timing or k not in TIMING)
        }
    return out


def same(logged: dict[str, float], csv_values: dict[str, float]) -> bool:
    """The logged scalars are the CSV's (which keeps 6 significant digits)."""
    return logged.keys() == csv_values.keys() and all(
        float(f"{logged[k]:.6g}") == v for k, v in csv_values.items()
    )


# ---- W&B's offline files --------------------------------------------------------------


def wandb_records(path: Path):
    """The ``Record`` protos of one ``.wandb`` file (LevelDB log format, CRCs checked)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        chunk = data[pos + 7 : pos + 7 + length]
        assert crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))), f"{path}: bad CRC"
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST, MIDDLE/LAST
        if kind in (1, 4):
            yield pb.Record.FromString(pending)


def wandb_runs(folder: Path) -> dict[str, dict]:
    """run id -> config, group, job_type, history [(step, {key: value})] and exit codes,
    over every offline run folder of that id (a resume writes another)."""
    runs: dict[str, dict] = defaultdict(lambda: {"config": {}, "history": [], "exits": []})
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = runs[record.run.run_id]
                run.update(group=record.run.run_group, job_type=record.run.job_type)
                for item in record.run.config.update:
                    run["config"][item.key] = json.loads(item.value_json)
            elif kind == "history":
                items = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
                run["history"].append((items.pop("_step"), items))
            elif kind == "exit":
                run["exits"].append(record.exit.exit_code)
    return dict(runs)


def scalars(items: dict) -> dict[str, float]:
    return {k: v for k, v in items.items() if not k.startswith("_")}


def test_wandb_offline_runs_hold_the_spec_sha_seeds_and_every_csv_value(tiny_raw, tmp_path):
    run = tiny_run(tiny_raw, tmp_path, "[csv, tensorboard, wandb]")
    saved = json.loads((run / "trackers.json").read_text())["wandb"]
    prov = json.loads((run / "provenance.json").read_text())
    runs = wandb_runs(run)
    assert set(runs) == {saved["trial"], *saved["session_runs"]}
    for k, run_id in enumerate(saved["session_runs"]):
        logged = runs[run_id]
        assert (logged["group"], logged["job_type"], logged["exits"]) == (run.name, "session", [0])
        config = logged["config"]
        assert config["spec.agent.algorithm.name"] == "PPO" and config["spec.name"] == "tiny"
        assert config["spec.meta.loggers"] == ["csv", "tensorboard", "wandb"]
        assert config["git_sha"] == prov["git_sha"] and config["git_dirty"] == prov["git_dirty"]
        assert config["random_seed"] == 3 and config["session_key"] == prov["session_keys"][k]
        history = {step: scalars(items) for step, items in logged["history"]}
        assert [s for s, _ in logged["history"]] == sorted(history)  # each step once
        want = expected(csv_rows(run, k))
        assert sorted(history) == sorted(want) == [64, 128, 192, 256, 320]
        for frame, values in want.items():
            assert same(history[frame], values), frame
    trial = runs[saved["trial"]]
    assert (trial["job_type"], trial["exits"]) == ("trial", [0])
    assert trial["config"]["session_keys"] == prov["session_keys"]
    returns = defaultdict(list)  # frame -> the sessions' finite returns
    for k in (0, 1):
        for row in csv_rows(run, k):
            if row["return"] not in ("", "nan"):
                returns[int(row["frame"])].append(float(row["return"]))
    assert [step for step, _ in trial["history"]] == [64, 128, 192, 256, 320]
    for step, items in trial["history"]:
        assert items["trial/diverged_sessions"] == 0
        if returns[step]:
            mean = sum(returns[step]) / len(returns[step])
            assert items["trial/return_mean"] == pytest.approx(mean, rel=1e-5)


# ---- MLflow ----------------------------------------------------------------------------


def mlflow_client(run: Path):
    from mlflow.tracking import MlflowClient

    saved = json.loads((run / "trackers.json").read_text())["mlflow"]
    assert saved["tracking_uri"] == f"sqlite:///{run.resolve()}/mlflow.db"
    return MlflowClient(tracking_uri=saved["tracking_uri"]), saved


def mlflow_history(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """metric key -> [(step, value)] in step order, every point logged."""
    keys = client.get_run(run_id).data.metrics
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in keys
    }


def by_frame(history: dict[str, list[tuple[int, float]]]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for key, points in history.items():
        for step, value in points:
            out[step][key] = value
    return dict(out)


def test_mlflow_runs_hold_the_params_and_every_metric_history(tiny_raw, tmp_path):
    run = tiny_run(tiny_raw, tmp_path, "[csv, mlflow]")
    assert not (run / "tb_trial").exists() and not (run / "session_0" / "tb").exists()
    client, saved = mlflow_client(run)
    prov = json.loads((run / "provenance.json").read_text())
    trial = client.get_run(saved["trial"])
    assert trial.info.run_name == run.name and trial.info.status == "FINISHED"
    assert client.get_experiment(trial.info.experiment_id).name == "tiny"
    for k, run_id in enumerate(saved["session_runs"]):
        session = client.get_run(run_id)
        assert session.info.status == "FINISHED" and session.info.run_name == f"session_{k}"
        assert session.data.tags["mlflow.parentRunId"] == saved["trial"]
        params = session.data.params
        assert params["spec.agent.algorithm.name"] == "PPO"
        assert params["spec.agent.net.hid_layers"] == "[16, 16]"
        assert params["git_sha"] == prov["git_sha"] and params["random_seed"] == "3"
        assert json.loads(params["session_key"]) == prov["session_keys"][k]
        history = by_frame(mlflow_history(client, run_id))
        want = expected(csv_rows(run, k))
        assert sorted(history) == sorted(want) == [64, 128, 192, 256, 320]
        for frame, values in want.items():
            assert same(history[frame], values), frame
    assert json.loads(trial.data.params["session_keys"]) == prov["session_keys"]
    assert "trial/return_mean" in trial.data.metrics


def test_only_detailed_sessions_get_a_run_and_the_trial_run_aggregates_all(tiny_raw, tmp_path):
    """At thousands of seeds a run per session would cost more than training: the first
    ``meta.detailed_sessions`` get their own run; the Trial's run averages every session."""
    sets = ["meta.loggers=[csv, mlflow]", "meta.max_session=3", "meta.detailed_sessions=1"]
    spec = spec_from_dict(tiny_raw, [*FAST, *sets])
    run = train(spec, root=tmp_path, progress=False, report=False).run_dir
    client, saved = mlflow_client(run)
    (session,) = saved["session_runs"]
    experiment = client.get_run(session).info.experiment_id
    assert len(client.search_runs([experiment])) == 2  # session_0's and the Trial's
    assert client.get_run(session).info.run_name == "session_0"
    assert sorted(by_frame(mlflow_history(client, session))) == [64, 128, 192, 256, 320]
    means = dict(mlflow_history(client, saved["trial"])["trial/return_mean"])
    for frame, value in means.items():
        returns = [float(r["return"]) for k in range(3) for r in csv_rows(run, k)
                   if int(r["frame"]) == frame and r["return"] != "nan"]  # fmt: skip
        assert value == pytest.approx(sum(returns) / len(returns), rel=1e-5)
    assert means and set(means) <= {64, 128, 192, 256, 320}


# ---- resume ------------------------------------------------------------------------------


def fail_at(frame: int):
    def hook(chunk, at, returns):
        if at == frame:
            raise RuntimeError("injected failure")
        return False

    return hook


def test_resume_continues_the_same_runs_without_logging_a_step_twice(tiny_raw, tmp_path):
    """Fail at frame 192 (after its rows reached the trackers, past the checkpoint at 128),
    then resume: training re-creates 192, which is not logged again. (``dev`` runs one
    chunk per call, so no later row is recorded before the failure.)"""
    with pytest.raises(RuntimeError, match="injected failure"):
        tiny_run(tiny_raw, tmp_path, "[csv, wandb, mlflow]", on_chunk=fail_at(192), dev=True)
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    before = json.loads((run / "trackers.json").read_text())
    assert before["wandb"]["logged_frame"] == before["mlflow"]["logged_frame"] == 192
    client, saved = mlflow_client(run)
    assert client.get_run(saved["trial"]).info.status == "FAILED"
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 0
    after = json.loads((run / "trackers.json").read_text())
    for name in ("wandb", "mlflow"):
        assert after[name] == {**before[name], "logged_frame": 320}  # the same run ids
    runs = wandb_runs(run)
    assert set(runs) == {after["wandb"]["trial"], *after["wandb"]["session_runs"]}
    for k in (0, 1):
        want = expected(csv_rows(run, k), timing=False)  # 192: the first attempt's timing
        logged = runs[after["wandb"]["session_runs"][k]]
        assert logged["exits"] == [1, 0]  # failed, then finished
        assert [step for step, _ in logged["history"]] == [64, 128, 192, 256, 320]
        for step, items in logged["history"]:
            assert same(untimed(scalars(items)), want[step]), step
        run_id = after["mlflow"]["session_runs"][k]
        assert client.get_run(run_id).info.status == "FINISHED"
        history = mlflow_history(client, run_id)
        assert all(len(points) == len(dict(points)) for points in history.values())  # once
        got = by_frame(history)
        assert sorted(got) == [64, 128, 192, 256, 320]
        for frame, values in want.items():
            assert same(untimed(got[frame]), values), frame
    assert len(client.search_runs([after["mlflow"]["experiment_id"]])) == 3  # no new runs


def untimed(logged: dict[str, float]) -> dict[str, float]:
    return {tag: v for tag, v in logged.items() if tag.split("/")[1] not in TIMING}


# ---- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loggers", "message"),
    [
        ("[csv, wanb]", "meta.loggers[1]: unknown logger 'wanb' (did you mean 'wandb'?)"),
        ("[csv, neptune]", "meta.loggers[1]: unknown logger 'neptune' (one of csv, tensorboard"),
        ("[csv, mlflow, mlflow]", "meta.loggers[2]: 'mlflow' is listed twice"),
        ("[tensorboard, wandb]", "meta.loggers: must include csv: metrics.csv is what reports"),
        ("csv", "meta.loggers: must be a list of strings"),
    ],
)
def test_bad_loggers_are_spec_errors(tiny_raw, loggers, message):
    with pytest.raises(SpecError) as err:
        spec_from_dict(tiny_raw, [f"meta.loggers={loggers}"])
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(
    ("loggers", "hidden", "message"),
    [
        ("[csv, wanb]", None, "jaxlab: spec error: meta.loggers[1]: unknown logger 'wanb'"),
        (
            "[csv, tensorboard, wandb]",
            "wandb",
            "jaxlab: spec error: meta.loggers: wandb is not installed: pip install -e '.[wandb]'",
        ),
        (
            "[csv, mlflow]",
            "mlflow",
            "jaxlab: spec error: meta.loggers: mlflow is not installed: pip install -e '.[mlflow]'",
        ),
    ],
)
def test_the_cli_refuses_in_one_line_and_writes_nothing(
    tiny_raw, tmp_path, monkeypatch, capsys, loggers, hidden, message
):
    """A missing extra is simulated by hiding its package (``sys.modules[name] = None``
    makes its import fail as if it were not installed)."""
    if hidden:
        monkeypatch.setitem(sys.modules, hidden, None)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_raw))
    data = tmp_path / "data"
    args = ["train", str(spec), "--data", str(data), "-s", f"meta.loggers={loggers}"]
    assert main([*args, "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(message), line
    assert not data.exists()


@pytest.mark.parametrize("mode", ["search", "benchmark"])
def test_search_and_benchmark_refuse_a_missing_tracker_before_any_trial(
    tiny_raw, tmp_path, monkeypatch, capsys, mode
):
    """Checked once up front, not in each Trial's worker (where every Trial would fail)."""
    monkeypatch.setitem(sys.modules, "wandb", None)
    tiny_raw["meta"]["loggers"] = ["csv", "wandb"]
    if mode == "search":
        tiny_raw["search"] = {"agent.net.optim.lr__choice": [1.0e-3, 2.0e-3]}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_raw))
    target = spec
    if mode == "benchmark":
        target = tmp_path / "suite.yaml"
        target.write_text(yaml.safe_dump({"specs": [str(spec)]}))
    data = tmp_path / "data"
    assert main([mode, str(target), "--data", str(data), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "wandb is not installed: pip install -e '.[wandb]'" in line, line
    assert not data.exists()
