"""The Trial's one ``metrics.csv``: cells exactly as the per-session files wrote them, a
resume's cut, readers that skip a torn row, and runs written before the table."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlab.logging.table import (
    MetricsTable,
    format_block,
    read_csv_curves,
    read_curves,
    read_rows,
    truncate_table,
)

COLUMNS = ("frame", "wall_time", "return", "episodes", "eval_return_mean", "loss", "lr")


def per_row_cells(shared, per_session, k, blank):
    """What the per-session writer wrote for session ``k``: each value on its own,
    ``float()`` then ``%.6g``, integers with ``str``, blanks for None (the reference)."""
    cells = [str(k)]
    for name in COLUMNS:
        if name in per_session:
            value = per_session[name][k]
            if per_session[name].dtype.kind in "iu":
                cells.append(str(int(value)))
            elif name in blank and not np.isfinite(value):
                cells.append("")
            else:
                cells.append(f"{float(value):.6g}")
        else:
            value = shared.get(name)
            cells.append(
                "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
            )
    return ",".join(cells)


def test_a_block_formats_every_cell_as_one_row_at_a_time_would():
    rng = np.random.default_rng(0)
    s = 64
    loss = rng.standard_normal(s).astype(np.float32).astype(np.float64) * 10.0 ** rng.integers(
        -8, 9, s
    )
    loss[:6] = [np.nan, np.inf, -np.inf, -0.0, 1234567.0, 1e-300]
    per_session = {
        "return": rng.random(s) * 500,
        "episodes": rng.integers(0, 3_000_000, s),
        "eval_return_mean": np.where(rng.random(s) < 0.5, np.nan, rng.random(s)),
        "loss": loss,
    }
    shared = {"frame": 2_500_000_000, "wall_time": 12.3456789}  # lr: absent, so empty
    blank = ("eval_return_mean",)
    text = format_block(COLUMNS, shared, per_session, s, blank)
    assert text.splitlines() == [per_row_cells(shared, per_session, k, blank) for k in range(s)]
    assert text.splitlines()[4].split(",")[COLUMNS.index("loss") + 1] == "1.23457e+06"


def test_a_table_round_trips_through_both_readers(tmp_path):
    table = MetricsTable(
        tmp_path, ("frame", "return", "eval_return_mean"), 2, blank=("eval_return_mean",)
    )
    table.write(
        {"frame": 64},
        {"return": np.array([1.5, np.nan]), "eval_return_mean": np.array([np.nan, 3.0])},
    )
    table.write({"frame": 128}, {"return": np.array([2.5, 4.0])})
    assert read_curves(tmp_path) == []  # buffered until flushed
    table.flush()
    rows = read_rows(tmp_path)
    assert rows == [
        [{"frame": "64", "return": "1.5", "eval_return_mean": ""},
         {"frame": "128", "return": "2.5", "eval_return_mean": ""}],
        [{"frame": "64", "return": "nan", "eval_return_mean": "3"},
         {"frame": "128", "return": "4", "eval_return_mean": ""}],
    ]  # fmt: skip
    curves = read_curves(tmp_path, sessions=3)
    assert len(curves) == 3 and list(curves[0]) == ["frame", "return", "eval_return_mean"]
    np.testing.assert_array_equal(curves[1]["return"], [np.nan, 4.0])
    np.testing.assert_array_equal(curves[1]["eval_return_mean"], [3.0, np.nan])
    assert curves[2]["frame"].shape == (0,) and all(
        v.dtype == np.float64 for v in curves[0].values()
    )


def test_numbers_read_back_exactly(tmp_path):
    """The reader parses each cell as Python's float() does (pandas' default parser can
    be an ulp off), so a curve equals the logged value rounded to 6 digits."""
    values = np.random.default_rng(1).standard_normal(500) * 1e-3
    table = MetricsTable(tmp_path, ("frame", "loss"), 500)
    table.write({"frame": 1}, {"loss": values})
    table.flush()
    expected = [float(f"{v:.6g}") for v in values]
    assert [c["loss"][0] for c in read_curves(tmp_path)] == expected


def test_readers_drop_a_row_torn_by_a_kill_and_unparsable_cells_are_nan(tmp_path):
    rows = ["0,64,1", "1,64,oops", "0,128,2", "1e12,128,3", "-1,128,3", "x,128,3"]
    (tmp_path / "metrics.csv").write_text("session,frame,return\n" + "\n".join(rows) + "\n1,12")
    # a damaged session cell names no session (1e12 would be a trillion empty curves)
    assert [len(r) for r in read_rows(tmp_path)] == [2, 1]
    curves = read_curves(tmp_path)
    assert len(curves) == 2
    np.testing.assert_array_equal(curves[1]["return"], [np.nan])
    np.testing.assert_array_equal(curves[0]["frame"], [64, 128])


def test_truncate_keeps_rows_up_to_the_frame_and_drops_a_torn_last_row(tmp_path):
    path = tmp_path / "metrics.csv"
    body = "".join(f"{k},{f},{f // 64}\n" for f in (64, 128, 192) for k in (0, 1))
    path.write_text("session,frame,return\n" + body + "0,256,4")
    assert truncate_table(path, 192) == ("frame", "return")
    assert path.read_text() == "session,frame,return\n" + body
    truncate_table(path, 100)
    assert path.read_text().splitlines() == ["session,frame,return", "0,64,1", "1,64,1"]
    table = MetricsTable(tmp_path, ("ignored",), 2, resume_frame=64)  # a resume keeps the file's
    assert table.columns == ("frame", "return")
    table.write({"frame": 128}, {"return": np.array([7.0, 8.0])})
    table.flush()
    assert path.read_text().splitlines()[-2:] == ["0,128,7", "1,128,8"]


def test_a_file_without_session_and_frame_is_refused(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("frame,return\n64,1\n")
    with pytest.raises(ValueError, match="header names no session and frame columns"):
        truncate_table(path, 64)


def test_runs_written_before_the_table_still_read(tmp_path):
    """Older runs kept session_<k>/metrics.csv: reports, Run.load and benchmark mode read
    them as before."""
    for k, text in enumerate(["frame,return\n64,1\n128,2\n", "frame,return\n64,3\n"]):
        (tmp_path / f"session_{k}").mkdir()
        (tmp_path / f"session_{k}" / "metrics.csv").write_text(text)
    (tmp_path / "session_10").mkdir()  # no file: not a session's rows
    curves = read_curves(tmp_path, sessions=3)
    np.testing.assert_array_equal(curves[0]["return"], [1, 2])
    np.testing.assert_array_equal(curves[1]["return"], [3])
    assert curves[2]["return"].shape == (0,)
    assert read_rows(tmp_path)[1] == [{"frame": "64", "return": "3"}]


def test_read_csv_curves_of_one_session_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        "frame,return,eval_return_mean,lr\n"
        "64,,,0.001\n"
        "128,21.5,,0.0009\n"
        "192,nan,30,8e-4\n"
        "256,40"  # a row cut short by a kill: missing cells are NaN
    )
    c = read_csv_curves(path)
    assert list(c) == ["frame", "return", "eval_return_mean", "lr"]
    np.testing.assert_array_equal(c["frame"], [64, 128, 192, 256])
    np.testing.assert_array_equal(c["return"], [np.nan, 21.5, np.nan, 40])
    np.testing.assert_array_equal(c["eval_return_mean"], [np.nan, np.nan, 30, np.nan])
    np.testing.assert_allclose(c["lr"], [1e-3, 9e-4, 8e-4, np.nan])
    header_only = tmp_path / "empty.csv"
    header_only.write_text("frame,return\n")
    assert read_csv_curves(header_only)["return"].shape == (0,)


def test_pandas_reads_the_table_as_a_tidy_frame(tmp_path):
    import pandas as pd

    table = MetricsTable(tmp_path, ("frame", "return"), 3)
    for frame in (64, 128):
        table.write({"frame": frame}, {"return": np.arange(3.0) + frame})
    table.flush()
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert list(frame.columns) == ["session", "frame", "return"]
    assert frame.groupby("session")["return"].last().tolist() == [128.0, 129.0, 130.0]
