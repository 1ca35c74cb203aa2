"""The algorithm registry and the protocol the lab relies on.

An algorithm registers, under its spec name (``agent.algorithm.name``):

* ``config_cls``: a frozen :class:`~jaxlab.algorithms.skeleton.AlgorithmConfig` parsed
  from ``agent.algorithm``; its tunable fields (:func:`jaxlab.config.tunable.tunable`)
  are the numbers it reads into ``state.hyper``;
* ``make(spec, env=None) -> Agent``: the agent for one session;
* ``hyper_sections``: the other spec sections whose tunable numbers it reads into
  ``state.hyper`` (``agent.net``: learning rate, its schedule's end, grad clip;
  ``agent.memory``: prioritized replay's numbers). Search batches settings that differ
  only in these keys (:func:`jaxlab.lab.batching.hyper_keys`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import jax

from jaxlab.config.parse import SpecError, did_you_mean
from jaxlab.envs import Env

if TYPE_CHECKING:  # type-only: the spec schema composes the algorithms' configs
    pass

EPISODE_METRICS = ("ep_return_sum", "ep_length_sum", "ep_count")
# Non-scalar metrics: samples for TensorBoard histograms, kept from the chunk's last update.
SAMPLE_METRICS = ("actions",)
HYPER_SECTIONS = ("agent.net", "agent.memory")


class Agent(Protocol):
    """One session's algorithm, pure and unbatched; the Session scans ``update`` and the
    Trial vmaps it over seeds.

    ``init(key) -> state``; ``update(state) -> (state, metrics)``. The state is a pytree
    with ``params`` (trainable parameters), ``key`` (the session's PRNG key) and ``hyper``
    (the tunable numbers, array leaves) that ``hyper()`` builds from the spec.
    ``policy(state, obs [N, obs_dim], key, deterministic)`` gives env actions (greedy/mean
    when deterministic), for evaluation and ``enjoy``. Optionally ``value(state, obs) ->
    [N]``, the estimate of the state's value under the policy (``V``, ``max_a Q`` or
    ``E_pi Q``), which the conformance suite checks on probe envs.

    ``metrics`` carries ``ep_return_sum``, ``ep_length_sum`` and ``ep_count`` (sums over
    the episodes that ended during the update) beside the algorithm's own scalars, and may
    carry ``actions``: env 0's actions in the rollout, ``[T]`` or ``[T, A]``, for a
    TensorBoard histogram.
    """

    env: Env

    def hyper(self) -> Any: ...

    def init(self, key: jax.Array) -> Any: ...

    def update(self, state: Any) -> tuple[Any, dict[str, jax.Array]]: ...

    def policy(
        self, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool = True
    ) -> jax.Array: ...


@dataclass(frozen=True)
class AlgorithmEntry:
    name: str
    config_cls: type
    make: Callable[..., Agent]
    hyper_sections: tuple[str, ...] = ()


_REGISTRY: dict[str, AlgorithmEntry] = {}


def register(
    name: str,
    config_cls: type,
    make: Callable[..., Agent],
    hyper_sections: tuple[str, ...] = ("agent.net",),
) -> None:
    """Register an algorithm under its spec name (``agent.algorithm.name``)."""
    if name in _REGISTRY:
        raise ValueError(f"algorithm {name!r} is already registered")
    unknown = set(hyper_sections) - set(HYPER_SECTIONS)
    if unknown:
        raise ValueError(f"{name}: unknown hyper sections {sorted(unknown)}")
    _REGISTRY[name] = AlgorithmEntry(name, config_cls, make, tuple(hyper_sections))


def get_algorithm(name: Any, path: str = "agent.algorithm.name") -> AlgorithmEntry:
    if not isinstance(name, str) or name not in _REGISTRY:
        known = ", ".join(registered())
        hint = did_you_mean(str(name), _REGISTRY) or f" (known: {known})"
        raise SpecError(path, f"unknown algorithm {name!r}{hint}")
    return _REGISTRY[name]


def registered() -> list[str]:
    return sorted(_REGISTRY)


__all__ = [
    "EPISODE_METRICS",
    "HYPER_SECTIONS",
    "SAMPLE_METRICS",
    "Agent",
    "AlgorithmEntry",
    "get_algorithm",
    "register",
    "registered",
]
