"""Benchmark suites: which specs to run as Trials, with which seeds and frame budget.

A suite file (``benchmarks/suites/*.yaml``)::

    name: classic                 # optional: the file stem
    sessions: 4                   # optional: meta.max_session of every Trial
    random_seeds: [42, 7, 123]    # optional: one Trial per seed per row (meta.random_seed)
    max_frame: 200000             # optional: env.max_frame of every Trial
    overrides: {meta.eval_frequency: 0}   # optional: dotted keys set on every Trial
    specs:                        # tuned specs, one row each
      - specs/ppo/ppo_cartpole.yaml
      - {spec: specs/a2c/a2c_cartpole.yaml, label: A2C-GAE, overrides: {...}}
    grids:                        # algorithm x env: a template spec per algorithm label
      - algorithms: {PPO: specs/ppo/ppo_cartpole.yaml}
        envs: {CartPole-v1: {}, Acrobot-v1: {env.max_frame: 300000}}
    reference:                    # per env: the score that normalises to 1
      CartPole-v1: {score: 500, source: episode cap}
    published:                    # returns set beside ours in benchmark.md
      - {env: CartPole-v1, algorithm: PPO, return: 498.9, frames: 200000, source: SLM Lab}
    bands:                        # recorded bands: a row's IQM outside its band fails
      - {algorithm: PPO, env: CartPole-v1, low: 150, high: 500}

A row is (label, env): the label defaults to the spec's algorithm name. Each row runs one
Trial per random seed. Spec paths are relative to the suite file's folder, else to the
working directory. :func:`load_suite` resolves and validates every Trial's spec before
anything is written, so a bad suite stops with one line naming the entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxlab.config.parse import SpecError, build, join, require_positive
from jaxlab.spec.load import load_spec, read_yaml
from jaxlab.spec.schema import Spec


@dataclass(frozen=True)
class SuiteEntry:
    """One tuned spec of ``specs:`` (a bare path is ``{spec: path}``)."""

    spec: str
    label: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteGrid:
    """``algorithms`` (label -> template spec) x ``envs`` (env name -> its overrides)."""

    algorithms: dict[str, Any]
    envs: dict[str, Any]

    def validate(self, path: str) -> None:
        for key, value in (("algorithms", self.algorithms), ("envs", self.envs)):
            if not value:
                raise SpecError(join(path, key), "must name at least one entry")
        for label, spec in self.algorithms.items():
            if not isinstance(spec, str):
                raise SpecError(join(path, f"algorithms.{label}"), "must be a spec file path")
        for env, overrides in self.envs.items():
            if overrides is not None and not isinstance(overrides, dict):
                raise SpecError(join(path, f"envs.{env}"), "must be a mapping of overrides")


@dataclass(frozen=True)
class Reference:
    """The score an env's results are normalised against, and where it comes from."""

    score: float
    source: str = ""
    random: float | None = None  # the random-policy return, when jaxlab has none on file


@dataclass(frozen=True)
class Published:
    """A published return to compare against (``return`` in the file)."""

    env: str
    algorithm: str
    value: float
    source: str
    frames: int | None = None


@dataclass(frozen=True)
class Band:
    """The recorded band of a row's IQM: a result outside ``[low, high]`` is a regression
    (``high`` None: no upper bound)."""

    algorithm: str
    env: str
    low: float
    high: float | None = None
    source: str = ""


@dataclass(frozen=True)
class SuiteFile:
    """The suite file's keys (see the module docstring)."""

    name: str | None = None
    sessions: int | None = None
    random_seeds: tuple[int, ...] | None = None
    max_frame: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    specs: tuple[str | SuiteEntry, ...] = ()
    grids: tuple[SuiteGrid, ...] = ()
    reference: dict[str, Any] = field(default_factory=dict)
    published: tuple[dict[str, Any], ...] = ()
    bands: tuple[Band, ...] = ()

    def validate(self, path: str) -> None:
        require_positive(self, path, "sessions", "max_frame")
        if self.random_seeds is not None and not self.random_seeds:
            raise SpecError("random_seeds", "must list at least one seed")
        if self.random_seeds and len(set(self.random_seeds)) < len(self.random_seeds):
            raise SpecError("random_seeds", f"lists a seed twice: {list(self.random_seeds)}")
        if not self.specs and not self.grids:
            raise SpecError("", "an empty suite: list specs under 'specs:' or 'grids:'")


@dataclass(frozen=True)
class SuiteTrial:
    """One Trial of the suite: its row (label, env), seed and ready-to-run spec."""

    name: str  # the Trial's folder name
    label: str
    env: str
    random_seed: int
    spec: Spec


@dataclass(frozen=True)
class Suite:
    name: str
    trials: tuple[SuiteTrial, ...]
    reference: dict[str, Reference]
    published: tuple[Published, ...]
    bands: tuple[Band, ...]
    raw: dict[str, Any]  # the suite file as read


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def _spec_path(text: str, base: Path, where: str) -> Path:
    for candidate in (base / text, Path(text)):
        if candidate.is_file():
            return candidate
    raise SpecError(where, f"no spec file {text!r} (looked in {base} and the working directory)")


def _rows(suite: SuiteFile, base: Path) -> list[tuple[str, Path, str | None, dict[str, Any]]]:
    """``(where, spec path, label, overrides)`` of every row, in file order."""
    rows = []
    for i, entry in enumerate(suite.specs):
        entry = SuiteEntry(entry) if isinstance(entry, str) else entry
        where = f"specs[{i}]"
        rows.append((where, _spec_path(entry.spec, base, where), entry.label, entry.overrides))
    for g, grid in enumerate(suite.grids):
        for label, template in grid.algorithms.items():
            where = f"grids[{g}].algorithms.{label}"
            path = _spec_path(template, base, where)
            for env, overrides in grid.envs.items():
                here = f"grids[{g}].envs.{env}"
                rows.append((here, path, label, {"env.name": env, **(overrides or {})}))
    return rows


def _trial_spec(
    suite: SuiteFile, where: str, path: Path, overrides: dict[str, Any], seed: int | None,
    shrink: bool,
) -> Spec:  # fmt: skip
    """The spec of one Trial: the file, the suite's budget and overrides, the row's own."""
    merged: dict[str, Any] = dict(suite.overrides)
    if suite.max_frame is not None:
        merged["env.max_frame"] = suite.max_frame
    if suite.sessions is not None:
        merged["meta.max_session"] = suite.sessions
    if seed is not None:
        merged["meta.random_seed"] = seed
    merged.update(overrides)
    try:
        return load_spec(path, merged, shrink=shrink)
    except SpecError as err:
        raise SpecError(where, f"{path}: {err}") from None


def load_suite(path: str | Path, *, shrink: bool = False) -> Suite:
    """Read and validate a suite file; every Trial's spec is resolved (``shrink``: at the
    ``--shrink`` smoke-test scale)."""
    path = Path(path)
    raw = read_yaml(path)
    suite = build(SuiteFile, raw, "")
    trials: list[SuiteTrial] = []
    seen: dict[tuple[str, str], str] = {}
    for where, spec_path, label, overrides in _rows(suite, path.parent):
        for i, seed in enumerate(suite.random_seeds or (None,)):
            spec = _trial_spec(suite, where, spec_path, overrides, seed, shrink)
            row = (label or spec.agent.algorithm.name, spec.env.name)
            if i == 0:
                if row in seen:
                    raise SpecError(where, f"row {row} is also {seen[row]}: give one a label")
                seen[row] = where
            name = f"{_slug(row[0])}__{_slug(row[1])}__seed{spec.meta.random_seed}"
            if any(t.name == name for t in trials):
                raise SpecError(where, f"its Trial folder {name!r} is another row's too")
            trials.append(SuiteTrial(name, row[0], row[1], spec.meta.random_seed, spec))
    for i, band in enumerate(suite.bands):
        if (band.algorithm, band.env) not in seen:
            raise SpecError(
                f"bands[{i}]", f"no row ({band.algorithm!r}, {band.env!r}) in the suite"
            )
    return Suite(
        name=suite.name or path.stem,
        trials=tuple(trials),
        reference=references_of(raw),
        published=published_of(raw),
        bands=suite.bands,
        raw=raw,
    )


def references_of(raw: dict[str, Any]) -> dict[str, Reference]:
    """The ``reference:`` scores of a suite file's mapping ``raw``, by env."""
    found = raw.get("reference") or {}
    return {env: build(Reference, value, f"reference.{env}") for env, value in found.items()}


def published_of(raw: dict[str, Any]) -> tuple[Published, ...]:
    """The ``published:`` returns of a suite file's mapping ``raw`` (``return`` is
    :attr:`Published.value`)."""
    out = []
    for i, item in enumerate(raw.get("published") or ()):
        item = dict(item)
        if "return" in item:
            item["value"] = item.pop("return")
        out.append(build(Published, item, f"published[{i}]"))
    return tuple(out)


def bands_of(raw: dict[str, Any]) -> dict[tuple[str, str], Band]:
    """The ``bands:`` of a suite file's mapping ``raw``, by row (algorithm label, env)."""
    found = [build(Band, b, f"bands[{i}]") for i, b in enumerate(raw.get("bands") or ())]
    return {(b.algorithm, b.env): b for b in found}
