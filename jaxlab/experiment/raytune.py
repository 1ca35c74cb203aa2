"""Ray Tune glue for ``search``: a quiet embedded cluster (or an existing one), cluster
capacity, Optuna's availability, and the callback that records trial outcomes."""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Callable
from typing import Any

from jaxlab.config.parse import SpecError
from jaxlab.experiment.devices import idle_gpu_warning
from jaxlab.experiment.plan import ExperimentPlan
from jaxlab.logging.console import warn


def require_optuna() -> None:
    """A one-line error, before anything starts, when Optuna is asked for but missing."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise SpecError(
            "meta.search_alg",
            "optuna is not installed: pip install -e '.[optuna]' (or use search_alg: random)",
        ) from None


class ClusterError(RuntimeError):
    """The Ray cluster cannot be used: unreachable, refusing us, or too small."""


LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
PROBE_TIMEOUT_S = 5.0


def init_ray(address: str | None, quiet: bool) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``), else start an embedded local Ray, quietly
    (``address="local"`` also starts one: a benchmark uses it to run its Trials on Ray).

    The embedded Ray listens on 127.0.0.1 only, with Ray's token authentication on (Ray's
    default for a new local cluster): a search never exposes a cluster to the network.
    Ray binds its servers to loopback when its node address is 127.0.0.1, which it picks
    when ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine mode); the variable
    must be set before Ray is imported, and Ray's daemons inherit it. A cluster address
    is probed first (a TCP connect, 5 s), so a dead one fails in one line, not after
    minutes of Ray's reconnect warnings.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    embedded = address in (None, "local")  # "local": a new Ray here, as with no address
    if embedded:
        os.environ[LOOPBACK_ONLY] = "0"
    elif address != "auto":
        probe(address)
    import ray
    from ray._private import ray_constants

    if embedded:  # Ray imported earlier in this process: its constant is already read
        ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    kw: dict[str, Any] = {"log_to_driver": not quiet, "logging_level": logging.ERROR}
    if quiet:  # a failed trial's traceback is in its error.txt; the driver prints one line
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    if embedded:
        kw["include_dashboard"] = False
    with warnings.catch_warnings():  # Ray forks its daemons; the JAX threads are idle then
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        try:
            ray.init(address=address, **kw)
        except ray.exceptions.AuthenticationError:
            raise ClusterError(
                f"the Ray cluster at {address} uses token authentication: export "
                "RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN, or ~/.ray/auth_token from "
                "`ray get-auth-token`), then run the search again"
            ) from None
        except ConnectionError as err:
            raise ClusterError(f"cannot join the Ray cluster at {address}: {err}") from None


def probe(address: str) -> None:
    """Raise :class:`ClusterError` unless ``address`` (``[ray://]host[:port]``) accepts a
    TCP connection within :data:`PROBE_TIMEOUT_S`."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host:  # no port given: Ray's default GCS port
        host, port = port, "6379"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except (OSError, ValueError) as err:
        why = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise ClusterError(
            f"cannot reach a Ray cluster at {address} ({why}); start one with "
            "`ray start --head`, or leave out --address (and RAY_ADDRESS) to search locally"
        ) from None


def check_resources(resources: dict[str, float]) -> None:
    """Refuse, in one line, ``meta.search_resources`` that no node of the cluster has (Ray
    would wait forever for them); the embedded Ray is shut down first. Warns (one line)
    when the trials ask for no GPU on a cluster that has some."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(
        r.get("CPU", 0) >= resources["cpu"] and r.get("GPU", 0) >= resources["gpu"] for r in nodes
    ):
        message = idle_gpu_warning(resources, ray.cluster_resources().get("GPU", 0))
        if message:
            warn(message)
        return
    best = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    ray.shutdown()
    raise SpecError(
        "meta.search_resources",
        f"no Ray node has cpu {resources['cpu']:g} and gpu {resources['gpu']:g} for one trial "
        f"(the largest has cpu {best.get('CPU', 0):g}, gpu {best.get('GPU', 0):g}); "
        "no trial could ever start",
    )


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
