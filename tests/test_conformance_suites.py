"""The conformance contract (:func:`tests.test_conformance.check_contract`) on every env
suite: each registered algorithm on one cheap env of each suite whose action space it
accepts (compiled once, bit-identical reruns, checkpoint round trip and training on from
it), in shrink mode with the algorithm's first accepted memory."""

from __future__ import annotations

from typing import Any

import pytest

from jaxlab.algorithms import registered
from jaxlab.spec import SpecError, spec_from_dict
from jaxlab.spec.schema import shrink
from tests.test_conformance import MEMORIES, TINY_CRITICS, check_contract, for_actions

# One cheap env per suite, with short episodes so they end within the run. Craftax
# restarts from its first world (reset "cached"): the contract is about the algorithms,
# and compiling Craftax's world generation into every case cost about 15 s each; its
# default pool reset is tested in tests/test_suite_grids.py.
SUITE_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "brax": ("brax/inverted_pendulum", {"episode_length": 8}),
    "playground": ("playground/CartpoleBalance", {"impl": "jax", "episode_length": 8}),
    "craftax": ("craftax/Craftax-Classic-Symbolic-v1", {"max_timesteps": 8, "reset": "cached"}),
    "jumanji": ("jumanji/Snake-v1", {"time_limit": 8}),
    "navix": ("navix/Navix-Empty-5x5-v0", {"max_steps": 8}),
    "xminigrid": ("xminigrid/MiniGrid-Empty-5x5", {"max_steps": 8}),
}


def raw_spec(algo: str, memory: str, env: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"suite_{algo}",
        "agent": {
            "algorithm": {"name": algo, **TINY_CRITICS.get(algo, {})},
            "net": {"hid_layers": [16], "optim": {"lr": 1.0e-3}},
            "memory": {"name": memory, "capacity": 1024, "batch_size": 16},
        },
        "env": {"name": env, "num_envs": 2, "max_frame": 1_000_000, "params": params},
        "meta": {"max_session": 2, "random_seed": 3, "eval_frequency": 0},
    }


def discover(
    envs: dict[str, tuple[str, dict[str, Any]]] = SUITE_ENVS,
) -> list[tuple[str, str, str]]:
    """(algorithm, key, memory): for each ``envs`` key, each algorithm with the first
    memory its env accepts."""
    cases = []
    for suite, (env, params) in envs.items():
        for algo in registered():
            for memory in MEMORIES:
                try:
                    spec_from_dict(raw_spec(algo, memory, env, params))
                except SpecError:
                    continue
                cases.append((algo, suite, memory))
                break
    return cases


CASES = discover()


def test_every_suite_has_cases_for_its_action_space() -> None:
    by_suite = {s: {a for a, t, _ in CASES if t == s} for s in SUITE_ENVS}
    continuous = for_actions(discrete=False)
    assert continuous >= {"PPO", "A2C", "REINFORCE", "SAC", "TD3"}
    assert by_suite["brax"] == by_suite["playground"] == continuous
    for discrete in ("craftax", "jumanji", "navix", "xminigrid"):
        assert by_suite[discrete] == for_actions(discrete=True), discrete


@pytest.mark.parametrize(("algo", "suite", "memory"), CASES, ids=[f"{a}-{s}" for a, s, _ in CASES])
def test_contract_on_every_suite(algo: str, suite: str, memory: str, tmp_path) -> None:
    env, params = SUITE_ENVS[suite]
    check_contract(shrink(spec_from_dict(raw_spec(algo, memory, env, params)), updates=4), tmp_path)
