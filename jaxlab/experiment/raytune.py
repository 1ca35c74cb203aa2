"""Ray Tune glue for ``search``: a quiet embedded cluster (or an existing one), cluster
capacity, Optuna's availability, and the callback that records trial outcomes."""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from jaxlab.config.parse import SpecError

if TYPE_CHECKING:
    from jaxlab.experiment.driver import Experiment


def require_optuna() -> None:
    """A one-line error, before anything starts, when Optuna is asked for but missing."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise SpecError(
            "meta.search_alg",
            "optuna is not installed: pip install -e '.[optuna]' (or use search_alg: random)",
        ) from None


def init_ray(address: str | None, quiet: bool) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``), else start an embedded local Ray, quietly."""
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    address = address or os.environ.get("RAY_ADDRESS") or None
    kw: dict[str, Any] = {"log_to_driver": not quiet, "logging_level": logging.ERROR}
    if address is None:
        kw["include_dashboard"] = False
    with warnings.catch_warnings():  # Ray forks its daemons; the JAX threads are idle then
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        ray.init(address=address, **kw)


def cluster_slots(resources: dict[str, float]) -> int:
    """How many Ray trials with ``resources`` the cluster runs at once."""
    import ray

    total = ray.cluster_resources()
    slots = int(total.get("CPU", 1) // resources["cpu"])
    if resources["gpu"]:
        slots = min(slots, int(total.get("GPU", 0) // resources["gpu"]))
    return max(slots, 1)


def optuna_name(trial: Any, offset: int) -> str:
    """``trial_<n>`` for Tune's n-th suggested trial (its tag starts with the counter)."""
    return f"trial_{offset + int(str(trial.experiment_tag).split('_')[0]) - 1:03d}"


def StatusCallback(exp: Experiment) -> Any:  # noqa: N802 - builds a tune.Callback lazily
    """A Tune callback that records each Ray trial's settings (Optuna's, as they start) and
    marks the outcome of every setting it trained when it completes or fails."""
    from ray import tune

    class Callback(tune.Callback):
        def names(self, trial: Any) -> list[str]:
            if "group" in trial.config:
                return exp.plan["groups"][trial.config["group"]]
            name = trial.custom_trial_name or str(trial)
            keys = [d.key for d in exp.dims]
            exp.plan["settings"].setdefault(name, {k: trial.config[k] for k in keys})
            return [name]

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if "group" not in trial.config:  # record a suggested setting before it runs
                self.names(trial)
                exp.save()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            for name in self.names(trial):
                exp.mark(name)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            for name in self.names(trial):
                exp.mark(name, "error")

    return Callback()
