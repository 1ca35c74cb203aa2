"""Host-side metric sinks: one CSV and one TensorBoard event stream per session."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from tensorboardX import SummaryWriter

# CSV columns, in order. "frame" is frames per session; "wall_time" seconds since start.
COLUMNS = (
    "frame",
    "wall_time",
    "fps",
    "return",
    "episode_length",
    "episodes",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_frac",
    "lr",
    "grad_norm",
)


class SessionWriter:
    """Writes one row per log point to ``metrics.csv`` and the same scalars to TensorBoard."""

    def __init__(self, directory: Path, columns: tuple[str, ...] = COLUMNS) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.columns = columns
        self._file = open(directory / "metrics.csv", "w", newline="")  # noqa: SIM115
        self._csv = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
        self._csv.writeheader()
        self._tb = SummaryWriter(str(directory / "tb"))

    def write(self, row: dict[str, Any]) -> None:
        self._csv.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._file.flush()
        frame = int(row["frame"])
        for key in self.columns[1:]:
            value = row.get(key)
            if value is not None and math.isfinite(float(value)):
                self._tb.add_scalar(f"session/{key}", float(value), frame)

    def close(self) -> None:
        self._file.close()
        self._tb.close()


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
