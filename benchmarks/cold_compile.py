"""Cold compile of one framework, alone in a fresh process: building its programs before
the first training step.

    python benchmarks/cold_compile.py {jaxlab,rejax} ALGO ENV SEEDS FRAMES [KERNEL_INIT]
    # prints JSON; KERNEL_INIT: jaxlab's agent.net.kernel_init (default rejax's, lecun_normal)

``seed_scaling.py`` runs it ``--compile-repeats`` times per framework and row, the two
frameworks alternating, each in its own process, and reports the median: the second
framework to compile in a process finds jax's caches (``jnp`` and ``jax.random``
functions' traces) and XLA's compiler already set up (PPO CartPole at 1 seed: jaxlab
2.95-3.03 s first, 2.81-2.87 s after rejax; rejax 2.61-2.71 s first, 2.40-2.59 s after
jaxlab), and one fresh process varies by up to 10% from the next.

Both sides count the same work, from a built configuration and its keys to programs ready
to train:

* jaxlab: ``Trial(spec, keys)`` and :func:`jaxlab.runtime.run.start` (the trace, the init and the
  group program's compile), as ``train`` counts ``compile_s`` (the keys made first, as
  ``train`` makes them), less ``init_s``, the init program's *run*: rejax's init runs
  inside its training call, so it is in rejax's run time, and ``seed_scaling.py`` counts
  jaxlab's there too. ``init_s`` is printed alongside.
* rejax: the peer's ``jit(vmap(algo.train)).lower().compile()`` (``rejax_peer.py``,
  ``rejax_offpolicy.py``).

The persistent compilation cache is off for both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def jaxlab_compile_s(
    algo: str, env: str, seeds: int, frames: int, kernel_init: str
) -> dict[str, float]:
    from seed_scaling import jaxlab_spec

    from jaxlab.lab.seeds import default_keys
    from jaxlab.lab.trial import Trial
    from jaxlab.runtime.run import start

    spec = jaxlab_spec(algo, env, seeds, frames, kernel_init)
    keys = default_keys(spec)
    trial = Trial(spec, keys)
    compile_s = start(trial, [spec])[1]
    return {"compile_s": compile_s - trial.init_s, "init_s": trial.init_s}


def rejax_compile_s(
    algo: str, env: str, seeds: int, frames: int, kernel_init: str
) -> dict[str, float]:
    del kernel_init  # rejax's networks always start from flax's default
    from rejax_offpolicy import PEERS

    return {"compile_s": PEERS[algo](seeds, frames, with_eval=False, env_name=env)[2]}


def cold_compile(framework: str, job: dict[str, Any], timeout: float) -> dict[str, float] | str:
    """``framework``'s compile for a ``seed_scaling.py`` row (``job``: algo, env, seeds,
    frames and, optionally, jaxlab's kernel_init), measured in a fresh process:
    ``{"compile_s": ...}`` (jaxlab: and ``init_s``), or a one-line error text if it failed."""
    args = [framework, job["algo"], job["env"], str(job["seeds"]), str(job["frames"])]
    from seed_scaling import PEER_KERNEL_INIT

    args.append(job.get("kernel_init", PEER_KERNEL_INIT))
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        return {k: float(v) for k, v in out.items() if k in ("compile_s", "init_s")}
    except (subprocess.TimeoutExpired, IndexError, ValueError, KeyError) as err:
        return f"cold compile of {' '.join(args)} failed: {type(err).__name__}"


def cold_compiles(
    frameworks: list[str], job: dict[str, Any], timeout: float, repeats: int
) -> dict[str, dict[str, Any] | str]:
    """Each framework's :func:`cold_compile`, ``repeats`` times, the frameworks alternating
    (A B A B ...): per framework the median ``compile_s`` (and ``init_s``) with every
    ``compile_s`` in ``compiles_s``, or the first error text."""
    runs: dict[str, list[dict[str, float]]] = {fw: [] for fw in frameworks}
    failed: dict[str, str] = {}
    for _ in range(repeats):
        for fw in frameworks:
            if fw in failed:
                continue
            got = cold_compile(fw, job, timeout)
            if isinstance(got, str):
                failed[fw] = got
            else:
                runs[fw].append(got)
    out: dict[str, dict[str, Any] | str] = {}
    for fw in frameworks:
        if fw in failed:
            out[fw] = failed[fw]
            continue
        med = {k: statistics.median(r[k] for r in runs[fw]) for k in runs[fw][0]}
        out[fw] = {**med, "compiles_s": [r["compile_s"] for r in runs[fw]]}
    return out


def main() -> None:
    framework, algo, env, seeds, frames = sys.argv[1:6]
    sys.path.insert(0, str(HERE))
    from seed_scaling import PEER_KERNEL_INIT

    kernel_init = sys.argv[6] if len(sys.argv) > 6 else PEER_KERNEL_INIT
    import jax

    import jaxlab  # noqa: F401  (its XLA flags, set before the backend starts)

    jax.config.update("jax_enable_compilation_cache", False)
    measure = {"jaxlab": jaxlab_compile_s, "rejax": rejax_compile_s}[framework]
    t0 = time.perf_counter()
    out = measure(algo, env, int(seeds), int(frames), kernel_init)
    print(json.dumps({**out, "wall_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
