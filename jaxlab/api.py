"""The public Python API: what ``python -m jaxlab`` does, as functions for notebooks and
scripts. The CLI (:mod:`jaxlab.cli`) only parses arguments and calls these::

    import jaxlab

    spec = jaxlab.load_spec("specs/ppo/ppo_cartpole.yaml", {"meta.max_session": 2})
    run = jaxlab.train(spec)                     # data/ppo_cartpole_<timestamp>/
    run.final_return, run.metrics[0]["return"]   # the summary's mean, session 0's curve

:func:`train`, :func:`resume`, :func:`search` and :func:`enjoy` write the same folders as
the CLI modes of the same names and return what the CLI prints from: a :class:`Run` (run
folder, ``trial_summary.json``, each session's ``metrics.csv`` rows as arrays, final state), a
:class:`SearchResult`, or ``enjoy``'s record. Progress bars are off unless
``progress=True``. Spec problems raise :class:`~jaxlab.spec.SpecError`, checkpoint
problems :class:`~jaxlab.runtime.checkpoint.CheckpointError`, misuse :class:`UsageError`.

jax, Ray and matplotlib are imported inside the functions that need them, so that
``import jaxlab.api`` (and ``python -m jaxlab --help``, which imports it) stays fast and
leaves the accelerator alone until something runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from jaxlab.spec import Spec, SpecError, spec_from_dict
from jaxlab.spec import load_spec as _load_spec
from jaxlab.spec.load import Overrides, override_strings
from jaxlab.spec.smoke import shrunk

__all__ = [
    "Run",
    "SearchResult",
    "Spec",
    "SpecError",
    "UsageError",
    "benchmark",
    "enjoy",
    "load_spec",
    "plot",
    "report",
    "resume",
    "search",
    "shrunk",
    "train",
    "use_compile_cache",
]


class UsageError(ValueError):
    """A call that cannot be carried out as asked: :func:`search` given a folder that is
    not an experiment, or overrides with an experiment to resume."""


@dataclass(frozen=True, eq=False, repr=False)
class Run:
    """A Trial's results: what ``train``/``resume`` wrote, read back.

    ``metrics[k]`` is session ``k``'s rows of ``metrics.csv`` as column -> float array (one entry
    per log point; empty cells, such as ``eval_return_mean`` off evaluation points, are
    NaN). ``state`` is the final Trial state (leaves ``[sessions, ...]``), None for a run
    read from disk with :meth:`load`.
    """

    run_dir: Path
    summary: dict[str, Any]
    metrics: tuple[dict[str, np.ndarray], ...]
    state: Any = None

    def __repr__(self) -> str:  # the metrics and state are too long to print
        status, sessions = self.summary.get("status"), len(self.metrics)
        ret = self.final_return
        return f"Run({str(self.run_dir)!r}, {status}, final_return={ret}, sessions={sessions})"

    @property
    def final_return(self) -> float | None:
        """The mean final return over the healthy sessions (None if no episode ended)."""
        return self.summary["final_return_mean"]

    @classmethod
    def load(cls, run_dir: str | Path, state: Any = None) -> Run:
        """Read a run folder (``trial_summary.json`` and its ``metrics.csv``)."""
        from jaxlab.logging.table import read_curves

        run_dir = Path(run_dir)
        summary_path = run_dir / "trial_summary.json"
        if not summary_path.is_file():
            raise FileNotFoundError(f"{run_dir} has no trial_summary.json (not a finished run)")
        summary = json.loads(summary_path.read_text())
        metrics = tuple(read_curves(run_dir, len(summary.get("final_return_per_session") or ())))
        return cls(run_dir, summary, metrics, state)


@dataclass(frozen=True, eq=False)
class SearchResult:
    """An Experiment's folder and ``experiment_summary.json`` contents (``table``: one row
    per trial, best first)."""

    exp_dir: Path
    summary: dict[str, Any]


# Where compiled programs persist between runs: a path, or off/0/false/no to disable.
CACHE_ENV = "JAXLAB_XLA_CACHE"
CACHE_MAX_BYTES = 2 << 30  # least recently used programs are evicted past this


def use_compile_cache(environ: Mapping[str, str] | None = None) -> Path | None:
    """Keep compiled XLA programs on disk, so running a spec again (a rerun, a resume,
    ``enjoy``, the same shapes with another seed) loads them instead of compiling.

    The directory is ``$JAXLAB_XLA_CACHE``, else ``$XDG_CACHE_HOME/jaxlab/xla`` (default
    ``~/.cache/jaxlab/xla``); ``JAXLAB_XLA_CACHE=off`` disables it, and a cache the user
    set up for JAX (``JAX_COMPILATION_CACHE_DIR``) is left alone. A loaded program is the
    one XLA would compile (the key covers the program, options and versions), so results
    do not change. Returns the directory in use, or None. The CLI calls it for ``train``,
    ``dev``, ``enjoy`` and ``benchmark`` (a seed after the first loads its row's programs); the API leaves it to the caller, as it sets jax's config.
    """
    env = os.environ if environ is None else environ
    if env.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    choice = env.get(CACHE_ENV, "").strip()
    if choice.lower() in ("off", "0", "false", "no"):
        return None
    home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(choice).expanduser() if choice else home / "jaxlab" / "xla"
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    return path


def load_spec(path: str | Path, overrides: Overrides = None, *, shrink: bool = False) -> Spec:
    """Read, resolve and validate the YAML spec at ``path`` into a frozen :class:`Spec`.

    ``overrides``: ``{"env.max_frame": 20_000}`` or ``["env.max_frame=2e4"]`` (as ``-s``);
    ``shrink=True`` gives the tiny smoke-test scale of ``--shrink``. Raises SpecError.
    """
    return _load_spec(path, overrides, shrink=shrink)


def _as_spec(spec: Spec | str | Path, overrides: Overrides, shrink: bool) -> Spec:
    if not isinstance(spec, Spec):
        return load_spec(spec, overrides, shrink=shrink)
    sets = override_strings(overrides)
    if sets:  # a Spec's dict is its saved spec.yaml, which reads back to the same Spec
        spec = spec_from_dict(spec.to_dict(), sets)
    return shrunk(spec, sets) if shrink else spec


def _warn_if_rerun(path: str | Path) -> None:
    """Warn when ``path`` is a saved run's ``spec.yaml`` and the code changed since."""
    from jaxlab.logging.console import warn
    from jaxlab.runtime.resume import code_change_warning, saved_run_of

    run = saved_run_of(path)
    if run is not None:  # re-running a saved spec: is this the code that made it?
        prov = json.loads((run / "provenance.json").read_text())
        message = code_change_warning(prov, run, "this rerun")
        if message:
            warn(message)


def _run_of(result: Any) -> Run:
    """A :class:`Run` from the runtime's RunResult (its summary is trial_summary.json's)."""
    return dataclasses.replace(Run.load(result.run_dir), state=result.state)


def train(
    spec: Spec | str | Path,
    data: str | Path = "data",
    *,
    overrides: Overrides = None,
    shrink: bool = False,
    dev: bool = False,
    progress: bool = False,
    report: bool = True,
) -> Run:
    """Train one Trial (``python -m jaxlab train``) into a new ``<data>/<name>_<time>/``.

    ``spec``: a :class:`Spec` or a YAML path (``overrides``/``shrink`` as in
    :func:`load_spec`). ``dev=True`` is ``dev`` mode: shrunk, with finite losses and
    moving parameters asserted (raises ``DevCheckError``). ``report=False`` skips the
    end-of-run metrics and graphs. A run stopped by SIGINT/SIGTERM returns with
    ``summary["status"] == "interrupted"``; :func:`resume` continues it.
    """
    resolved = _as_spec(spec, overrides, shrink or dev)
    if not isinstance(spec, Spec):
        _warn_if_rerun(spec)
    from jaxlab.runtime.run import train as train_trial

    result = train_trial(resolved, root=data, dev=dev, progress=progress, report=report)
    return _run_of(result)


def resume(run_dir: str | Path, *, progress: bool = False, report: bool = True) -> Run:
    """Continue a stopped run from its latest good checkpoint to the end of its spec
    (``python -m jaxlab train data/<run>/``); a finished run is returned as it is."""
    from jaxlab.runtime.resume import resume as resume_trial

    return _run_of(resume_trial(run_dir, progress=progress, report=report))


def search(
    spec: Spec | str | Path,
    data: str | Path = "data",
    *,
    overrides: Overrides = None,
    shrink: bool = False,
    address: str | None = None,
) -> SearchResult:
    """Run an Experiment on Ray Tune (``python -m jaxlab search``): one Trial per setting
    of the spec's ``search`` block, in a new ``<data>/<name>_<time>/``.

    ``spec``: a :class:`Spec`, a YAML path, or an experiment folder to resume (finished
    trials kept, the others run). ``address``: an existing Ray cluster (default
    ``$RAY_ADDRESS``, else a local one).
    """
    from jaxlab.experiment import driver

    driver.keep_off_accelerator("the search driver")  # before _as_spec: parsing starts JAX
    if not isinstance(spec, Spec) and Path(spec).is_dir():
        if not driver.is_experiment_dir(spec):
            raise UsageError(f"{spec} is not an experiment (no experiment.json)")
        if overrides or shrink:
            raise UsageError("overrides and shrink cannot be used when resuming an experiment")
        result = driver.resume_search(spec, address=address)
    else:
        resolved = _as_spec(spec, overrides, shrink)
        result = driver.search(resolved, root=data, address=address)
    return SearchResult(Path(result.exp_dir), result.summary)


def benchmark(
    suite: str | Path,
    data: str | Path = "data",
    *,
    shrink: bool = False,
    address: str | None = None,
    progress: bool = False,
) -> SearchResult:
    """Run a benchmark suite (``python -m jaxlab benchmark``): each row of the suite file a
    Trial per random seed, then ``benchmark.md``/``.csv``/``.json`` and graphs, in a new
    ``<data>/benchmark_<suite>_<time>/`` (:mod:`jaxlab.experiment.benchmark`).

    ``suite``: a suite YAML, or a benchmark folder to resume (finished Trials kept).
    ``shrink``: every Trial at the ``--shrink`` smoke-test scale. ``address``: a Ray
    cluster to spread the Trials over (default ``$RAY_ADDRESS``; without one they run
    here, one after another). The summary is ``benchmark_summary.json``.
    """
    from jaxlab.experiment import benchmark as bench

    if Path(suite).is_dir():
        if not bench.is_benchmark_dir(suite):
            raise UsageError(f"{suite} is not a benchmark folder (no suite.yaml/experiment.json)")
        if shrink:
            raise UsageError("shrink cannot be used when resuming a benchmark")
        result = bench.resume_benchmark(suite, address=address, progress=progress)
    else:
        result = bench.benchmark(
            suite, root=data, address=address, shrink=shrink, progress=progress
        )
    return SearchResult(Path(result.exp_dir), result.summary)


def enjoy(
    run_dir: str | Path,
    *,
    session: int = 0,
    episodes: int = 10,
    checkpoint: str | int = "best",
    render: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Play ``episodes`` episodes of ``session``'s deterministic policy from a checkpoint
    of ``run_dir`` (``best``, ``latest`` or a frame number), read-only
    (``python -m jaxlab enjoy``). Returns the record saved under ``run_dir/enjoy/``
    (``returns``, ``return_mean``, ``gif``...)."""
    from jaxlab.tools.enjoy import enjoy as play

    return play(
        run_dir,
        session=session,
        episodes=episodes,
        checkpoint=str(checkpoint),
        render=render,
        seed=seed,
    )


def report(path: str | Path, *, plots: bool = True) -> dict[str, Any] | list[dict[str, Any]]:
    """Rebuild a run's metrics (``trial_metrics.json``, returned) and graphs from its CSVs,
    an experiment's table (its rows returned, best first) and per-trial reports, or a
    benchmark's ``benchmark.md``/``.csv``/``.json`` and graphs (the ``benchmark.json``
    mapping returned) (``python -m jaxlab report``). Raises FileNotFoundError for
    anything else."""
    from jaxlab.analysis.report import is_run, write_experiment_report, write_report
    from jaxlab.experiment.benchmark import is_benchmark_dir

    path = Path(path)
    if is_run(path):
        return write_report(path, plots=plots)
    if is_benchmark_dir(path):
        from jaxlab.analysis.benchmark import write_benchmark_report
        from jaxlab.experiment.plan import ExperimentPlan

        return write_benchmark_report(path, ExperimentPlan.load(path))
    return write_experiment_report(path, plots=plots)


def plot(
    runs: Sequence[str | Path], *, out: str | Path | None = None, title: str | None = None
) -> Path:
    """Overlay the trial curves of several runs in one PNG (``python -m jaxlab plot``);
    returns its path (default ``data/plots/compare_<time>.png``)."""
    from jaxlab.analysis.plots import plot_comparison
    from jaxlab.analysis.report import load_run

    loaded = [load_run(r) for r in runs]
    names = [r["spec"]["name"] for r in loaded]
    labels = [
        n if names.count(n) == 1 else f"{n} ({r['dir'].name})"
        for n, r in zip(names, loaded, strict=True)
    ]
    out = Path(out or f"data/plots/compare_{datetime.now():%Y_%m_%d_%H%M%S}.png")
    title = title or " vs ".join(dict.fromkeys(names))
    curves = [r["sessions"] for r in loaded]
    plot_comparison(list(zip(labels, curves, strict=True)), out, title=title)
    return out
