"""The conformance suite, part 2: every algorithm learns the five probe environments.

One compiled program per case trains the five probe kinds x 2 seeds (see
:class:`tests.probes.Probe`); afterwards the agent's ``value`` must match the closed form
on the value probes (1-3) and its greedy action must be the best one on the action
probes (4, 5). Agents without a value function (REINFORCE) skip only the value checks.
Cases come from ``tests/test_conformance.py`` (discovered from the registry).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm
from jaxlab.envs import make_env
from tests.probes import CONTINUOUS_TARGET, PROBE_KINDS
from tests.test_conformance import GAMMA, LEARN_CASES, LEARN_IDS, small_spec

VALUE_TOL = 0.2
ACTION_TOL = 0.25
PROBE_UPDATES = 300
# A deterministic policy explores only around its own action (TD3's Gaussian noise), so
# its critic learns the action probes' quadratic reward piece by piece as the actor moves;
# in 300 updates the actor overshoots to the box's edge and is still coming back (by hand:
# a = 0.99 at update 120, 0.25 at 300 on kind 4). It gets more updates, not an easier test.
# CrossQ's value is read in evaluation mode, through batch statistics that trail the
# training batches (momentum 0.99): at 300 updates V = 0.80 on kind 1 (by hand, 64-wide
# critics; 1 in training mode).
PROBE_UPDATES_FOR = {"TD3": 1000, "CrossQ": 1000}


def probe_observations() -> dict[int, np.ndarray]:
    return {1: [[0.0]], 2: [[1.0], [-1.0]], 3: [[0.0], [1.0]], 4: [[0.0]], 5: [[1.0], [-1.0]]}


@pytest.mark.parametrize(("algo", "continuous", "memory"), LEARN_CASES, ids=LEARN_IDS)
def test_learns_the_probes(algo: str, continuous: bool, memory: str) -> None:
    updates = PROBE_UPDATES_FOR.get(algo, PROBE_UPDATES)
    spec = small_spec(algo, continuous, memory, updates=updates)
    entry = get_algorithm(algo)
    base_env = make_env(spec.env)
    has_value = hasattr(entry.make(spec, env=base_env), "value")
    obs = {k: jnp.asarray(v, jnp.float32) for k, v in probe_observations().items()}
    pad = jnp.zeros((2, 1), jnp.float32)

    def run(kind: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        # The probe kind is an env param (a traced int), so one program runs every kind.
        env = base_env.with_params(base_env.params.replace(kind=kind))
        agent = entry.make(spec, env=env)
        state = agent.init(key)
        state, _ = jax.lax.scan(lambda s, _: agent.update(s), state, None, updates)
        probe_obs = jnp.select(
            [kind == k for k in (2, 3, 5)], [obs[2], obs[3], obs[5]], pad
        )  # kinds 1 and 4 see o = 0 (row 0 used)
        values = agent.value(state, probe_obs) if has_value else jnp.zeros((2,))
        actions = agent.policy(state, probe_obs, key, deterministic=True)
        return values, actions.astype(jnp.float32).reshape(2, -1)[:, 0]

    kinds = jnp.repeat(jnp.arange(1, 6), 2)  # 5 kinds x 2 seeds
    keys = jax.random.split(jax.random.PRNGKey(0), kinds.shape[0])
    values, actions = jax.jit(jax.vmap(run))(kinds, keys)
    values, actions = np.asarray(values).reshape(5, 2, 2), np.asarray(actions).reshape(5, 2, 2)

    failures = []
    expected_values = {1: [1.0, 1.0], 2: [1.0, -1.0], 3: [GAMMA, 1.0]}
    if has_value:
        for kind, want in expected_values.items():
            got = values[kind - 1][:, : 1 if kind == 1 else 2]
            want = np.broadcast_to(np.asarray(want)[: got.shape[1]], got.shape)
            if not np.allclose(got, want, atol=VALUE_TOL):
                failures.append(f"{PROBE_KINDS[kind]}: V = {got.tolist()}, want {want[0]}")
    best = {4: [1.0], 5: [1.0, 0.0]}
    if continuous:
        best = {4: [CONTINUOUS_TARGET], 5: [CONTINUOUS_TARGET, -CONTINUOUS_TARGET]}
    for kind, want in best.items():
        got = actions[kind - 1][:, : len(want)]
        if not np.allclose(got, np.broadcast_to(want, got.shape), atol=ACTION_TOL):
            failures.append(f"{PROBE_KINDS[kind]}: greedy actions {got.tolist()}, want {want}")
    assert not failures, f"{algo} ({'continuous' if continuous else 'discrete'}, {memory}): " + (
        "; ".join(failures)
    )
