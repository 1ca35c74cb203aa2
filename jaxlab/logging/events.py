"""A synchronous, buffered TensorBoard event file (no writer thread, one file write per flush).

tensorboardX's ``SummaryWriter`` starts a writer thread per instance and encodes one
``Event`` per scalar; with one writer per session that is S threads and ~16 events per
session per log point, which dominated the host loop (about 2.8 ms per session per log
point against about 0.1 ms here, ``benchmarks/overhead.py``). :class:`EventFile` encodes
one ``Event`` per log point holding every scalar of the row, keeps the framed records in
memory, and appends them to its file on :meth:`flush` (open, write, close: no file handle
is held between flushes, so thousands of sessions do not exhaust descriptors).

The file format is TensorBoard's: TFRecord framing (length, masked CRC32C of the length,
payload, masked CRC32C of the payload) of ``Event`` protos, the first one carrying
``file_version``. ``purge_step`` writes TensorBoard's ``SessionLog.START`` at that step,
which makes readers drop the events an earlier (pre-resume) stream wrote from it on.
"""

from __future__ import annotations

import io
import socket
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.summary_pb2 import HistogramProto, Summary
from tensorboardX.record_writer import masked_crc32c

HISTOGRAM_BINS = 30
BLOCK_ELEMENTS = 1 << 22


def _record(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + payload
        + struct.pack("<I", masked_crc32c(payload))
    )


def histogram_protos(values: Any, bins: int = HISTOGRAM_BINS) -> list[HistogramProto | None]:
    """TensorBoard histograms of each row of ``values`` ``[S, ...]`` (one per session), in
    ``bins`` equal buckets between the row's min and max, computed for all rows at once.

    Buckets are given by their right edges; an empty leading bucket carries the left edge.
    A row that is empty or not all finite gets None (nothing is logged for it). Rows are
    processed in blocks of about :data:`BLOCK_ELEMENTS` values, so thousands of sessions of
    a large network never need more than a few hundred MB of scratch.
    """
    values = np.asarray(values)
    values = values.reshape(values.shape[0], -1)
    rows, n = values.shape
    step = max(1, BLOCK_ELEMENTS // max(n, 1))
    if rows > step:
        return [
            h for s in range(0, rows, step) for h in histogram_protos(values[s : s + step], bins)
        ]
    v = values.astype(np.float64)
    ok = np.isfinite(v).all(axis=1) & (n > 0)
    if n == 0 or not ok.any():
        return [None] * rows
    v = np.where(ok[:, None], v, 0.0)
    vmin, vmax = v.min(axis=1), v.max(axis=1)
    flat = vmin == vmax
    lo, hi = np.where(flat, vmin - 0.5, vmin), np.where(flat, vmax + 0.5, vmax)
    width = (hi - lo) / bins
    idx = np.clip(((v - lo[:, None]) / width[:, None]).astype(np.int64), 0, bins - 1)
    idx += np.arange(rows)[:, None] * bins
    counts = np.bincount(idx.ravel(), minlength=rows * bins).reshape(rows, bins)
    edges = lo[:, None] + width[:, None] * np.arange(bins + 1)
    total, squares = v.sum(axis=1), np.einsum("ij,ij->i", v, v)
    return [
        HistogramProto(
            min=float(vmin[k]),
            max=float(vmax[k]),
            num=float(n),
            sum=float(total[k]),
            sum_squares=float(squares[k]),
            bucket_limit=edges[k].tolist(),
            bucket=[0.0, *counts[k].tolist()],
        )
        if ok[k]
        else None
        for k in range(rows)
    ]


class EventFile:
    """One TensorBoard event stream in ``directory``, written on :meth:`flush`."""

    def __init__(self, directory: Path, purge_step: int | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        path, n = directory / stem, 0
        while path.exists():  # a resume within the same second: never append to the old one
            n += 1
            path = directory / f"{stem}.{n}"
        self.path = path
        self._buffer = io.BytesIO()
        step = 0 if purge_step is None else purge_step
        self._write(Event(wall_time=time.time(), step=step, file_version="brain.Event:2"))
        if purge_step is not None:
            start = SessionLog(status=SessionLog.START)
            self._write(Event(wall_time=time.time(), step=purge_step, session_log=start))
        self.flush()

    def _write(self, event: Event) -> None:
        self._buffer.write(_record(event.SerializeToString()))

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Every ``tag: value`` of ``values`` at ``step``, as one event."""
        if values:
            summary = Summary(
                value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()]
            )
            self._write(Event(wall_time=time.time(), step=int(step), summary=summary))

    def histogram(self, tag: str, histo: HistogramProto | None, step: int) -> None:
        """A histogram (:func:`histogram_protos`) at ``step``; None logs nothing."""
        if histo is not None:
            summary = Summary(value=[Summary.Value(tag=tag, histo=histo)])
            self._write(Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        """Append the buffered events to the file."""
        data = self._buffer.getvalue()
        if data:
            with open(self.path, "ab") as f:
                f.write(data)
            self._buffer = io.BytesIO()

    def close(self) -> None:
        self.flush()


__all__ = ["EventFile", "histogram_protos"]
