"""Golden records: what each shipped spec computes, so a refactor cannot drift unseen.

A record holds, for one finished run, every ``metrics.csv`` row of every session (bar
``wall_time`` and ``fps``, which measure the machine) and the fingerprint of every saved
checkpoint (:func:`jaxlab.runtime.checkpoint.fingerprint`, one uint32 per state leaf), keyed by
frame. Leaf fingerprints are compared as a sorted list, so renaming or reordering a state
field is allowed but any changed bit in any leaf is not.

The records in ``tests/golden/`` are checked by ``tests/test_cli.py`` (every shipped spec in
``--shrink`` mode) and ``tests/test_golden.py`` (PPO CartPole at 5e4 frames). They are tied
to this machine kind's CPU build of XLA (CI runs on the same kind). A change meant to alter
results re-records them in its own commit, saying why:

    .venv/bin/python -m tests.golden            # every shipped spec, shrunk, and PPO 5e4
    .venv/bin/python -m tests.golden ppo_cartpole   # only specs whose stem matches
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from jaxlab.logging.table import read_rows

GOLDEN = Path(__file__).resolve().parent / "golden"
MACHINE_COLUMNS = ("wall_time", "fps")
# The longer run guarded beside the shrunk smoke runs: the default spec at 5e4 frames.
LONG_SPEC = "ppo/ppo_cartpole.yaml"
LONG_SETS = ("env.max_frame=50000",)
LONG_NAME = "ppo_cartpole_5e4"


def record(run: Path) -> dict[str, Any]:
    """The golden record of the finished run folder ``run``."""
    rows = {
        f"session_{k}": [{c: v for c, v in row.items() if c not in MACHINE_COLUMNS} for row in got]
        for k, got in enumerate(read_rows(run))
    }
    checkpoints = {}
    for kind in ("checkpoints", "best"):
        for step in sorted((run / kind).iterdir(), key=lambda p: p.name):
            if step.name.isdigit():
                meta = json.loads((step / "meta" / "metadata").read_text())
                checkpoints[f"{kind}/{step.name}"] = sorted(meta["fingerprint"])
    return {"metrics": rows, "checkpoints": checkpoints}


def path_for(name: str) -> Path:
    return GOLDEN / f"{name}.json"


def load(name: str) -> dict[str, Any]:
    return json.loads(path_for(name).read_text())


def differences(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Readable differences between two records (empty when they are equal)."""
    out = []
    for section in ("metrics", "checkpoints"):
        a, b = expected[section], got[section]
        for key in sorted(set(a) | set(b)):
            if a.get(key) == b.get(key):
                continue
            if isinstance(a.get(key), list) and isinstance(b.get(key), list):
                for i, (x, y) in enumerate(zip(a[key], b[key], strict=False)):
                    if x != y:
                        out.append(f"{section}/{key}[{i}]: expected {x}, got {y}")
                        break
                else:
                    out.append(f"{section}/{key}: {len(a[key])} entries, got {len(b[key])}")
            else:
                out.append(f"{section}/{key}: expected {a.get(key)}, got {b.get(key)}")
    return out


def train(spec: Path, data: Path, extra: list[str]) -> Path:
    """Train ``spec`` through the CLI into ``data``; returns the run folder."""
    from jaxlab.cli import main

    assert main(["train", str(spec), "--data", str(data), "--no-progress", *extra]) == 0
    (run,) = list(data.iterdir())
    return run


def long_run_args() -> list[str]:
    return [arg for s in LONG_SETS for arg in ("-s", s)]


def main(argv: list[str]) -> None:
    from tests.conftest import REPO, SPECS

    GOLDEN.mkdir(exist_ok=True)
    jobs = [(p.stem, p, ["--shrink"]) for p in SPECS]
    jobs.append((LONG_NAME, REPO / "specs" / LONG_SPEC, long_run_args()))
    for name, spec, extra in jobs:
        if argv and not any(a in name for a in argv):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            rec = record(train(spec, Path(tmp), extra))
        path_for(name).write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        print(f"recorded {path_for(name)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
