"""Ray Tune glue for ``search``: a quiet embedded cluster (or an existing one), cluster
capacity, Optuna's availability, and the callback that records trial outcomes."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

from jaxlab.config.parse import SpecError
from jaxlab.experiment.plan import ExperimentPlan


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


def StatusCallback(  # noqa: N802 - builds a tune.Callback lazily
    plan: ExperimentPlan,
    keys: list[str],
    save: Callable[[], None],
    mark: Callable[[str, str | None], None],
) -> Any:
    """A Tune callback that records each Ray trial's settings in ``plan`` (Optuna's, the
    searched ``keys`` of its config, as they start, then ``save()``) and calls
    ``mark(name, status)`` for every setting it trained when it completes (status None:
    read from its folder) or fails ("error")."""
    from ray import tune

    class Callback(tune.Callback):
        def names(self, trial: Any) -> list[str]:
            if "group" in trial.config:
                return plan.group(trial.config["group"])
            name = trial.custom_trial_name or str(trial)
            plan.add_setting(name, {k: trial.config[k] for k in keys})
            return [name]

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if "group" not in trial.config:  # record a suggested setting before it runs
                self.names(trial)
                save()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            for name in self.names(trial):
                mark(name, None)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            for name in self.names(trial):
                mark(name, "error")

    return Callback()
