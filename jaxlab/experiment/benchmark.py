"""``benchmark`` mode: a suite of specs x seeds, each row a set of Trials, one results table.

``python -m jaxlab benchmark benchmarks/suites/classic.yaml`` reads the suite
(:mod:`jaxlab.spec.suite`; every Trial's spec is validated before anything is written) and
writes ``data/benchmark_<suite>_<timestamp>/``:

* ``suite.yaml`` (the suite file as read) and ``experiment.json``: the plan, with every
  Trial's resolved spec and status, rewritten as Trials finish (the ``search`` format);
* one folder per Trial, ``<label>__<env>__seed<random_seed>/``, in the ``train`` layout;
* ``benchmark.md``, ``benchmark.csv``, ``benchmark.json`` and ``graphs/``
  (:mod:`jaxlab.analysis.benchmark`), and ``benchmark_summary.json``.

Trials run one after another in this process, each with its seeds vmapped, under a bar
over the suite with each Trial's own bar beneath. With ``--address``/``RAY_ADDRESS``, or
several local GPUs, they run as Ray Tune trials instead (one CPU, and one GPU where the
cluster has any, each), exactly as ``search`` runs its trials, and this process then
keeps off the accelerator (its JAX pinned to the CPU). Either way a Trial that
raises is recorded (``error.txt``) and the rest go on; Ctrl-C or SIGTERM stops the
running Trial at a checkpoint, and ``python -m jaxlab benchmark data/benchmark_<...>/``
resumes: finished Trials are kept, started ones continue from their checkpoints.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from jaxlab.analysis.benchmark import write_benchmark_report
from jaxlab.experiment.devices import keep_off_accelerator
from jaxlab.experiment.driver import (
    Experiment,
    ExperimentResult,
    announce,
    sigterm_as_sigint,
    trial_status,
)
from jaxlab.experiment.plan import ExperimentPlan, write_json
from jaxlab.experiment.raytune import check_resources, init_ray
from jaxlab.logging.trackers import require_trackers
from jaxlab.runtime.errors import error_line, write_error
from jaxlab.runtime.lock import locked
from jaxlab.runtime.provenance import git_info, new_folder, versions
from jaxlab.spec.suite import Suite, load_suite

SUITE_FILE = "suite.yaml"
SUMMARY = "benchmark_summary.json"


def local_gpus() -> int:
    """GPUs on this machine, from ``nvidia-smi -L`` (0 without it): asked without JAX,
    which would reserve GPU memory in this driver process."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def distributed(address: str | None) -> bool:
    """Whether Trials go to Ray Tune: a cluster was named, or there are GPUs to spread over."""
    return bool(address or os.environ.get("RAY_ADDRESS")) or local_gpus() > 1


def keep_driver_off_accelerator(address: str | None) -> bool:
    """Pin this process's JAX to the CPU when its Trials run in Ray workers (before a
    suite's specs are read: that starts JAX); Trials run here keep the accelerator.
    Returns whether they go to Ray (:func:`distributed`)."""
    on_ray = distributed(address)
    if on_ray:
        keep_off_accelerator("the benchmark driver")
    return on_ray


class Benchmark(Experiment):
    """The driver of one benchmark folder: runs its pending Trials, then the report."""

    def __init__(
        self, exp_dir: Path, plan: ExperimentPlan, quiet: bool = True, progress: bool = False
    ) -> None:
        self.exp_dir, self.plan, self.quiet, self.progress = exp_dir, plan, quiet, progress
        self.keys: list[str] = []  # nothing is searched
        self.stops: list[str] = []

    def interrupted(self) -> bool:
        return True  # no scheduler: a Trial only stops early when the benchmark stops

    def scheduler_kw(self) -> dict[str, Any]:
        return {}

    def run(self, address: str | None) -> ExperimentResult:
        """Locally, one Trial after another, or on Ray Tune (:func:`distributed`)."""
        if not keep_driver_off_accelerator(address):
            return self.run_local()
        import ray

        init_ray(address, self.quiet)
        gpus = ray.cluster_resources().get("GPU", 0.0)
        self.plan.resources = {"cpu": 1.0, "gpu": 1.0 if gpus >= 1 else 0.0}
        check_resources(self.plan.resources)
        self.save()
        return super().run(address)

    def run_local(self) -> ExperimentResult:
        """The pending Trials one by one in this process; stops at the first interrupt."""
        from tqdm import tqdm

        main = threading.current_thread() is threading.main_thread()  # where signals go
        if main:
            previous = signal.signal(signal.SIGTERM, lambda *_: sigterm_as_sigint(self.stops))
        todo = self.plan.pending()
        bar = tqdm(
            total=len(self.plan.settings),
            initial=len(self.plan.settings) - len(todo),
            desc=f"benchmark {self.plan.spec_name}",
            unit="trial",
            disable=not self.progress,
        )
        try:
            for name in todo:
                bar.set_postfix_str(name)
                if not self.run_trial(name):
                    break
                bar.update()
        except KeyboardInterrupt:
            self.stops = self.stops or ["SIGINT"]
        finally:
            bar.close()
            if main:
                signal.signal(signal.SIGTERM, previous)
        return self.finish(self.stops[0] if self.stops else None)

    def run_trial(self, name: str) -> bool:
        """Train (or resume) one Trial and record it; False when it was interrupted."""
        from jaxlab.experiment.worker import run_group

        folder = self.exp_dir / name
        try:
            run_group(self.exp_dir, [name], [{}], self.plan.specs[name], progress=self.progress)
        except Exception as err:  # noqa: BLE001 - the Trial fails, the suite goes on
            if error_line(folder) is None:  # run_group records what it catches itself
                write_error(folder, err)
        status = trial_status(folder)
        self.mark(name, status)
        if status == "interrupted":
            self.stops = self.stops or [self.stop_signal_of(name)]
            return False
        return True

    def stop_signal_of(self, name: str) -> str:
        summary = json.loads((self.exp_dir / name / "trial_summary.json").read_text())
        return summary.get("stop_signal") or "SIGINT"

    def finish(self, stop_signal: str | None = None) -> ExperimentResult:
        """Statuses, the benchmark report (over the finished Trials) and the summary."""
        counts = self.settle()
        report = write_benchmark_report(self.exp_dir, self.plan)
        summary = {
            "suite": self.plan.spec_name,
            "trials": len(self.plan.settings),
            "status_counts": counts,
            "unfinished": [n for n in self.plan.settings if n not in self.plan.status],
            "failed": [n for n, s in self.plan.status.items() if s == "error"],
            "stop_signal": stop_signal,
            "out_of_band": report["out_of_band"],
            "rows": report["rows"],
            "aggregate": report["aggregate"],
        }
        write_json(self.exp_dir / SUMMARY, summary)
        return ExperimentResult(self.exp_dir, summary)


def is_benchmark_dir(path: str | Path) -> bool:
    return (Path(path) / SUITE_FILE).is_file() and (Path(path) / "experiment.json").is_file()


def new_plan(suite: Suite) -> ExperimentPlan:
    """The plan of a new benchmark: one single-Trial group per Trial, in suite order."""
    git = git_info()
    names = [t.name for t in suite.trials]
    return ExperimentPlan(
        spec_name=suite.name,
        search_alg="benchmark",
        resources={"cpu": 1.0, "gpu": 1.0 if local_gpus() else 0.0},
        planned=len(names),
        settings={
            t.name: {"label": t.label, "env": t.env, "random_seed": t.random_seed}
            for t in suite.trials
        },
        groups=[[n] for n in names],
        status={},
        spec=suite.raw,
        git_sha=git["sha"],
        git_dirty=git["dirty"],
        versions=versions(),
        started=datetime.now().isoformat(timespec="seconds"),
        specs={t.name: t.spec.to_dict() for t in suite.trials},
    )


def benchmark(
    suite_path: str | Path,
    *,
    root: str | Path = "data",
    address: str | None = None,
    shrink: bool = False,
    quiet: bool = True,
    progress: bool = False,
) -> ExperimentResult:
    """Run a new benchmark of the suite file ``suite_path`` (``shrink``: every Trial at
    the ``--shrink`` smoke-test scale)."""
    keep_driver_off_accelerator(address)  # first: reading the suite starts JAX
    suite = load_suite(suite_path, shrink=shrink)  # a bad suite stops here, nothing written
    for trial in suite.trials:  # a tracker's missing package too, not in every Trial
        require_trackers(trial.spec.meta.loggers, f"{trial.name}: meta.loggers")
    plan = new_plan(suite)
    exp_dir = new_folder(f"benchmark_{suite.name}", root)
    with locked(exp_dir):  # one writer per folder (jaxlab.runtime.lock)
        (exp_dir / SUITE_FILE).write_text(yaml.safe_dump(suite.raw, sort_keys=False))
        plan.save(exp_dir)
        announce(f"benchmark {suite.name}: {len(suite.trials)} Trials in {exp_dir}")
        return Benchmark(exp_dir, plan, quiet, progress).run(address)


def resume_benchmark(
    exp_dir: str | Path, *, address: str | None = None, quiet: bool = True, progress: bool = False
) -> ExperimentResult:
    """Continue a stopped benchmark: finished Trials kept, the others run or resume."""
    exp_dir = Path(exp_dir)
    keep_driver_off_accelerator(address)
    with locked(exp_dir):
        plan = ExperimentPlan.load(exp_dir)
        left = len(plan.pending())
        announce(f"resuming benchmark {exp_dir}: {len(plan.status)} Trials finished, {left} to run")
        return Benchmark(exp_dir, plan, quiet, progress).run(address)
