"""What one Ray Tune trial of a ``search`` runs: a group of settings, trained or resumed.

A group is one setting (one Trial) or, with trial batching, K settings trained as one
compiled program (:func:`jaxlab.runtime.run.train_batch`). Each setting writes its own folder
``<experiment>/<trial name>/`` in the ``train`` layout. A setting whose spec is invalid
gets ``error.txt`` and the rest of its group still trains; an exception while training
writes ``error.txt`` into every folder of the group and fails the Ray trial. After every
chunk the group reports ``return_mean`` (the best mean return among its settings) and
``frame`` to Tune, which drives the ASHA scheduler and the Optuna searcher.

Each setting's report is its metrics and trial graph, without session graphs: an
experiment of many Trials would spend a second or two of host time on each session's
(``python -m jaxlab report <trial folder>`` draws them).
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxlab.experiment.devices import memory_fraction
from jaxlab.experiment.plan import ExperimentPlan
from jaxlab.memory.cards import visible_card_bytes
from jaxlab.runtime.errors import write_error
from jaxlab.spec.schema import Spec, parse_spec
from jaxlab.spec.search import apply_setting


def trial_spec(resolved: dict[str, Any], setting: dict[str, Any]) -> Spec:
    """The ready-to-run spec of one setting (the experiment's spec, search block dropped)."""
    return parse_spec(apply_setting(resolved, setting))


def setup_worker(resources: dict[str, float], cache_dir: Path | None) -> None:
    """Device settings for a fresh Ray worker, before JAX starts its backend.

    No GPU asked: JAX stays on the CPU (it never grabs GPU memory). A GPU fraction < 1:
    JAX may use that share of the card's memory less 1 GiB for this process's CUDA
    context (:func:`jaxlab.experiment.devices.memory_fraction`; the card's size from
    nvidia-smi, as JAX's own would start the backend first), so trials sharing it fit.
    Compiled programs are shared between the experiment's workers through a persistent
    cache.
    """
    import jax

    gpu = float(resources.get("gpu", 0.0))
    if gpu == 0:
        jax.config.update("jax_platforms", "cpu")
    elif gpu < 1:
        fraction = memory_fraction(gpu, visible_card_bytes())
        os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.3f}"
    if cache_dir is not None:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def make_reporter(report: Any) -> Any:
    """An ``on_chunk`` hook that sends the group's progress to ``report`` (tune.report).

    Tune ends a trial that its scheduler stops by raising ``SystemExit`` inside
    ``report``; the hook turns that into a clean early stop (checkpoint, summary).
    """

    def hook(chunk: int, frame: int, returns: list[np.ndarray]) -> bool:
        means = [float(np.nanmean(r)) if np.isfinite(r).any() else math.nan for r in returns]
        finite = [m for m in means if math.isfinite(m)]
        try:
            report({"return_mean": max(finite) if finite else math.nan, "frame": frame})
        except SystemExit:
            return True
        return False

    return hook


def run_group(
    exp_dir: Path,
    names: list[str],
    settings: list[dict[str, Any]],
    resolved: dict[str, Any],
    *,
    report: Any = None,
    progress: bool = False,
) -> None:
    """Train (or resume) the settings ``names``, each into ``exp_dir/<name>``.

    A folder holding a checkpoint is resumed from it (:func:`jaxlab.runtime.resume.resume`). The
    outcome of each is on disk: ``trial_summary.json`` or ``error.txt``.
    """
    # Imported here, not at the top: importing the Trial starts JAX's backend, which must
    # wait for setup_worker's device settings in a fresh Ray worker (no import cycle).
    from jaxlab.runtime.resume import is_run_dir, resume
    from jaxlab.runtime.run import train_batch

    hook = make_reporter(report) if report is not None else None
    specs, todo = [], []
    for name, setting in zip(names, settings, strict=True):
        folder = exp_dir / name
        try:
            spec = trial_spec(resolved, setting)
        except Exception as err:  # noqa: BLE001 - a bad sample fails its trial, not the group
            write_error(folder, err)
            continue
        if is_run_dir(folder) and any((folder / "checkpoints").glob("[0-9]*")):
            try:
                resume(folder, progress=progress, session_graphs=0, on_chunk=hook)
            except Exception as err:  # noqa: BLE001
                record_failure([folder], err)
            continue
        if folder.exists():  # started but killed before its first checkpoint: redo it
            aside = exp_dir / ".partial" / f"{name}_{time.strftime('%Y%m%d_%H%M%S')}"
            aside.parent.mkdir(exist_ok=True)
            folder.rename(aside)
        specs.append(spec)
        todo.append(name)
    if not todo:
        return
    try:
        train_batch(
            specs, run_dirs=[exp_dir / n for n in todo], progress=progress, session_graphs=0,
            on_chunk=hook,
        )  # fmt: skip
    except Exception as err:
        record_failure([exp_dir / n for n in todo], err)
        raise


def record_failure(folders: list[Path], err: Exception) -> None:
    """Write ``err`` to each folder's ``error.txt``, unless this worker is exiting: when a
    search stops (Ctrl-C, SIGTERM), Tune ends its workers, and the training thread then
    fails on the interpreter's shutdown (no new futures for Orbax's save). That trial was
    interrupted, not faulty: it resumes from its checkpoints."""
    if not threading.main_thread().is_alive():  # the main thread has finished: shutdown
        return
    for folder in folders:
        write_error(folder, err)


def tune_trainable(config: dict[str, Any], exp_dir: str, plan: ExperimentPlan) -> None:
    """The Ray Tune function trainable: one group of a fixed plan (``config["group"]``; a
    benchmark's groups are single Trials) or one searcher-suggested setting (``config`` =
    dotted key -> value)."""
    from ray import tune

    exp = Path(exp_dir)
    setup_worker(plan.resources, exp / ".xla_cache")
    if plan.specs:  # a benchmark: the Trial's own resolved spec, as it is
        names = plan.group(config["group"])
        run_group(exp, names, [{}], plan.specs[names[0]], report=tune.report)
        return
    if "group" in config:
        names = plan.group(config["group"])
        settings = [plan.settings[n] for n in names]
    else:
        names = [tune.get_context().get_trial_name()]
        settings = [{k: v for k, v in config.items()}]
    run_group(exp, names, settings, plan.spec, report=tune.report)
