"""The default spec at 5e4 frames against its golden record (see tests/golden.py)."""

from __future__ import annotations

from tests import golden
from tests.conftest import REPO


def test_ppo_cartpole_at_5e4_frames_matches_its_golden_record(tmp_path):
    spec = REPO / "specs" / golden.LONG_SPEC
    run = golden.train(spec, tmp_path / "data", golden.long_run_args())
    assert golden.differences(golden.load(golden.LONG_NAME), golden.record(run)) == []


def test_differences_name_the_first_changed_value():
    base = {
        "metrics": {"session_0": [{"frame": "64", "return": "9"}]},
        "checkpoints": {"c/1": [1, 2]},
    }
    changed = {
        "metrics": {"session_0": [{"frame": "64", "return": "10"}]},
        "checkpoints": {"c/1": [1, 3]},
    }
    assert golden.differences(base, base) == []
    assert golden.differences(base, changed) == [
        "metrics/session_0[0]: expected {'frame': '64', 'return': '9'}, got {'frame': '64', 'return': '10'}",
        "checkpoints/c/1[1]: expected 2, got 3",
    ]
