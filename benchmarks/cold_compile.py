"""Cold start-up of one framework, alone in a fresh process: what a user waits before the
first training step.

    python benchmarks/cold_compile.py {jaxlab,rejax} ALGO ENV SEEDS FRAMES   # prints JSON

``seed_scaling.py`` runs it once per framework and row, each in its own process, so
neither framework's compile gains from the other's warm-up in the same process: the
second framework to compile in a process finds jax's caches (``jnp`` and ``jax.random``
functions' traces) and XLA's compiler already set up. PPO CartPole at 1 seed, fresh
processes: jaxlab 2.95-3.03 s first, 2.81-2.87 s after rejax; rejax 2.61-2.71 s first,
2.40-2.59 s after jaxlab.

* jaxlab: ``Trial(spec)`` and :func:`jaxlab.run.start` (the trace, the init and the group
  program's compile, as ``train`` counts ``compile_s``), for the spec ``seed_scaling.py``
  trains (:func:`seed_scaling.jaxlab_spec`).
* rejax: the peer's ``jit(vmap(algo.train)).lower().compile()`` (``rejax_peer.py``,
  ``rejax_offpolicy.py``).

The persistent compilation cache is off for both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def jaxlab_compile_s(algo: str, env: str, seeds: int, frames: int) -> float:
    from seed_scaling import jaxlab_spec

    from jaxlab.run import start
    from jaxlab.trial import Trial

    spec = jaxlab_spec(algo, env, seeds, frames)
    return start(Trial(spec), [spec])[1]


def rejax_compile_s(algo: str, env: str, seeds: int, frames: int) -> float:
    from rejax_offpolicy import PEERS

    return PEERS[algo](seeds, frames, with_eval=False, env_name=env)[2]


def cold_compile_s(framework: str, job: dict[str, Any], timeout: float) -> float | str:
    """``framework``'s compile seconds for a ``seed_scaling.py`` row (``job``: algo, env,
    seeds, frames), measured in a fresh process; a one-line error text if it failed."""
    args = [framework, job["algo"], job["env"], str(job["seeds"]), str(job["frames"])]
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["compile_s"])
    except (subprocess.TimeoutExpired, IndexError, ValueError, KeyError) as err:
        return f"cold compile of {' '.join(args)} failed: {type(err).__name__}"


def main() -> None:
    framework, algo, env, seeds, frames = sys.argv[1:6]
    sys.path.insert(0, str(HERE))
    import jax

    import jaxlab  # noqa: F401  (its XLA flags, set before the backend starts)

    jax.config.update("jax_enable_compilation_cache", False)
    measure = {"jaxlab": jaxlab_compile_s, "rejax": rejax_compile_s}[framework]
    t0 = time.perf_counter()
    compile_s = measure(algo, env, int(seeds), int(frames))
    print(json.dumps({"compile_s": compile_s, "wall_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
