"""Every session's rows of a Trial in one file, ``<run>/metrics.csv``.

The file is a tidy table: column ``session`` (0..S-1 within the Trial), then the run's
columns (:func:`jaxlab.logging.writers.columns_for`: ``frame``, ``wall_time``, ``fps``,
``return``, ..., the algorithm's metrics). Each log point appends one block of S rows,
sessions in order, so the file is ordered by frame, then session. Pandas reads it as is
(``pd.read_csv(run / "metrics.csv").groupby("session")``).

A block is formatted from the chunk's ``[S]`` arrays in one pass (:func:`format_block`):
values shared by the block (``frame``, ``wall_time``, ``fps``) are formatted once, every
row is one ``%`` of a format string, and a flush appends to one file. At 8192 PPO
CartPole sessions on a 2-core CPU a log point takes 0.015 s and a flush 0.0005 s, where a
``metrics.csv`` per session took 0.082 s and 0.108 s (``benchmarks/host_sync.py``).

Cells: integer arrays as integers, float arrays as ``%.6g`` (``nan`` where not finite),
except the columns named ``blank`` (evaluation's), which are empty where not finite so a
chunk that did not evaluate reads as "no value". A column absent from a block is empty.

A resume at frame ``F`` cuts the file after the last row with ``frame <= F``
(:func:`truncate_table`), dropping a row torn by a kill with it. Readers
(:func:`read_curves`, :func:`read_rows`) ignore an unterminated last line, and read the
per-session ``session_<k>/metrics.csv`` files that runs written before this file kept.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

TABLE = "metrics.csv"
SESSION = "session"
# One session's log: column -> float array (NaN where a cell was empty or unparsable).
Curves = dict[str, np.ndarray]


def format_block(
    columns: tuple[str, ...],
    shared: Mapping[str, Any],
    per_session: Mapping[str, np.ndarray],
    sessions: int,
    blank: tuple[str, ...] = (),
) -> str:
    """The text of one log point: a row per session, ``session`` then ``columns``.

    ``shared``: Python values common to every row (``frame``: int, ``wall_time``: float);
    ``per_session``: ``[S]`` arrays, formatted by dtype (integers as ``%d``, floats as
    ``%.6g``); ``blank``: float columns left empty where not finite.
    """
    parts, values = ["%d"], [range(sessions)]
    for name in columns:
        if name in per_session:
            array = np.asarray(per_session[name]).reshape(sessions)
            if name in blank:
                parts.append("%s")
                values.append([f"{v:.6g}" if math.isfinite(v) else "" for v in array.tolist()])
            else:
                parts.append("%d" if array.dtype.kind in "biu" else "%.6g")
                values.append(array.tolist())
        else:
            parts.append(_cell(shared.get(name)).replace("%", "%%"))
    row = ",".join(parts)
    return "".join(row % cells + "\n" for cells in zip(*values, strict=True))


def _cell(value: Any) -> str:
    """A shared value's text: empty for None, ``%.6g`` for a float, else ``str``."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class MetricsTable:
    """Appends blocks to ``directory/metrics.csv``; buffered until :meth:`flush`.

    A new table writes its header; ``resume_frame`` keeps an existing table up to that
    frame (:func:`truncate_table`) and its columns.
    """

    def __init__(
        self,
        directory: Path,
        columns: tuple[str, ...],
        sessions: int,
        resume_frame: int | None = None,
        blank: tuple[str, ...] = (),
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path, self.sessions, self.blank = directory / TABLE, sessions, blank
        if resume_frame is None:
            self.path.write_text(",".join((SESSION, *columns)) + "\n")
            self.columns = columns
        else:
            self.columns = truncate_table(self.path, resume_frame)
        self._buffer = io.StringIO()

    def write(self, shared: Mapping[str, Any], per_session: Mapping[str, np.ndarray]) -> None:
        """One log point (:func:`format_block`)."""
        block = format_block(self.columns, shared, per_session, self.sessions, self.blank)
        self._buffer.write(block)

    def flush(self) -> None:
        """Append the buffered blocks to the file."""
        text = self._buffer.getvalue()
        if text:
            with open(self.path, "a", newline="") as f:
                f.write(text)
            self._buffer = io.StringIO()


def resume_problem(run_dir: Path) -> str | None:
    """Why ``run_dir``'s rows cannot be continued (None when they can): no table (a run
    written before it keeps per-session files), or a header without ``session``/``frame``."""
    path = run_dir / TABLE
    if not path.is_file():
        if _legacy_files(run_dir):
            return (
                "keeps its rows in session_<k>/metrics.csv (a jaxlab from before the one-file "
                "metrics.csv wrote it); resume it with the git SHA in provenance.json"
            )
        return "has no metrics.csv to continue; train its spec.yaml again"
    with open(path, "rb") as f:
        names = f.readline().decode(errors="replace").rstrip("\r\n").split(",")
    if SESSION not in names or "frame" not in names:
        return "metrics.csv is damaged (its header names no session and frame columns)"
    return None


def truncate_table(path: Path, frame: int) -> tuple[str, ...]:
    """Cut ``path`` after its last row with ``frame <= frame``; returns its columns (bar
    ``session``). Rows are in frame order, so the cut is one ``truncate`` after the kept
    prefix; a row torn by a kill (unterminated, or short of cells) ends the prefix too."""
    problem = resume_problem(path.parent)
    if problem is not None:
        raise ValueError(f"{path.parent} {problem}")
    with open(path, "rb+") as f:
        names = f.readline().decode().rstrip("\r\n").split(",")
        at, keep = names.index("frame"), f.tell()
        for line in iter(f.readline, b""):
            cells = line.split(b",")
            if not line.endswith(b"\n") or len(cells) != len(names):
                break
            if not _at_most(cells[at], frame):
                break
            keep += len(line)
        f.truncate(keep)
    return tuple(n for n in names if n != SESSION)


def _at_most(cell: bytes, frame: int) -> bool:
    """Whether a row's ``frame`` cell is a number ``<= frame`` (False when unparsable)."""
    try:
        return int(float(cell)) <= frame
    except ValueError:
        return False


def _terminated(path: Path) -> bytes:
    """The bytes of ``path`` up to its last newline (a line torn by a kill is dropped)."""
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def _legacy_files(run_dir: Path) -> list[Path]:
    """``session_<k>/metrics.csv`` of a run written before the table, in session order."""
    found = [p for p in run_dir.glob("session_*/" + TABLE) if p.parent.name[8:].isdigit()]
    return sorted(found, key=lambda p: int(p.parent.name[8:]))


def has_rows(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a metrics table (or a run's older per-session files)."""
    return (run_dir / TABLE).is_file() or bool(_legacy_files(run_dir))


def row_sources(run_dir: Path) -> list[Path]:
    """The files a run's rows are read from (for staleness checks)."""
    table = run_dir / TABLE
    return [table] if table.is_file() else _legacy_files(run_dir)


def read_curves(run_dir: Path, sessions: int | None = None) -> list[Curves]:
    """Each session's rows of ``run_dir`` as :data:`Curves`, in session order (``sessions``:
    at least this many, sessions with no row getting empty arrays). Rows without a numeric
    ``frame`` are dropped."""
    table = run_dir / TABLE
    if table.is_file():
        return _split_sessions(_read_numeric(table), sessions or 0)
    curves = [read_csv_curves(p) for p in _legacy_files(run_dir)]
    empty = {c: np.zeros(0) for c in (curves[0] if curves else ("frame", "return"))}
    return curves + [dict(empty) for _ in range(len(curves), sessions or 0)]


def _read_numeric(path: Path) -> Any:
    """``path`` as a float DataFrame (empty or unparsable cells NaN), parsed exactly."""
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(_terminated(path)), float_precision="round_trip")
    for name in frame.columns:
        if frame[name].dtype.kind not in "biuf":
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame.astype(float)


def _split_sessions(frame: Any, at_least: int) -> list[Curves]:
    """One :data:`Curves` per ``session`` value 0..max (at least ``at_least`` of them),
    rows kept in file order."""
    names = [c for c in frame.columns if c != SESSION]
    table = frame[names].to_numpy(float)
    session = frame[SESSION].to_numpy(float)
    # A damaged cell cannot name a session past the rows there are (nor a negative one).
    ok = (session >= 0) & (session < max(at_least, len(session)))
    ok &= np.isfinite(table[:, names.index("frame")])
    table, session = table[ok], session[ok].astype(np.int64)
    order = np.argsort(session, kind="stable")
    table = table[order]
    count = max(at_least, int(session.max()) + 1 if session.size else 0)
    bounds = np.searchsorted(session[order], np.arange(count + 1))
    return [
        {c: table[lo:hi, i].copy() for i, c in enumerate(names)}
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def read_rows(run_dir: Path) -> list[list[dict[str, str]]]:
    """Each session's rows of ``run_dir`` as the cells' text (``session`` left out), in
    session order: what the file says, exactly (golden records and tests compare it)."""
    table = run_dir / TABLE
    if not table.is_file():
        return [list(csv.DictReader(p.open(newline=""))) for p in _legacy_files(run_dir)]
    lines = list(csv.DictReader(io.StringIO(_terminated(table).decode())))
    rows: list[list[dict[str, str]]] = []
    for row in lines:
        k = row.pop(SESSION)
        if not k.isdigit() or int(k) >= len(lines):  # a damaged cell: no session's row
            continue
        rows.extend([] for _ in range(len(rows), int(k) + 1))
        rows[int(k)].append(row)
    return rows


def read_csv_curves(path: str | Path) -> Curves:
    """One single-session CSV (a run's ``session_<k>/metrics.csv`` before the table) as
    column -> float array; empty or unparsable cells are NaN, rows without a numeric
    ``frame`` dropped, a row cut short by a kill gets NaN cells."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        if "frame" not in columns:
            raise ValueError(f"{path}: no 'frame' column")
        rows = [[to_float(row.get(c)) for c in columns] for row in reader]
    table = np.array(rows, dtype=float).reshape(len(rows), len(columns))
    table = table[np.isfinite(table[:, columns.index("frame")])]
    return {c: table[:, i].copy() for i, c in enumerate(columns)}


def to_float(cell: Any) -> float:
    """A cell's number; NaN when empty, missing or unparsable."""
    try:
        return math.nan if cell is None or cell == "" or isinstance(cell, bool) else float(cell)
    except (TypeError, ValueError):
        return math.nan
