"""The conformance suite: every registered algorithm, every variant it accepts, one contract.

Cases are discovered, not listed: for each algorithm in the registry, each probe action
space (discrete, continuous) and each memory its spec accepts, the case exists when the
probe spec parses. A new algorithm gets the whole suite by registering.

Per case, on a shrunk spec (``jaxlab.spec.shrink``):

* **contract** (one Trial, 2 seeds): the chunk (``update`` scanned, ``jit`` + ``vmap``)
  is compiled once, ahead of time, and accepts its own output chunk after chunk (an
  executable refuses any other avals, so nothing can silently recompile); the state's
  tree structure, shapes, dtypes and weak types never change; metrics are finite; the
  same keys give bit-identical results; an Orbax checkpoint round trip restores the state
  exactly, and training on from it equals training on from the original.
* **probes** (``tests/test_conformance_probes.py``, once per algorithm and action space):
  learning the five probe environments of :class:`tests.probes.Probe`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.algorithms import get_algorithm, registered
from jaxlab.lab.trial import Trial
from jaxlab.runtime.checkpoint import Checkpointer
from jaxlab.spec import SpecError, spec_from_dict
from jaxlab.spec.smoke import shrink
from tests.probes import register_probes

register_probes()

GAMMA = 0.5
MEMORIES = ("OnPolicyBatch", "Replay", "PrioritizedReplay")


# Every case's networks are tiny (the spec's 32x32); an algorithm whose critics have
# their own sizes gets tiny ones too.
TINY_CRITICS: dict[str, dict[str, Any]] = {"CrossQ": {"critic_layers": [32, 32]}}


def probe_raw(algo: str, continuous: bool, memory: str) -> dict[str, Any]:
    return {
        "name": f"probe_{algo}",
        "agent": {
            "algorithm": {"name": algo, "gamma": GAMMA, **TINY_CRITICS.get(algo, {})},
            "net": {"hid_layers": [32, 32], "optim": {"lr": 3.0e-3}},
            "memory": {"name": memory, "capacity": 1024, "batch_size": 32},
        },
        "env": {
            "name": "Probe-continuous" if continuous else "Probe-discrete",
            "num_envs": 8,
            "max_frame": 1_000_000,
        },
        "meta": {"max_session": 2, "random_seed": 7, "eval_frequency": 0},
    }


def discover() -> list[tuple[str, bool, str]]:
    cases = []
    for algo in registered():
        for continuous in (False, True):
            for memory in MEMORIES:
                try:
                    spec_from_dict(probe_raw(algo, continuous, memory))
                except SpecError:
                    continue
                cases.append((algo, continuous, memory))
    return cases


CASES = discover()
IDS = [f"{a}-{'cont' if c else 'disc'}-{m}" for a, c, m in CASES]
# Learning is checked once per algorithm and action space, with the first memory it
# accepts (prioritized replay's sampling and weights have their own hand-computed tests,
# and the Double DQN + PER specs learn CartPole and Acrobot); the contract covers all.
LEARN_CASES = [c for i, c in enumerate(CASES) if all(c[:2] != d[:2] for d in CASES[:i])]
LEARN_IDS = [IDS[CASES.index(c)] for c in LEARN_CASES]


def for_actions(discrete: bool) -> set[str]:
    """The registered algorithms whose config accepts discrete (or continuous) actions."""
    flag = "CONTINUOUS_ONLY" if discrete else "DISCRETE_ONLY"
    return {a for a in registered() if not getattr(get_algorithm(a).config_cls, flag)}


def small_spec(algo: str, continuous: bool, memory: str, updates: int = 3):
    return shrink(spec_from_dict(probe_raw(algo, continuous, memory)), updates=updates)


def test_every_algorithm_has_a_case() -> None:
    assert {a for a, _, _ in CASES} == set(registered())


# ------------------------------------------------------------------------------ contract


def _signature(state: Any, weak: bool = True) -> tuple:
    leaves, treedef = jax.tree.flatten(state)
    return treedef, [(x.shape, x.dtype, weak and getattr(x, "weak_type", False)) for x in leaves]


def _equal(a: Any, b: Any) -> bool:
    return all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize(("algo", "continuous", "memory"), CASES, ids=IDS)
def test_contract(algo: str, continuous: bool, memory: str, tmp_path) -> None:
    check_contract(small_spec(algo, continuous, memory, updates=4), tmp_path)


def check_contract(spec: Any, tmp_path: Any) -> None:
    """The contract of the module docstring for one shrunk ``spec`` (4 updates)."""
    trial = Trial(spec)
    state0 = trial.init()
    sig0 = _signature(state0)
    assert all(x.shape[0] == 2 for x in jax.tree.leaves(state0)), "sessions lead every leaf"

    # The compiled chunk (jit + vmap, compiled ahead of time, so any change in the
    # state's avals would be refused, not recompiled) over several chunks.
    a = state0
    for c in range(3):
        a, metrics = trial.chunk(a, c)
        assert _signature(a) == sig0, "the state's structure, shapes or dtypes changed"
    compiled = trial._chunk
    assert metrics["updates"].tolist() == [1.0, 1.0]
    scalars = {k: v for k, v in metrics.items() if k != "actions" and not k.startswith("eval")}
    assert all(np.isfinite(np.asarray(v)).all() for v in scalars.values()), scalars

    # Same keys -> bit-identical, through the same compiled program.
    b = trial.init()
    for c in range(3):
        b, _ = trial.chunk(b, c)
    assert trial._chunk is compiled, "the chunk was compiled again"
    assert _equal(a, b), "the same keys gave different results"

    # Checkpoint round trip, then training on from the restored state.
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(2, a, {})
    ckpt.manager.wait_until_finished()
    restored, _ = ckpt.restore(trial.abstract_state())
    ckpt.close()
    # (Orbax restores weakly typed leaves as strong ones; the compiled chunk takes both.)
    assert _signature(restored, weak=False) == _signature(a, weak=False)
    assert _equal(restored, a)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(restored)), "saved from numpy"
    a_next, _ = trial.chunk(a, 3)
    r_next, _ = trial.chunk(restored, 3)
    assert _equal(a_next, r_next)


# The other forms of the algorithms that have them (jaxlab.algorithms.forms): recurrent
# (agent.net.recurrent) and with self-imitation (agent.algorithm.sil), both action kinds.
FORMS = {
    "GRU": ["agent.net.recurrent=GRU", "agent.net.recurrent_size=16"],
    "SIL": ["agent.algorithm.sil.updates=2", "agent.algorithm.sil.batch_size=16"],
}
FORM_CASES = [
    (a, c, form)
    for a in registered()
    if get_algorithm(a).config_cls.RECURRENT
    for c in (False, True)
    for form in FORMS
]


@pytest.mark.parametrize(
    ("algo", "continuous", "form"),
    FORM_CASES,
    ids=[f"{a}-{f}-{'cont' if c else 'disc'}" for a, c, f in FORM_CASES],
)
def test_contract_of_each_form(algo: str, continuous: bool, form: str, tmp_path) -> None:
    spec = spec_from_dict(probe_raw(algo, continuous, "OnPolicyBatch"), FORMS[form])
    check_contract(shrink(spec, updates=4), tmp_path)


def _kernel_scales(state: Any) -> dict[str, float]:
    """Every dense kernel of the networks in ``state`` (``[..., fan_in, fan_out]``, twin
    and target copies included, optimizer moments not): its standard deviation times
    ``sqrt(fan_in)``."""
    named = (
        (jax.tree_util.keystr(p), p, x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
    )
    return {
        name: float(np.asarray(x).std() * np.sqrt(x.shape[-2]))
        for name, path, x in named
        if getattr(path[-1], "key", None) == "kernel" and not name.startswith(".opt")
    }


@pytest.mark.parametrize(("algo", "continuous", "memory"), LEARN_CASES, ids=LEARN_IDS)
def test_kernel_init_reaches_every_layer(algo: str, continuous: bool, memory: str) -> None:
    """``agent.net.kernel_init`` sets every kernel, heads included: flax's lecun_normal
    gives each one variance ``1 / fan_in``; the default orthogonal init has heads with
    gain 0.01 (policy) and hidden layers with gain sqrt(2)."""
    raw = probe_raw(algo, continuous, memory)
    lecun = spec_from_dict(raw, ["agent.net.kernel_init=lecun_normal"])
    key = jax.random.PRNGKey(0)
    scales = _kernel_scales(get_algorithm(algo).make(lecun).init(key))
    assert scales, "no kernels found"
    assert all(0.6 < s < 1.4 for s in scales.values()), scales
    default = _kernel_scales(get_algorithm(algo).make(spec_from_dict(raw)).init(key))
    assert default.keys() == scales.keys()
    assert any(not 0.6 < s < 1.4 for s in default.values()), default


def test_probe_kinds_pay_what_their_docstring_says() -> None:
    """The probes themselves: rewards and episode ends of each kind, by hand."""
    from tests.probes import KindParams, Probe

    env = Probe(continuous=False)
    key = jax.random.PRNGKey(1)
    for kind, action, want_reward in ((1, 0, 1.0), (4, 1, 1.0), (4, 0, -1.0)):
        params = KindParams(kind=kind)
        _, state = env.reset_env(key, params)
        _, _, reward, done, _ = env.step_env(key, state, jnp.int32(action), params)
        assert float(reward) == want_reward and bool(done)
    params = KindParams(kind=3)
    _, state = env.reset_env(key, params)
    obs, state, reward, done, _ = env.step_env(key, state, jnp.int32(0), params)
    assert (float(obs[0]), float(reward), bool(done)) == (1.0, 0.0, False)
    _, _, reward, done, _ = env.step_env(key, state, jnp.int32(0), params)
    assert (float(reward), bool(done)) == (1.0, True)
    params = KindParams(kind=5)
    for k in range(4):
        o, state = env.reset_env(jax.random.PRNGKey(k), params)
        good = jnp.int32(int(o[0] > 0))
        _, _, reward, _, _ = env.step_env(key, state, good, params)
        assert float(reward) == 1.0 and abs(float(o[0])) == 1.0
    cont = Probe(continuous=True)
    o, state = cont.reset_env(key, params)
    _, _, reward, _, _ = cont.step_env(key, state, jnp.array([0.5 * o[0]]), params)
    assert float(reward) == pytest.approx(1.0)
