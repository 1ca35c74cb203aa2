"""The plan of an Experiment, kept on disk as ``<experiment>/experiment.json``.

:class:`ExperimentPlan` holds every setting (trial name -> dotted key -> value), the batch
groups (the trial names each Ray trial trains), each finished trial's status, the
experiment's resolved spec and its provenance. A benchmark
(:mod:`jaxlab.experiment.benchmark`) keeps the same file, with each Trial's own spec in
``specs``. The driver owns it; the Ray Tune callback changes it only through
:meth:`ExperimentPlan.record_status`, :meth:`ExperimentPlan.add_setting` and
:meth:`ExperimentPlan.add_group`, and the driver writes it back
(:meth:`ExperimentPlan.save`) after each change, so an interrupted Experiment resumes
from it. It pickles, so Ray hands it to the workers as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PLAN = "experiment.json"
# A trial with one of these statuses is kept as it is when the Experiment resumes.
FINISHED = ("complete", "stopped", "error", "diverged")


def write_json(path: Path, data: Any) -> None:
    """Atomic JSON write (a kill never leaves half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


@dataclass
class ExperimentPlan:
    """What an Experiment trains and how far it got (the fields are ``experiment.json``'s
    keys, in its order)."""

    spec_name: str
    search_alg: str
    resources: dict[str, float]  # per Ray trial: {"cpu": ..., "gpu": ...}
    planned: int  # the settings drawn up front, or max_trial for a searcher
    settings: dict[str, dict[str, Any]]  # trial name -> dotted key -> value
    groups: list[list[str]]  # the trial names each fixed Ray trial trains
    status: dict[str, str]  # trial name -> outcome, for finished trials only
    spec: dict[str, Any]  # the experiment's spec, search block included
    git_sha: str | None
    git_dirty: bool
    versions: dict[str, str]
    started: str
    # A benchmark's Trials each have their own resolved spec (name -> spec mapping); a
    # search's trials are ``spec`` with their setting applied, and leave this empty.
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentPlan:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def load(cls, exp_dir: Path) -> ExperimentPlan:
        return cls.from_dict(json.loads((exp_dir / PLAN).read_text()))

    def save(self, exp_dir: Path) -> None:
        write_json(exp_dir / PLAN, self.to_dict())

    def record_status(self, name: str, status: str) -> None:
        self.status[name] = status

    def add_setting(self, name: str, setting: dict[str, Any]) -> None:
        """Record a searcher-suggested setting (a name already planned keeps its values)."""
        self.settings.setdefault(name, setting)

    def add_group(self, names: list[str]) -> None:
        self.groups.append(names)

    def group(self, index: int) -> list[str]:
        return self.groups[index]

    def planned_names(self) -> set[str]:
        return {n for g in self.groups for n in g}

    def pending(self) -> list[str]:
        """The settings not finished yet, in plan order."""
        return [n for n in self.settings if self.status.get(n) not in FINISHED]

    def pending_planned(self) -> list[str]:
        planned = self.planned_names()
        return [n for n in self.pending() if n in planned]
