"""``search`` mode: an Experiment = one Trial per hyperparameter setting, on Ray Tune.

``python -m jaxlab search spec.yaml`` writes ``data/<spec>_<timestamp>/``:

* ``spec.yaml`` (the search spec) and ``experiment.json``: the plan (every setting, its
  trial folder and batch group) and each trial's status, rewritten as trials finish;
* ``trial_000/``, ``trial_001/``...: one folder per setting in the ``train`` layout
  (``spec.yaml`` of that setting, sessions, checkpoints, report), or ``error.txt``;
* ``experiment_table.csv`` (varied keys + trial metrics, best first),
  ``experiment_graph.png``, ``best_spec.yaml`` and ``experiment_summary.json``.

Random and grid settings are drawn up front (:func:`jaxlab.spec.search.sample_settings`)
and, when every searched key is a hyperparameter held in the state (numbers that leave
shapes unchanged), batched K per Ray trial into one compiled program; Ray Tune places the
batches on devices. ``meta.search_alg: optuna`` lets Optuna's TPE suggest settings one by
one, and ``meta.search_scheduler`` stops weak trials early with ASHA; both need one
setting per Ray trial, so they turn batching off. Ray is embedded and quiet by default;
``--address``/``RAY_ADDRESS`` joins an existing cluster (the data folder must then be on
storage every node sees). The driver keeps off the accelerator (its JAX is pinned to the
CPU, :mod:`jaxlab.experiment.devices`): the GPUs are the workers'.

An interrupted search resumes with ``python -m jaxlab search data/<experiment>/``:
finished trials (complete, stopped early, failed) are kept, started ones continue from
their checkpoints, the rest run.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from jaxlab.analysis.report import is_run, write_experiment_report
from jaxlab.config.parse import SpecError
from jaxlab.experiment.devices import keep_off_accelerator
from jaxlab.experiment.plan import PLAN, ExperimentPlan, write_json
from jaxlab.experiment.raytune import (
    StatusCallback,
    check_resources,
    cluster_slots,
    init_ray,
    optuna_name,
    require_optuna,
)
from jaxlab.experiment.worker import tune_trainable
from jaxlab.lab.batching import batchable_keys
from jaxlab.logging.trackers import require_trackers
from jaxlab.runtime.errors import error_line
from jaxlab.runtime.lock import locked
from jaxlab.runtime.provenance import git_info, make_run_dir, versions
from jaxlab.spec import load_spec
from jaxlab.spec.schema import Spec
from jaxlab.spec.search import Dimension, parse_search, sample_settings


@dataclass
class ExperimentResult:
    exp_dir: Path
    summary: dict[str, Any]


def is_experiment_dir(path: str | Path) -> bool:
    return (Path(path) / PLAN).is_file()


def plan_groups(spec: Spec, dims: list[Dimension], count: int, slots: int) -> list[list[int]]:
    """Indices of the settings each Ray trial trains: singletons unless batching applies."""
    batch = spec.meta.search_batch
    keys = [d.key for d in dims]
    unbatched = batch == 1 or spec.meta.search_scheduler is not None
    if unbatched or not batchable_keys(spec.agent.algorithm.name, keys):
        return [[i] for i in range(count)]
    size = batch or math.ceil(count / max(slots, 1))
    return [list(range(i, min(i + size, count))) for i in range(0, count, size)]


def trial_status(folder: Path) -> str:
    """A trial folder's outcome: its summary's status ("diverged" if every session did),
    "error" with an ``error.txt``, else "stopped" (ended by the scheduler)."""
    summary = folder / "trial_summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        if s["sessions"] and len(s["diverged_sessions"]) == s["sessions"]:
            return "diverged"
        return s["status"]
    if error_line(folder) is not None:
        return "error"
    return "stopped" if folder.is_dir() else "pending"


class Experiment:
    """The driver: plan, Ray Tune runs, statuses, the final report."""

    def __init__(self, exp_dir: Path, plan: ExperimentPlan, quiet: bool = True) -> None:
        self.exp_dir, self.plan, self.quiet = exp_dir, plan, quiet
        self.spec = load_spec(exp_dir / "spec.yaml")
        self.dims = parse_search(self.spec.search)
        self.keys = [d.key for d in self.dims]  # the searched keys, in the spec's order
        self.stops: list[str] = []  # "SIGTERM" once one asked the search to stop

    def save(self) -> None:
        self.plan.save(self.exp_dir)

    def mark(self, name: str, status: str | None = None) -> None:
        """Record a finished trial's status and print one line about it."""
        status = status or trial_status(self.exp_dir / name)
        if status == "interrupted" or (status == "stopped" and self.interrupted()):
            return  # the driver is stopping: the trial resumes later
        self.plan.record_status(name, status)
        self.save()
        folder = self.exp_dir / name
        line = f"jaxlab: {name} {status}"
        if status == "error":
            why = error_line(folder)
            where = folder / "error.txt" if why else self.exp_dir / "tune"
            line += f": {why or 'the Ray trial failed before training'} (see {where})"
        elif (folder / "trial_summary.json").is_file():
            s = json.loads((folder / "trial_summary.json").read_text())
            if s["final_return_mean"] is not None:
                line += f": final return {s['final_return_mean']:.2f} ± {s['final_return_std']:.2f}"
        announce(line.removeprefix("jaxlab: "))

    def interrupted(self) -> bool:
        """Whether a trial that stopped early was stopped by the search stopping (SIGTERM
        seen, or no scheduler, which alone stops trials on purpose), not by ASHA. Tune ends
        the running trials gracefully when the search stops, so they look ASHA-stopped."""
        return bool(self.stops) or self.spec.meta.search_scheduler is None

    def run(self, address: str | None) -> ExperimentResult:
        import ray

        if not ray.is_initialized():
            init_ray(address, self.quiet)
            check_resources(self.plan.resources)
        main = threading.current_thread() is threading.main_thread()  # where signals go
        if main:
            previous = signal.signal(signal.SIGTERM, lambda *_: sigterm_as_sigint(self.stops))
        try:
            self.run_fixed()
            # Tune returns from fit() on SIGINT; unfinished planned trials mean we stop too
            if self.plan.search_alg == "optuna" and not self.plan.pending_planned():
                self.run_optuna()
        except KeyboardInterrupt:
            pass
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
            ray.shutdown()
        return self.finish(self.stops[0] if self.stops else None)

    def tuner(self, param_space: dict[str, Any], **tune_kw: Any) -> Any:
        from ray import tune

        res = self.plan.resources
        trainable = tune.with_resources(
            tune.with_parameters(tune_trainable, exp_dir=str(self.exp_dir), plan=self.plan),
            {"cpu": res["cpu"], "gpu": res["gpu"]},
        )
        return tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(**tune_kw),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(self.exp_dir.resolve()),
                verbose=0,
                callbacks=[StatusCallback(self.plan, self.keys, self.save, self.mark)],
            ),
        )

    def run_fixed(self) -> None:
        """Every planned group with an unfinished setting, as a grid over group ids."""
        from ray import tune

        todo = [
            g
            for g, names in enumerate(self.plan.groups)
            if any(n in self.plan.pending() for n in names)
        ]
        if not todo:
            return
        self.tuner({"group": tune.grid_search(todo)}, **self.scheduler_kw()).fit()

    def scheduler_kw(self) -> dict[str, Any]:
        sched = self.spec.meta.search_scheduler
        if sched is None:
            return {}
        from ray.tune.schedulers import ASHAScheduler

        # +1: a trial reaching its last frame is never "stopped" while it writes its summary
        max_t = self.spec.derived.total_frames + 1
        grace = sched.grace_frame or max_t // 8
        asha = ASHAScheduler(
            time_attr="frame",
            max_t=max_t,
            grace_period=max(grace, 1),
            reduction_factor=sched.reduction_factor,
        )
        return {"scheduler": asha, "metric": "return_mean", "mode": "max"}

    def run_optuna(self) -> None:
        """Optuna TPE suggests the settings not yet run, told about the finished ones."""
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no per-study chatter

        remaining = self.spec.meta.max_trial - len(self.plan.settings)
        if remaining <= 0:
            return
        points, rewards = [], []
        for name in self.plan.settings:
            score = final_score(self.exp_dir / name)
            if score is not None:
                points.append(self.plan.settings[name])
                rewards.append(score)
        searcher = OptunaSearch(
            metric="return_mean",
            mode="max",
            seed=self.spec.meta.random_seed,
            points_to_evaluate=points or None,
            evaluated_rewards=rewards or None,
        )
        offset = len(self.plan.settings)
        space = {d.key: d.to_tune() for d in self.dims}
        kw = self.scheduler_kw() or {"metric": "return_mean", "mode": "max"}
        tuner = self.tuner(
            space,
            search_alg=searcher,
            num_samples=remaining,
            trial_name_creator=lambda t: optuna_name(t, offset),
            **kw,
        )
        tuner.fit()

    def settle(self) -> dict[str, int]:
        """Record the outcome of trials that finished unseen (a trial Tune ended while
        stopping may have completed), save the plan; returns the count per status.

        While a signal stops the search, an ``error.txt`` that appeared unseen is the
        worker being torn down mid-save, not a faulty trial (real failures reach
        :meth:`mark` through Tune's callback as they happen): the trial resumes later.
        """
        outcomes = ("complete", "diverged") if self.stops else ("complete", "error", "diverged")
        for name in self.plan.settings:
            known = self.plan.status.get(name)
            if known in (None, "stopped") and (self.exp_dir / name).is_dir():
                status = trial_status(self.exp_dir / name)
                if status in outcomes:
                    self.plan.record_status(name, status)
        self.save()
        counts: dict[str, int] = {}
        for name in self.plan.settings:
            status = self.plan.status.get(name, "unfinished")
            counts[status] = counts.get(status, 0) + 1
        return counts

    def finish(self, stop_signal: str | None = None) -> ExperimentResult:
        """Statuses of the trials, the experiment report and summary (``stop_signal``:
        "SIGTERM" when one stopped the search)."""
        counts = self.settle()
        rows: list[dict[str, Any]] = []
        if any(is_run(p) and error_line(p) is None for p in self.exp_dir.iterdir()):
            rows = write_experiment_report(self.exp_dir, reuse=True)
        summary = {
            "spec_name": self.spec.name,
            "trials": len(self.plan.settings),
            "planned": self.plan.planned,
            "status_counts": counts,
            "unfinished": [n for n in self.plan.settings if n not in self.plan.status],
            "stop_signal": stop_signal,
            "best_trial": rows[0]["trial"] if rows else None,
            "best_score": rows[0]["score"] if rows else None,
            "table": rows,
        }
        write_json(self.exp_dir / "experiment_summary.json", summary)
        return ExperimentResult(self.exp_dir, summary)


def announce(text: str) -> None:
    """One ``jaxlab: ...`` progress line on stderr (stdout is the command's result)."""
    print(f"jaxlab: {text}", file=sys.stderr, flush=True)


def sigterm_as_sigint(stops: list[str]) -> None:
    """SIGTERM stops a search as Ctrl-C does: Tune's SIGINT handler ends the running trials
    at their last checkpoint and ``fit`` returns (``stops`` records the signal)."""
    stops.append("SIGTERM")
    os.kill(os.getpid(), signal.SIGINT)


def final_score(folder: Path) -> float | None:
    """A finished trial's mean final return (for Optuna's history), None if it has none."""
    path = folder / "trial_summary.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("final_return_mean")


def search(
    spec: Spec, *, root: str | Path = "data", address: str | None = None, quiet: bool = True
) -> ExperimentResult:
    """Run a new Experiment of ``spec`` (it must have a ``search`` block).

    This process only drives Ray workers: its JAX is pinned to the CPU
    (:func:`keep_off_accelerator`). Parsing ``spec`` starts JAX, so a caller that parses
    it should call that first; here it only warns if JAX already holds an accelerator.
    """
    keep_off_accelerator("the search driver")
    dims = parse_search(spec.search)
    if not dims:
        raise SpecError("search", "search mode needs a 'search' block of key__dist entries")
    require_trackers(spec.meta.loggers)  # here, not in every trial's worker
    if spec.meta.search_alg == "optuna":
        if any(d.is_grid for d in dims):
            raise SpecError("search", "grid_search keys cannot be used with search_alg: optuna")
        require_optuna()
    res = spec.meta.search_resources
    resources = {"cpu": res.cpu, "gpu": res.gpu}
    init_ray(address, quiet)  # Experiment.run keeps using this cluster
    check_resources(resources)
    slots = cluster_slots(resources)
    exp_dir = make_run_dir(spec, root)
    with locked(exp_dir):  # one writer per experiment folder (jaxlab.runtime.lock)
        return _start_search(spec, dims, exp_dir, slots, resources, address, quiet)


def _start_search(
    spec: Spec, dims: list[Dimension], exp_dir: Path, slots: int, resources: dict[str, Any],
    address: str | None, quiet: bool,
) -> ExperimentResult:  # fmt: skip
    """Plan a new Experiment in ``exp_dir`` and run it."""
    (exp_dir / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    settings: dict[str, dict[str, Any]] = {}
    groups: list[list[str]] = []
    planned = spec.meta.max_trial
    if spec.meta.search_alg == "random":
        drawn = sample_settings(dims, spec.meta.max_trial, spec.meta.random_seed)
        planned = len(drawn)
        settings = {f"trial_{i:03d}": s for i, s in enumerate(drawn)}
        names = list(settings)
        groups = [[names[i] for i in g] for g in plan_groups(spec, dims, len(drawn), slots)]
    git = git_info()
    plan = ExperimentPlan(
        spec_name=spec.name,
        search_alg=spec.meta.search_alg,
        resources=resources,
        planned=planned,
        settings=settings,
        groups=groups,
        status={},
        spec=spec.to_dict(),
        git_sha=git["sha"],
        git_dirty=git["dirty"],
        versions=versions(),
        started=datetime.now().isoformat(timespec="seconds"),
    )
    plan.save(exp_dir)
    batched = sum(len(g) > 1 for g in groups)
    announce(
        f"search {spec.name}: {planned} trials ({spec.meta.search_alg}"
        + (f", {len(groups)} Ray trials, {batched} batched" if groups else "")
        + f") in {exp_dir}"
    )
    return Experiment(exp_dir, plan, quiet).run(address)


def resume_search(
    exp_dir: str | Path, *, address: str | None = None, quiet: bool = True
) -> ExperimentResult:
    """Continue an interrupted Experiment: finished trials kept, the others run/resume
    (this process's JAX pinned to the CPU first, as in :func:`search`)."""
    keep_off_accelerator("the search driver")
    exp_dir = Path(exp_dir)
    with locked(exp_dir):  # one writer per experiment folder (jaxlab.runtime.lock)
        return _resume_search(exp_dir, address, quiet)


def _resume_search(exp_dir: Path, address: str | None, quiet: bool) -> ExperimentResult:
    plan = ExperimentPlan.load(exp_dir)
    if plan.search_alg == "optuna":
        require_optuna()
    exp = Experiment(exp_dir, plan, quiet)
    planned = plan.planned_names()
    for name in plan.pending():  # suggested (Optuna) trials cut short: resume them as planned
        if name not in planned:
            plan.add_group([name])
    exp.save()
    left = plan.pending()
    announce(f"resuming search {exp_dir}: {len(plan.status)} trials finished, {len(left)} to run")
    return exp.run(address)
