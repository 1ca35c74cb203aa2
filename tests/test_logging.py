"""The buffered CSV/TensorBoard writers: file format, histograms, and when rows reach disk."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import numpy as np
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.record_writer import RecordWriter, masked_crc32c

from jaxlab.logging import SessionLogs, columns_for
from jaxlab.logging.events import EventFile, histogram_protos


def read_events(path: Path) -> list[Event]:
    """Parse a TFRecord event file, checking both CRCs of every record."""
    data, events, i = path.read_bytes(), [], 0
    while i < len(data):
        header = data[i : i + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8 : i + 12])[0] == masked_crc32c(header)
        payload = data[i + 12 : i + 12 + length]
        crc = data[i + 12 + length : i + 16 + length]
        assert struct.unpack("<I", crc)[0] == masked_crc32c(payload)
        events.append(Event.FromString(payload))
        i += 16 + length
    assert i == len(data)
    return events


def test_records_are_framed_exactly_as_tensorboardx_frames_them(tmp_path):
    payload = Event(step=3, file_version="brain.Event:2").SerializeToString()
    ref = RecordWriter(str(tmp_path / "ref"))
    ref.write(payload)
    ref.close()
    from jaxlab.logging.events import _record

    assert _record(payload) == (tmp_path / "ref").read_bytes()


def test_event_file_scalars_histograms_and_purge(tmp_path):
    tb = EventFile(tmp_path / "tb", purge_step=11)
    tb.scalars({"session/return": 1.5, "session/fps": 100.0}, step=12)
    (histo,) = histogram_protos(np.array([[0.0, 1.0, 1.0, 3.0]]), bins=3)
    tb.histogram("actions", histo, step=12)
    assert len(read_events(tb.path)) == 2  # version + purge, written at creation
    tb.close()
    version, purge, scalars, hist = read_events(tb.path)
    assert version.file_version == "brain.Event:2"
    assert purge.step == 11 and purge.session_log.status == SessionLog.START
    assert scalars.step == 12
    assert {v.tag: v.simple_value for v in scalars.summary.value} == {
        "session/return": 1.5,
        "session/fps": 100.0,
    }
    h = hist.summary.value[0].histo
    assert hist.summary.value[0].tag == "actions"
    assert list(h.bucket_limit) == [0.0, 1.0, 2.0, 3.0] and list(h.bucket) == [0, 1, 2, 1]
    assert (h.min, h.max, h.num, h.sum, h.sum_squares) == (0.0, 3.0, 4, 5.0, 11.0)
    again = EventFile(tmp_path / "tb")  # same second: a new file, never the old one
    assert again.path != tb.path and len(read_events(tb.path)) == 4


def test_histograms_of_many_rows_match_numpy_row_by_row():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 7, 9))
    values[2] = 4.0  # constant row
    values[3, 0, 0] = np.nan  # not finite: nothing logged
    protos = histogram_protos(values, bins=30)
    assert protos[3] is None
    for k in (0, 1, 4):
        counts, edges = np.histogram(values[k], bins=30)
        assert list(protos[k].bucket)[1:] == counts.tolist()
        np.testing.assert_allclose(protos[k].bucket_limit, edges)
        np.testing.assert_allclose(protos[k].sum_squares, (values[k] ** 2).sum())
        assert protos[k].num == values[k].size
    from jaxlab.logging import events

    blocks = events.BLOCK_ELEMENTS
    try:  # the same histograms when rows are processed a few at a time
        events.BLOCK_ELEMENTS = 2 * 63
        assert histogram_protos(values, bins=30) == protos
    finally:
        events.BLOCK_ELEMENTS = blocks
    assert sorted(protos[2].bucket)[-1] == 63 and sum(protos[2].bucket) == 63
    assert protos[2].min == protos[2].max == 4.0


def test_rows_reach_disk_on_flush_in_order(tmp_path):
    """Every session's rows go to one metrics.csv; only the first ``detailed`` sessions get
    TensorBoard scalars (non-finite values skipped); the trackers get every session's."""
    columns = columns_for(["policy_loss"])
    logs = SessionLogs(tmp_path, 3, columns, detailed=2, track=3)
    for frame in (10, 20):
        per_session = {"return": np.array([1.0, 2.0, 3.0]) * frame, "policy_loss": np.ones(3)}
        logs.write({"frame": frame}, per_session)
    path = tmp_path / "metrics.csv"
    assert list(csv.DictReader(path.open())) == []  # header only until flushed
    logs.flush()
    logs.write({"frame": 30}, {"return": np.full(3, 3.0), "policy_loss": np.full(3, np.nan)})
    logs.close()
    rows = list(csv.DictReader(path.open()))
    assert [(r["session"], r["frame"]) for r in rows[:4]] == [
        ("0", "10"), ("1", "10"), ("2", "10"), ("0", "20"),
    ]  # fmt: skip
    assert len(rows) == 9 and rows[2]["return"] == "30" and rows[8]["policy_loss"] == "nan"
    assert not (tmp_path / "session_2").exists()
    for k in (0, 1):
        (tb,) = (tmp_path / f"session_{k}" / "tb").glob("events.out.tfevents.*")
        scalar_events = [e for e in read_events(tb) if e.summary.value]
        assert [e.step for e in scalar_events] == [10, 20, 30]
        last = {v.tag for v in scalar_events[-1].summary.value}
        assert "session/return" in last and "session/policy_loss" not in last  # NaN skipped
    tracked = logs.take_tracked()
    assert [[frame for frame, _ in rows] for rows in tracked] == [[10, 20, 30]] * 3
    assert tracked[2][1][1]["session/return"] == 60.0
    assert logs.take_tracked() == [[], [], []]
