"""Every shipped spec of a non-gymnax suite (Brax, Playground, Craftax, Jumanji, Navix,
XLand-MiniGrid, EnvPool) trains in shrink mode through the CLI and reproduces its golden
record: the checks of :func:`tests.test_cli.check_shrink_run`, in their own file so that
pytest-xdist can run them beside the gymnax specs' on the other worker."""

from __future__ import annotations

import pytest

from tests.conftest import SUITE_SPECS
from tests.test_cli import check_shrink_run


@pytest.mark.parametrize("path", SUITE_SPECS, ids=lambda p: p.stem)
def test_every_shipped_suite_spec_trains_in_shrink_mode(path, tmp_path, capsys):
    check_shrink_run(path, tmp_path, capsys)
