"""Tunables declared once: every key search may batch is read only into ``state.hyper``.

For every algorithm and action space (the conformance suite's learning cases), and every
key of :func:`jaxlab.lab.batching.hyper_keys` (derived from the ``tunable`` marks on the
config fields), two specs that differ only in that key must lower ``update`` to the same
HLO text while giving different ``hyper`` leaves. A number read as a static Python value
is baked into the program as a constant, so its HLO differs and this test fails: batched
search would otherwise train every setting with setting 0's value.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm, registered
from jaxlab.config.parse import apply_overrides, flatten
from jaxlab.config.tunable import tunable, tunable_paths
from jaxlab.lab.batching import hyper_keys
from jaxlab.spec import spec_from_dict
from jaxlab.spec.smoke import shrink
from tests.test_conformance import CASES, LEARN_CASES, probe_raw

# Each algorithm and action space once, and prioritized replay (whose numbers only it reads).
TUNABLE_CASES = [c for c in CASES if c in LEARN_CASES or c[2] == "PrioritizedReplay"]
# The net's schedule end and grad clip are only read when on: switch both on.
NET = {"lr_schedule": {"name": "linear_decay", "end_val": 1.0e-4}, "clip_grad_val": 0.5}


def lowered_update(spec: Any) -> str:
    """The HLO text of the agent's ``update``."""
    agent = get_algorithm(spec.agent.algorithm.name).make(spec)
    state = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    return jax.jit(agent.update).lower(state).as_text()


def hyper_of(spec: Any) -> Any:
    """The agent's ``hyper`` leaves."""
    return get_algorithm(spec.agent.algorithm.name).make(spec).hyper()


def two_values(value: Any) -> tuple[float, float]:
    """Two valid, different values near ``value`` (None: an unset optional number)."""
    if value is None or value == 0:
        return 0.01, 0.02
    return float(value), float(value) * 0.9


def check_case(algo: str, continuous: bool, memory: str) -> tuple[list[str], set[str]]:
    """(keys read as static values, keys that changed the hyper leaves) for one case.

    The keys with a value are lowered together: once all at their first value, once all
    at their second. A key read as a static value puts its value in the HLO as a constant,
    so the two texts differ; only then is each key lowered on its own, to name it. Unset
    optional keys (None) form a second group, lowered with the first group's keys as
    resolved: setting one can switch a mode (a set ``target_entropy`` leaves
    ``target_entropy_scale`` unread), so each group is checked in its own mode."""
    raw = probe_raw(algo, continuous, memory)
    raw["agent"]["net"].update(NET)
    resolved = spec_from_dict(raw).to_dict()  # every default written out
    values = flatten(resolved)
    keys = hyper_keys(algo)
    firsts = {k: two_values(values[k])[0] for k in keys}
    seconds = {k: two_values(values[k])[1] for k in keys}
    groups = [[k for k in keys if values[k] is not None], [k for k in keys if values[k] is None]]
    static, reached = [], set()

    def spec_with(changes: dict[str, float]) -> Any:
        return shrink(spec_from_dict(apply_overrides(resolved, changes)))

    for group in filter(None, groups):
        first = {k: firsts[k] for k in group}
        one_moved = {k: spec_with({**first, k: seconds[k]}) for k in group}
        hlo = lowered_update(spec_with(first))
        if lowered_update(spec_with({k: seconds[k] for k in group})) != hlo:
            static += [k for k in group if lowered_update(one_moved[k]) != hlo]
        hyper = jax.tree.leaves(hyper_of(spec_with(first)))
        for key in group:
            moved = jax.tree.leaves(hyper_of(one_moved[key]))
            if not all(np.array_equal(x, y) for x, y in zip(hyper, moved, strict=True)):
                reached.add(key)
    return static, reached


@pytest.mark.parametrize("algo", registered())
def test_every_tunable_is_a_hyper_leaf_not_a_constant(algo: str) -> None:
    """In every case of the algorithm (each action space, and prioritized replay) no key
    changes the compiled program; each key reaches ``state.hyper`` in some case (SAC's
    ``target_entropy_scale`` is read only with discrete actions)."""
    failures, reached = [], set()
    for case in TUNABLE_CASES:
        if case[0] == algo:
            static, hit = check_case(*case)
            failures += [f"{key} is read as a static value in {case}" for key in static]
            reached |= hit
    failures += [
        f"{key} never reaches state.hyper" for key in hyper_keys(algo) if key not in reached
    ]
    assert not failures, f"{algo}: " + "; ".join(failures)


def test_hyper_keys_come_from_the_tunable_marks() -> None:
    ppo = hyper_keys("PPO")
    assert ppo == (
        "agent.algorithm.gamma", "agent.algorithm.lam", "agent.algorithm.clip_eps",
        "agent.algorithm.entropy_coef", "agent.algorithm.val_loss_coef",
        "agent.net.clip_grad_val", "agent.net.optim.lr", "agent.net.lr_schedule.end_val",
    )  # fmt: skip
    a2c = hyper_keys("A2C")  # a schedule contributes its own tunable end points
    assert "agent.algorithm.entropy_coef.start_val" in a2c
    assert "agent.algorithm.entropy_coef.end_val" in a2c
    assert "agent.algorithm.entropy_coef.end_step" not in a2c  # the window is static
    assert not any(k.startswith("agent.memory.") for k in ppo)  # PPO reads no memory
    assert "agent.memory.alpha" in hyper_keys("DQN")


def test_tunable_paths_of_nested_configs() -> None:
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Inner:
        x: float = tunable(1.0)
        size: int = 3

    @dataclasses.dataclass(frozen=True)
    class Outer:
        inner: Inner = tunable(default_factory=Inner)
        rate: float = tunable(0.5)
        width: int = 8

    assert tunable_paths(Outer, "p") == ("p.inner.x", "p.rate")
    assert tunable_paths(Outer(rate=0.1), "p") == ("p.inner.x", "p.rate")
