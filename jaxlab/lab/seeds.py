"""The seed axis of a Trial: its session keys, the memory check from shapes that comes
before them when there are many, and how the sessions are shared out over devices."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxlab.algorithms import get_algorithm
from jaxlab.lab.session import session_key
from jaxlab.lab.xla_options import fast_options
from jaxlab.logging.console import warn
from jaxlab.memory.budget import check_fits, tree_bytes
from jaxlab.spec.schema import Spec

# Past this many sessions the Trial state is sized from shapes before the keys are built
# (8 bytes a session; a billion sessions' keys alone were 8 GB, allocated before the
# Trial's own memory check could refuse the spec).
SIZE_FIRST = 65_536


def default_keys(spec: Spec) -> jax.Array:
    """The spec's session keys ``[meta.max_session, 2]``: session k gets
    :func:`~jaxlab.lab.session.session_key` ``(meta.random_seed, k)``. Many sessions are
    first checked to fit in memory (:func:`check_state_fits`)."""
    if spec.meta.max_session > SIZE_FIRST:
        check_state_fits(spec, spec.meta.max_session)
    return _keys_program(spec.meta.random_seed, spec.meta.max_session)()


def memory_knob(spec: Spec, abstract_state: Any = None) -> str:
    """The spec key that sizes one session's state: the network's layers when its
    parameters are over a quarter of ``abstract_state`` (shapes; with Adam's two moments,
    parameters and optimiser are then most of it), else the replay capacity, or the envs."""
    params = getattr(abstract_state, "params", None)
    if params is not None and 4 * tree_bytes(params) > tree_bytes(abstract_state):
        return "agent.net.hid_layers"
    return "agent.memory.capacity" if spec.agent.memory.replay else "env.num_envs"


def check_state_fits(spec: Spec, sessions: int) -> int:
    """Refuse (:func:`jaxlab.memory.check_fits`) a Trial of ``sessions`` whose state cannot
    fit, from shapes alone: nothing is allocated."""
    agent = get_algorithm(spec.agent.algorithm.name).make(spec)
    keys = jax.ShapeDtypeStruct((sessions, 2), jnp.uint32)
    shapes = jax.eval_shape(jax.vmap(agent.init), keys)
    return check_fits(shapes, sessions, memory_knob(spec, shapes))


@functools.cache
def _keys_program(random_seed: int, sessions: int) -> Any:
    """One small program for the keys, built for compile speed: run eagerly they were
    five (iota, seeding, folding, casts), 0.24 s of start-up against 0.11 s."""

    def keys() -> jax.Array:
        seeds = jnp.arange(sessions)
        return jax.vmap(session_key, in_axes=(None, 0))(random_seed, seeds)

    return jax.jit(keys).lower().compile(fast_options(jax.devices()[0].platform))


def seed_sharding(
    num_sessions: int, devices: Sequence[jax.Device] | None = None
) -> NamedSharding | None:
    """The leading (seed) axis split over ``devices`` (default: all local devices).

    When ``num_sessions`` is not a multiple of their count, over the most of them it is a
    multiple of (6 sessions on 4 devices: 3), with a warning naming the devices left idle;
    None when that is one device (or there is only one).
    """
    devices = list(jax.local_devices() if devices is None else devices)
    used = max(d for d in range(1, len(devices) + 1) if num_sessions % d == 0)
    if used < len(devices):
        warn(
            f"{num_sessions} sessions do not divide over {len(devices)} devices: training on "
            f"{used} of them; make meta.max_session a multiple of {len(devices)} to use all"
        )
    if used < 2:
        return None
    return NamedSharding(Mesh(np.array(devices[:used]), ("seed",)), PartitionSpec("seed"))
