"""The smoke-test scale of a spec: ``--shrink`` and ``dev`` mode (a few updates, two
sessions, small memories, the same code paths)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jaxlab.envs import shrink_params
from jaxlab.spec.schema import Spec


def shrink(spec: Spec, sessions: int = 2, updates: int = 3) -> Spec:
    """A tiny-scale copy of ``spec`` for smoke tests and ``dev`` mode.

    The algorithm shrinks its own loop sizes (keeping every divisibility rule), the trial
    keeps at most ``sessions`` seeds and runs ``updates`` updates, one per log point; a
    replay memory keeps at most 1024 transitions and minibatches of 32.
    Network widths and all tunable numbers are kept, so the same code paths run; the
    program is compiled fast (``meta.compile``), as so few updates do not repay XLA's
    optimisation, except a convolutional one: XLA's unoptimised CPU convolutions run
    orders of magnitude slower (PPO on 84x84 Atari frames: 98 s against 10 s for the
    same three updates).
    """
    memory = spec.agent.memory
    memory = dataclasses.replace(
        memory, capacity=min(memory.capacity, 1024), batch_size=min(memory.batch_size, 32)
    )
    small = spec.replace(
        agent=dataclasses.replace(
            spec.agent, algorithm=spec.agent.algorithm.shrink(), memory=memory
        ),
        env=dataclasses.replace(
            spec.env,
            num_envs=min(spec.env.num_envs, 4),
            params=shrink_params(spec.env.name, spec.env.params),
        ),
    )
    algorithm = small.agent.algorithm.fit_envs(small)
    small = small.replace(agent=dataclasses.replace(small.agent, algorithm=algorithm))
    fpu = algorithm.frames_per_update(small)
    small = small.replace(
        env=dataclasses.replace(small.env, max_frame=updates * fpu),
        meta=dataclasses.replace(
            small.meta,
            max_session=min(spec.meta.max_session, sessions),
            log_frequency=fpu,
            eval_frequency=fpu,
            checkpoint_frequency=fpu,
            compile="optimized" if spec.agent.net.type == "Conv" else "fast",
        ),
    )
    small.agent.algorithm.validate_spec(small)
    return small


def shrunk(spec: Spec, overrides: Sequence[str] = ()) -> Spec:
    """``shrink(spec)`` for ``dev`` and ``--shrink``, except that a ``meta.compile`` given
    with ``-s`` on the same command line is kept (shrink would set ``fast``)."""
    small = shrink(spec)
    if any(o.split("=", 1)[0].strip() == "meta.compile" for o in overrides):
        small = small.replace(meta=dataclasses.replace(small.meta, compile=spec.meta.compile))
    return small
