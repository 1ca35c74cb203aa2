"""Results are part of the product: the shipped specs, at the reduced budgets of
``benchmarks/suites/bands.yaml``, must land inside the bands recorded there.

Two published CartPole numbers once drifted with nothing to catch it; this check runs the
suite through the ``benchmark`` command's own code and fails on any row whose IQM over 4
sessions falls below its recorded floor (the file says how the floors were set).
"""

from __future__ import annotations

import pytest

import jaxlab
from tests.conftest import REPO


@pytest.mark.slow
def test_the_shipped_specs_stay_inside_their_recorded_bands(tmp_path):
    result = jaxlab.benchmark(REPO / "benchmarks/suites/bands.yaml", tmp_path)
    summary = result.summary
    rows = summary["rows"]
    assert summary["status_counts"] == {"complete": len(rows)}, summary["failed"]
    outside = [
        f"{r['algorithm']} on {r['env']}: IQM {r['iqm']:.4g} below {r['band_low']}"
        for r in rows
        if not r["in_band"]
    ]
    assert outside == []
    assert all(r["band_low"] is not None for r in rows)  # every row has a band
