"""The conformance contract (:func:`tests.test_conformance.check_contract`) on every env
suite (compiled once, bit-identical reruns, checkpoint round trip and training on from
it), on one cheap env per suite, in shrink mode with the algorithm's first accepted memory.

Which algorithm meets which suite: every algorithm that accepts discrete actions runs on
the action-masked suite (Jumanji), since each has its own masking path, and again on one
of the two gridworld suites (shared out round robin). The suites whose step takes 15-50 s
to compile (Craftax, Brax, Playground) run the contract once each: their adapters and
state checkpoints do not depend on which algorithm steps them, and three algorithms on
each cost about 300 s of CI. Every algorithm meets a second suite of each action kind it
accepts: the continuous ones on EnvPool's MuJoCo (tests/test_suite_envpool.py, every
algorithm), and each algorithm's contract on gymnax is in tests/test_conformance.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from jaxlab.algorithms import registered
from jaxlab.spec import SpecError, spec_from_dict
from jaxlab.spec.smoke import shrink
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


EVERY_ALGORITHM = ("jumanji",)  # its observations carry action masks
ROUND_ROBIN = ("navix", "xminigrid")  # discrete gridworlds: each discrete algorithm once
ONCE = {"craftax": "SARSA", "brax": "SAC", "playground": "TD3"}  # slow to compile


def first_memory(algo: str, env: str, params: dict[str, Any]) -> str | None:
    """The first memory ``algo``'s spec accepts on ``env``, None if it cannot run there."""
    for memory in MEMORIES:
        try:
            spec_from_dict(raw_spec(algo, memory, env, params))
        except SpecError:
            continue
        return memory
    return None


def every_algorithm(envs: dict[str, tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(algorithm, key, memory): for each ``envs`` key, each algorithm that runs there,
    with the first memory it accepts."""
    cases = []
    for key, (env, params) in envs.items():
        for algo in registered():
            memory = first_memory(algo, env, params)
            if memory is not None:
                cases.append((algo, key, memory))
    return cases


def discover(
    envs: dict[str, tuple[str, dict[str, Any]]] = SUITE_ENVS,
) -> list[tuple[str, str, str]]:
    """(algorithm, suite, memory) per the module docstring."""
    cases = every_algorithm({s: envs[s] for s in EVERY_ALGORITHM})
    for i, algo in enumerate(sorted(for_actions(discrete=True))):
        suite = ROUND_ROBIN[i % len(ROUND_ROBIN)]
        cases.append((algo, suite, first_memory(algo, *envs[suite])))
    cases += [(algo, suite, first_memory(algo, *envs[suite])) for suite, algo in ONCE.items()]
    assert all(memory is not None for *_, memory in cases), cases
    return cases


CASES = discover()


def test_every_suite_meets_algorithms_and_every_discrete_one_meets_two_suites() -> None:
    by_suite = {s: {a for a, t, _ in CASES if t == s} for s in SUITE_ENVS}
    assert by_suite["jumanji"] == for_actions(discrete=True)
    met = [a for s in ROUND_ROBIN for a in by_suite[s]]
    assert sorted(met) == sorted(for_actions(discrete=True))  # each exactly once
    assert all(len(by_suite[s]) >= 3 for s in ROUND_ROBIN), by_suite
    assert {s: by_suite[s] for s in ONCE} == {s: {a} for s, a in ONCE.items()}
    assert set(SUITE_ENVS) == set(EVERY_ALGORITHM) | set(ROUND_ROBIN) | set(ONCE)


@pytest.mark.parametrize(("algo", "suite", "memory"), CASES, ids=[f"{a}-{s}" for a, s, _ in CASES])
def test_contract_on_every_suite(algo: str, suite: str, memory: str, tmp_path) -> None:
    env, params = SUITE_ENVS[suite]
    check_contract(shrink(spec_from_dict(raw_spec(algo, memory, env, params)), updates=4), tmp_path)
