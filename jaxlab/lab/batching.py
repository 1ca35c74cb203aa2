"""Trial batching: K hyperparameter settings x S seeds as one compiled program.

Every number that does not fix a shape lives in the state's ``hyper`` leaves
(:func:`hyper_keys`: the tunable fields of the algorithm's config and of the sections it
reads, :mod:`jaxlab.config.tunable`), so settings that differ only there run through the *same*
compiled chunk: the Trial's session axis becomes K*S rows, rows ``k*S..(k+1)*S-1``
holding setting k's S seeds (the same session keys for every setting) and setting k's
``hyper``. Nothing else about the program changes, so a batched Trial writes what the
unbatched one writes (up to float rounding: XLA may pick other kernels for a batch of
K*S than for S, so results agree to ~1e-6 relative, not always bit for bit).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.algorithms import get_algorithm
from jaxlab.config.parse import varied_keys
from jaxlab.config.tunable import tunable_paths
from jaxlab.spec.schema import MemorySpec, NetSpec, Spec

SECTION_CONFIGS = {"agent.net": NetSpec, "agent.memory": MemorySpec}


class NotBatchable(ValueError):
    """Specs that cannot share one compiled program (they differ in a static key)."""


def hyper_keys(algorithm: str) -> tuple[str, ...]:
    """The spec keys whose values ``algorithm`` reads only into ``state.hyper``: the
    tunable fields of its config and of its ``hyper_sections``."""
    entry = get_algorithm(algorithm)
    keys = tunable_paths(entry.config_cls, "agent.algorithm")
    for section in entry.hyper_sections:
        keys += tunable_paths(SECTION_CONFIGS[section], section)
    return keys


def static_differences(specs: list[Spec]) -> list[str]:
    """Dotted keys that differ between ``specs`` and are *not* hyper keys (sorted)."""
    hyper = hyper_keys(specs[0].agent.algorithm.name)
    differ = varied_keys([s.to_dict() for s in specs], ignore=("name", "search"))
    return [k for k in differ if k not in hyper]


def batchable_keys(algorithm: str, keys: list[str]) -> bool:
    """Whether varying ``keys`` (dotted paths) leaves ``algorithm``'s program unchanged."""
    hyper = hyper_keys(algorithm)
    return bool(keys) and all(k in hyper for k in keys)


def check_batchable(specs: list[Spec]) -> None:
    """Raise :class:`NotBatchable` naming the keys unless ``specs`` can share a program."""
    if len(specs) < 2:
        return
    bad = static_differences(specs)
    if bad:
        raise NotBatchable(
            f"settings differ in {', '.join(bad)}, which change the compiled program; "
            "only keys held in the state's hyper leaves can be batched"
        )


def stack_hypers(specs: list[Spec], sessions: int) -> Any:
    """Every setting's ``hyper`` leaves, each repeated ``sessions`` times: ``[K*S]``."""
    entry = get_algorithm(specs[0].agent.algorithm.name)
    hypers = [entry.make(spec).hyper() for spec in specs]
    return jax.tree.map(lambda *xs: jnp.repeat(jnp.stack(xs), sessions, axis=0), *hypers)
