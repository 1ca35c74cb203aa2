"""Experiment trackers beside the CSV and TensorBoard files: Weights & Biases and MLflow.

``meta.loggers`` lists where a Trial's scalars go (:data:`LOGGERS`): ``csv`` (always
listed: ``metrics.csv`` is what reports, resume and :class:`jaxlab.api.Run` read),
``tensorboard``, ``wandb`` and ``mlflow``. A tracker gets the rows the CSV/TensorBoard
writers already buffer (:class:`jaxlab.logging.writers.SessionLogs`), handed over on the
host each time the Trial's outputs flush (before every checkpoint, at the end and every
``FLUSH_SECONDS``): nothing runs per env step. Tags are TensorBoard's (``session/<column>``,
``trial/<key>_mean``, ``trial/<key>_std``, ``trial/diverged_sessions``), step = frame.

**Runs.** Each of the first ``meta.detailed_sessions`` sessions is a tracker run (at
thousands of seeds a run per session would cost more than training), and the Trial is one
more, holding the aggregates over every session that ``tb_trial/`` holds.

* W&B: project ``$WANDB_PROJECT``, else the spec name; ``group`` = the run folder's name;
  ``job_type`` ``session`` (runs ``session_<k>``) or ``trial`` (run ``trial``). W&B runs
  **offline unless WANDB_MODE is set** (jaxlab's machines often have no network): the
  files go to ``<run>/wandb/`` (``$WANDB_DIR/wandb/`` if set) and ``wandb sync
  <run>/wandb/offline-run-*`` uploads them later. It is kept quiet: no console capture,
  system metrics, git, code or requirements capture.
* MLflow: experiment = the spec name; the Trial's run is named after the run folder and
  each session's run is nested under it (tag ``mlflow.parentRunId``). Store:
  ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<run>/mlflow.db``, in the run folder because
  the folder's lock (:mod:`jaxlab.runtime.lock`) makes one process its only writer
  (SQLite copes badly with parallel writers: a search's trials, two ``train`` runs into one
  ``data/``) and it is copied and deleted with the run. To compare runs in one UI, point
  ``MLFLOW_TRACKING_URI`` at a shared store or server.

Every run's config (W&B) or params (MLflow): the resolved spec as dotted keys
(``spec.agent.net.optim.lr``), ``git_sha``, ``git_dirty``, ``random_seed`` and the session
PRNG keys of ``provenance.json`` (``session_key`` in a session's run, ``session_keys`` in
the Trial's).

**Resume.** ``<run>/trackers.json`` keeps each tracker's run ids (and MLflow's store) and
its ``logged_frame``, the last frame handed to it. A resumed run (and one trained again in
place, :func:`jaxlab.runtime.resume.start_over`) continues the same runs (W&B
``resume="allow"``, MLflow's set back to RUNNING; params already logged are kept) and skips
every row at or before ``logged_frame``: the rows training re-creates between the
checkpoint and a kill were logged once already (with the same values where the env resumes
exactly, :func:`jaxlab.envs.resumes_exactly`; ``wall_time`` and ``fps`` are the first
attempt's). No step is logged twice. A tracker first listed at a resume starts new runs
from the checkpoint on; a run killed after its last checkpoint and "resumed" only to
write its summary leaves its tracker runs as they were.

**End.** The runs are closed at the end of the Trial, on a stop and on a failure: status
``complete`` -> W&B exit code 0, MLflow FINISHED; ``interrupted``/``stopped`` -> 255 (W&B
shows it failed), KILLED; ``failed`` -> 1, FAILED; the status is also W&B's summary key and
MLflow's tag ``jaxlab.status``. A tracker that fails while closing a failed run only
warns, so the run's own error is the one reported.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jaxlab.config.parse import SpecError, flatten
from jaxlab.logging.writers import Tracked

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
# tracker -> the module it needs, which the pip extra of the same name installs
PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}
TRACKERS_FILE = "trackers.json"
# how a Trial ended (jaxlab.runtime.outputs.run_status) -> W&B exit code, MLflow status
WANDB_EXIT = {"complete": 0, "failed": 1}  # otherwise (interrupted, stopped) 255
MLFLOW_STATUS = {"complete": "FINISHED", "failed": "FAILED"}  # otherwise KILLED


def require_trackers(loggers: Sequence[str], path: str = "meta.loggers") -> None:
    """A one-line SpecError, before anything is written, naming the pip extra of a listed
    tracker whose package is missing (as ``require_optuna`` and the env suites do)."""
    for name in loggers:
        if name not in PACKAGES:
            continue
        try:
            importlib.import_module(PACKAGES[name])
        except ImportError:
            raise SpecError(
                path,
                f"{name} is not installed: pip install -e '.[{name}]' (or '.[trackers]' for "
                f"wandb and mlflow), or leave {name} out of meta.loggers",
            ) from None


@dataclass(frozen=True)
class RunInfo:
    """What every tracker run records. ``name``: the spec's (W&B project, MLflow
    experiment); ``group``: the run folder's name; ``config``: the flat spec
    (``spec.<key>``), git SHA/dirty flag and ``random_seed``; ``session_keys``: each
    session's PRNG key as ``provenance.json`` records it (None where it records none);
    ``tracked``: how many sessions (the first ones) get a run of their own."""

    name: str
    group: str
    config: dict[str, Any]
    session_keys: list[Any]
    tracked: int

    @classmethod
    def of(
        cls, spec: dict[str, Any], run_dir: Path, prov: dict[str, Any], sessions: int,
        tracked: int | None = None,
    ) -> RunInfo:  # fmt: skip
        """From the resolved spec (``Spec.to_dict()``), the run's provenance, its number
        of sessions and how many of them get their own run (``tracked``; all: None)."""
        config = {f"spec.{k}": v for k, v in flatten(spec).items()}
        config.update(
            git_sha=prov.get("git_sha"),
            git_dirty=prov.get("git_dirty"),
            random_seed=prov.get("random_seed", spec["meta"]["random_seed"]),
        )
        keys = list(prov.get("session_keys") or [])
        keys = keys if len(keys) == sessions else [None] * sessions
        return cls(spec["name"], run_dir.name, config, keys, min(sessions, tracked or sessions))

    def trial_config(self) -> dict[str, Any]:
        return {**self.config, "session_keys": self.session_keys}

    def session_config(self, k: int) -> dict[str, Any]:
        return {**self.config, "session": k, "session_key": self.session_keys[k]}


class Tracker(Protocol):
    """One tracker's runs for a Trial (the Trial's and one per session)."""

    def log(self, sessions: list[Tracked], trial: Tracked) -> None: ...

    def state(self) -> dict[str, Any]: ...  # what trackers.json keeps to reopen the runs

    def close(self, status: str) -> None: ...


class Trackers:
    """The trackers ``meta.loggers`` lists for one Trial; see the module docstring.
    ``logged[name]``: the last frame handed to tracker ``name``."""

    def __init__(
        self, run_dir: Path, sessions: int, opened: dict[str, Tracker], logged: dict[str, int]
    ) -> None:
        self.path, self.sessions = run_dir / TRACKERS_FILE, sessions
        self.opened, self.logged = opened, logged

    @classmethod
    def open(cls, loggers: Sequence[str], run_dir: Path, info: RunInfo) -> Trackers | None:
        """The listed trackers' runs, continuing those ``trackers.json`` names; None when
        no tracker is listed."""
        names = [n for n in loggers if n in PACKAGES]
        if not names:
            return None
        path, sessions = run_dir / TRACKERS_FILE, info.tracked
        saved = json.loads(path.read_text()) if path.is_file() else {}
        if saved.get("sessions") != sessions:  # another Trial's runs: start new ones
            saved = {}
        opened: dict[str, Tracker] = {}
        logged: dict[str, int] = {}
        try:
            for name in names:
                state = dict(saved.get(name) or {})
                logged[name] = int(state.pop("logged_frame", 0))
                opener = WandbTracker.open if name == "wandb" else MlflowTracker.open
                opened[name] = opener(run_dir, info, state or None)
        except BaseException:
            for tracker in opened.values():
                tracker.close("failed")
            raise
        trackers = cls(run_dir, sessions, opened, logged)
        trackers.save()
        return trackers

    def log(self, sessions: list[Tracked], trial: Tracked) -> None:
        """Hand each tracker the rows past the last frame it got; record the new one."""
        changed = False
        for name, tracker in self.opened.items():
            after = self.logged[name]
            mine = [[row for row in rows if row[0] > after] for rows in sessions]
            aggregates = [row for row in trial if row[0] > after]
            frames = [frame for rows in (*mine, aggregates) for frame, _ in rows]
            if frames:
                tracker.log(mine, aggregates)
                self.logged[name], changed = max(frames), True
        if changed:
            self.save()

    def save(self) -> None:
        """Write ``trackers.json`` (atomically)."""
        state: dict[str, Any] = {"sessions": self.sessions}
        for name, tracker in self.opened.items():
            state[name] = {**tracker.state(), "logged_frame": self.logged[name]}
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.path)

    def close(self, status: str) -> None:
        """Finish every tracker's runs with ``status`` (module docstring, **End**)."""
        errors = []
        for name, tracker in self.opened.items():
            try:
                tracker.close(status)
            except Exception as err:  # noqa: BLE001 - close the others; raised below
                errors.append((name, err))
        if errors and status != "failed":
            raise errors[0][1]
        for name, err in errors:
            print(f"jaxlab: warning: closing the {name} runs failed: {err}", file=sys.stderr)


def _run_ids(sessions: int) -> dict[str, Any]:
    """New run ids, one stem per Trial: ``<stem>-trial``, ``<stem>-s<k>``."""
    stem = uuid.uuid4().hex[:10]
    return {"trial": f"{stem}-trial", "session_runs": [f"{stem}-s{k}" for k in range(sessions)]}


class WandbTracker:
    """A W&B run for the Trial and one per session, grouped by the run folder's name."""

    def __init__(self, state: dict[str, Any], trial: Any, sessions: list[Any]) -> None:
        self._state, self.trial, self.sessions = state, trial, sessions

    @classmethod
    def open(cls, run_dir: Path, info: RunInfo, saved: dict[str, Any] | None) -> WandbTracker:
        import wandb

        state = saved or {
            "project": os.environ.get("WANDB_PROJECT") or info.name,
            "group": info.group,
            **_run_ids(info.tracked),
        }
        settings = wandb.Settings(
            silent=True, console="off", x_disable_stats=True, x_disable_meta=True,
            x_disable_machine_info=True, disable_git=True, disable_code=True, save_code=False,
            disable_job_creation=True, x_save_requirements=False, allow_val_change=True,
        )  # fmt: skip

        def init(run_id: str, name: str, job_type: str, config: dict[str, Any]) -> Any:
            return wandb.init(
                project=state["project"], group=state["group"], id=run_id, name=name,
                job_type=job_type, config=config, resume="allow", reinit="create_new",
                dir=None if os.environ.get("WANDB_DIR") else str(run_dir),
                mode=None if os.environ.get("WANDB_MODE") else "offline", settings=settings,
            )  # fmt: skip

        trial = init(state["trial"], "trial", "trial", info.trial_config())
        sessions = [
            init(run_id, f"session_{k}", "session", info.session_config(k))
            for k, run_id in enumerate(state["session_runs"])
        ]
        return cls(state, trial, sessions)

    def log(self, sessions: list[Tracked], trial: Tracked) -> None:
        for run, rows in ((self.trial, trial), *zip(self.sessions, sessions, strict=True)):
            for frame, scalars in rows:
                run.log(scalars, step=frame)

    def state(self) -> dict[str, Any]:
        return self._state

    def close(self, status: str) -> None:
        for run in (self.trial, *self.sessions):
            run.summary["jaxlab_status"] = status
            run.finish(exit_code=WANDB_EXIT.get(status, 255))


class MlflowTracker:
    """An MLflow parent run for the Trial with a nested run per session."""

    def __init__(self, client: Any, state: dict[str, Any]) -> None:
        self.client, self._state = client, state

    @classmethod
    def open(cls, run_dir: Path, info: RunInfo, saved: dict[str, Any] | None) -> MlflowTracker:
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO lines on the console
        default = f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
        uri = saved["tracking_uri"] if saved else os.environ.get("MLFLOW_TRACKING_URI") or default
        client = MlflowClient(tracking_uri=uri)
        if saved:
            state = saved
            for run_id in (state["trial"], *state["session_runs"]):
                client.update_run(run_id, status="RUNNING")
        else:
            state = {"tracking_uri": uri, "experiment_id": _experiment(client, info.name)}
            state.update(_mlflow_runs(client, state["experiment_id"], run_dir, info))
        tracker = cls(client, state)
        tracker.log_params(info)
        return tracker

    def runs(self) -> list[str]:
        """The Trial's run id, then each session's."""
        return [self._state["trial"], *self._state["session_runs"]]

    def log_params(self, info: RunInfo) -> None:
        """Each run's config as params, but for keys the run has already (a resume)."""
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        configs = [info.trial_config()]
        configs += [info.session_config(k) for k in range(len(self.runs()) - 1)]
        for run_id, config in zip(self.runs(), configs, strict=True):
            have = self.client.get_run(run_id).data.params
            params = [
                Param(key, _param_text(value)[:MAX_PARAM_VAL_LENGTH])
                for key, value in config.items()
                if key not in have
            ]
            for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
                self.client.log_batch(run_id, params=chunk)

    def log(self, sessions: list[Tracked], trial: Tracked) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        now = int(time.time() * 1000)
        for run_id, rows in zip(self.runs(), (trial, *sessions), strict=True):
            metrics = [
                Metric(tag, value, now, frame) for frame, scalars in rows
                for tag, value in scalars.items()
            ]  # fmt: skip
            for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
                self.client.log_batch(run_id, metrics=chunk)

    def state(self) -> dict[str, Any]:
        return self._state

    def close(self, status: str) -> None:
        for run_id in self.runs():
            self.client.set_tag(run_id, "jaxlab.status", status)
            self.client.set_terminated(run_id, MLFLOW_STATUS.get(status, "KILLED"))


def _experiment(client: Any, name: str) -> str:
    """The id of MLflow experiment ``name``, made if missing (or made meanwhile by another
    process sharing the store)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _mlflow_runs(client: Any, experiment: str, run_dir: Path, info: RunInfo) -> dict[str, Any]:
    """New runs: the Trial's (named after the run folder) and each session's under it."""
    tags = {"jaxlab.run_dir": str(run_dir.resolve())}
    trial = client.create_run(
        experiment, run_name=info.group, tags={**tags, "jaxlab.role": "trial"}
    ).info.run_id
    sessions = [
        client.create_run(
            experiment,
            run_name=f"session_{k}",
            tags={**tags, "jaxlab.role": "session", "mlflow.parentRunId": trial},
        ).info.run_id
        for k in range(info.tracked)
    ]
    return {"trial": trial, "session_runs": sessions}


def _param_text(value: Any) -> str:
    """A param value as text: strings as they are, the rest as JSON (lists, null, true)."""
    return value if isinstance(value, str) else json.dumps(value)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
