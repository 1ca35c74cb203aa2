"""The public Python API (jaxlab/api.py): the README's example run as written, spec
overrides in both forms, and ``import jaxlab`` staying light."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxlab
from jaxlab import api
from jaxlab.logging import COLUMNS
from jaxlab.spec import load_spec as spec_load_spec
from jaxlab.spec import shrink
from tests.conftest import REPO

CARTPOLE = REPO / "specs" / "ppo" / "ppo_cartpole.yaml"


def readme_example() -> str:
    """The first ```python block under README.md's "## Python API" heading."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```python\n(.*?)^```$", section, re.S | re.M)
    assert match, "no ```python block in README's Python API section"
    return match.group(1)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Run the README example as written, from a folder holding only ``specs/``."""
    work = tmp_path_factory.mktemp("readme")
    (work / "specs").symlink_to(REPO / "specs")
    scope: dict = {}
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.chdir(work)
        exec(compile(readme_example(), "README.md", "exec"), scope)
    return work, scope, out.getvalue()


def scope_run(readme_run, monkeypatch) -> jaxlab.Run:
    """The README's Run, from the folder it ran in (its run_dir is relative, as given)."""
    monkeypatch.chdir(readme_run[0])
    return readme_run[1]["run"]


def test_the_readme_example_trains_and_returns_a_run(readme_run):
    work, scope, printed = readme_run
    run, spec = scope["run"], scope["spec"]
    assert isinstance(run, jaxlab.Run)
    assert run.run_dir.parent == Path("data") and run.run_dir.name.startswith("ppo_cartpole_")
    assert run.summary == json.loads((work / run.run_dir / "trial_summary.json").read_text())
    assert run.summary["status"] == "complete"
    assert run.summary["frames_per_session"] == spec.env.max_frame == 10_240
    assert run.final_return == run.summary["final_return_mean"] is not None
    assert len(run.metrics) == spec.meta.max_session == 2
    for metrics in run.metrics:
        assert tuple(metrics)[: len(COLUMNS)] == COLUMNS
        assert all(isinstance(v, np.ndarray) and v.shape == (10,) for v in metrics.values())
        np.testing.assert_array_equal(metrics["frame"], 1024 * np.arange(1, 11))
    leaves = [np.shape(x) for x in jax.tree.leaves(run.state)]
    assert leaves and all(shape[:1] == (2,) for shape in leaves)
    assert printed.splitlines() == [
        f"final return {run.final_return:.1f}, saved to {run.run_dir}",
        "(10,)",
    ]
    assert repr(run).startswith(f"Run({str(run.run_dir)!r}, complete, final_return=")


def test_a_run_reads_back_and_a_finished_run_resumes_as_it_is(readme_run, capsys, monkeypatch):
    run = scope_run(readme_run, monkeypatch)
    loaded = jaxlab.Run.load(run.run_dir)
    assert loaded.summary == run.summary and loaded.state is None
    for a, b in zip(loaded.metrics, run.metrics, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    again = jaxlab.resume(run.run_dir)
    assert "already finished" in capsys.readouterr().out
    assert again.summary == run.summary and again.run_dir == run.run_dir


def test_enjoy_plays_a_checkpoint_of_the_run(readme_run, monkeypatch):
    run = scope_run(readme_run, monkeypatch)
    record = jaxlab.enjoy(run.run_dir, episodes=2, checkpoint="latest", session=1)
    assert record["frame"] == 10_240 and record["session"] == 1
    assert len(record["returns"]) == 2 and record["return_mean"] > 0


def test_load_spec_takes_overrides_as_a_dict_or_as_strings():
    base = jaxlab.load_spec(CARTPOLE)
    assert base == spec_load_spec(CARTPOLE)
    as_dict = jaxlab.load_spec(
        CARTPOLE,
        {
            "env.max_frame": 20_000,
            "meta.max_session": 2,
            "agent.net.hid_layers": [32, 32],
            "agent.net.optim.lr": "1e-3",  # a string is YAML text, as after -s
            "meta.compile": "fast",
        },
    )
    as_list = jaxlab.load_spec(
        CARTPOLE,
        [
            "env.max_frame=20000",
            "meta.max_session=2",
            "agent.net.hid_layers=[32, 32]",
            "agent.net.optim.lr=1e-3",
            "meta.compile=fast",
        ],
    )
    assert as_dict == as_list != base
    assert as_dict.env.max_frame == 20_000 and as_dict.meta.max_session == 2
    assert tuple(as_dict.agent.net.hid_layers) == (32, 32)
    assert as_dict.agent.net.optim.lr == 1e-3
    assert jaxlab.load_spec(CARTPOLE, {"agent.net.optim.lr": 2.5e-5}).agent.net.optim.lr == 2.5e-5
    assert jaxlab.load_spec(CARTPOLE, shrink=True) == shrink(base)
    kept = jaxlab.load_spec(CARTPOLE, {"meta.compile": "optimized"}, shrink=True)
    assert kept.meta.compile == "optimized"  # as -s meta.compile=... with --shrink


def test_overrides_apply_to_a_spec_object_as_to_its_file():
    spec = jaxlab.load_spec(CARTPOLE)
    sets = {"env.max_frame": 20_000, "meta.max_session": 3}
    assert api._as_spec(spec, sets, shrink=False) == jaxlab.load_spec(CARTPOLE, sets)
    assert api._as_spec(spec, None, shrink=True) == shrink(spec)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["meta.max_session"], "must look like key.path=value"),
        ({"meta.max_session": 0}, "max_session"),
        ({"meta.no_such_key": 1}, "no_such_key"),
        ({"no_such_var": 1}, "no ${no_such_var} placeholder"),
    ],
)
def test_a_bad_override_raises_the_specs_spec_error(overrides, message):
    assert jaxlab.SpecError is api.SpecError
    with pytest.raises(jaxlab.SpecError) as err:
        jaxlab.load_spec(CARTPOLE, overrides)
    assert message in str(err.value)


def test_overrides_must_be_a_dict_or_a_list_not_one_string():
    with pytest.raises(TypeError, match="not a str"):
        jaxlab.load_spec(CARTPOLE, "meta.max_session=2")


def test_search_refuses_a_folder_that_is_not_an_experiment(tmp_path):
    with pytest.raises(jaxlab.UsageError, match="is not an experiment"):
        jaxlab.search(tmp_path)


def test_import_jaxlab_is_light_and_the_api_names_resolve():
    """``import jaxlab`` (every CLI call, every Ray worker) must not import jax, gymnax or
    Ray; the API names resolve on first access (PEP 562). jaxlab.api imports jax (the
    spec's algorithm configs are flax structs) but no env suite, Ray or matplotlib, which
    it imports only inside the functions that run something."""
    code = """
import sys
import jaxlab
heavy = ("jax", "gymnax", "ray", "matplotlib", "jaxlab.api")
print(sorted(m for m in heavy if m in sys.modules))
names = sorted(jaxlab.__all__)
assert set(names) <= set(dir(jaxlab)), names
from jaxlab import api
assert all(getattr(jaxlab, n) is getattr(api, n) for n in names)
print(sorted(m for m in heavy[1:-1] if m in sys.modules))  # the spec's configs need jax
print(jaxlab.train.__module__, jaxlab.Run.__name__)
try:
    jaxlab.no_such_name
except AttributeError as err:
    print(err)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.splitlines() == [
        "[]",
        "[]",
        "jaxlab.api Run",
        "module 'jaxlab' has no attribute 'no_such_name'",
    ]
