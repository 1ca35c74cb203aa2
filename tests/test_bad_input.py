"""Bad input through the real CLI: exit 2, one line on stderr, no traceback, nothing written
outside ``--data`` (and, for a spec refused up front, no run folder at all).

Each case is a spec override or a spec file that used to train anyway, write outside the
data folder, or end in a Python traceback (issue: hardening).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import pytest
import yaml

from jaxlab.cli import main
from tests.conftest import REPO

BASE = {
    "name": "bad_input",
    "agent": {
        "algorithm": {"name": "PPO", "time_horizon": 8, "minibatch_count": 2},
        "net": {"hid_layers": [8]},
    },
    "env": {"name": "CartPole-v1", "num_envs": 2, "max_frame": 64},
    "meta": {"max_session": 1, "log_frequency": 32},
}

OVERRIDES = [
    ("name=../../escaped", "name: must be 1-100 ASCII letters"),
    ("name=/tmp/absolute", "name: must be 1-100 ASCII letters"),
    ("name=.hidden", "name: must be 1-100 ASCII letters"),
    ("name=h\u00e9llo", "name: must be 1-100 ASCII letters"),
    ("name=" + "a" * 300, "name: must be 1-100 ASCII letters"),
    ("meta.random_seed=4294967296", "meta.random_seed: must lie in [0, 4294967295]"),
    ("meta.random_seed=100000000000000000000000", "meta.random_seed: must be an integer within"),
    ("env.max_frame=1e30", "env.max_frame: must be an integer within"),
    ("env.max_frame=3000000000", "env.max_frame: must be at most 2,147,483,647"),
    ("agent.net.optim.lr=.nan", "agent.net.optim.lr: must be a finite number"),
    ("agent.net.optim.lr=.inf", "agent.net.optim.lr: must be a finite number"),
    ("agent.algorithm.gamma=-.inf", "agent.algorithm.gamma: must be a finite number"),
    ("env.params.max_steps_in_episode=-5", "env.params.max_steps_in_episode: must be >= 1"),
    ("env.params.max_steps_in_episode=abc", "env.params.max_steps_in_episode: must be an integer"),
    # One session fits, a billion do not: the session count is named, before any allocation.
    ("meta.max_session=1000000000", "meta.max_session: the Trial state needs"),
    # A network too large for one session names the network, not the env count.
    (
        "agent.net.hid_layers=[100000,100000]",
        "agent.net.hid_layers: the Trial state needs 223.53 GiB (1 session x 223.53 GiB)",
    ),
    ("agent.net.recurrent=RNN", "agent.net.recurrent: must be one of 'GRU', 'LSTM'"),
    ("agent.net.recurrent_size=0", "agent.net.recurrent_size: must be positive"),
]


def train_args(tmp_path, spec_path, *extra):
    return ["train", str(spec_path), "--data", str(tmp_path / "data"), "--no-progress", *extra]


def run_cli(tmp_path, spec_path, *extra):
    """``jaxlab train`` in this process, through the CLI's ``main`` (what ``python -m
    jaxlab`` calls): its exit code, stdout and stderr. A fresh interpreter per case cost
    3-20 s of imports each; :func:`run_cli_process` runs a few cases that way too, to
    check the process itself (its exit status, nothing printed on the way)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(train_args(tmp_path, spec_path, *extra))
        except SystemExit as stop:  # argparse's own refusals
            code = stop.code
    return subprocess.CompletedProcess("jaxlab", code, out.getvalue(), err.getvalue())


def run_cli_process(tmp_path, spec_path, *extra):
    """``python -m jaxlab train`` in a fresh interpreter."""
    env = {**os.environ, "JAXLAB_XLA_CACHE": "off"}
    return subprocess.run(
        [sys.executable, "-m", "jaxlab", *train_args(tmp_path, spec_path, *extra)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip


def assert_refused(result, message, tmp_path, before):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before  # nothing beside
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


@pytest.mark.parametrize(("override", "message"), OVERRIDES, ids=[o[:40] for o, _ in OVERRIDES])
def test_a_bad_override_is_one_line_and_writes_nothing(tmp_path, override, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(BASE))
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    assert_refused(run_cli(tmp_path, spec, "-s", override), message, tmp_path, before)


# A spec error, an env-suite error and a malformed override, each in a fresh interpreter.
PROCESS_CASES = [
    (["-s", "meta.random_seed=4294967296"], "meta.random_seed: must lie in [0, 4294967295]"),
    (["-s", "env.name=brax/antt"], "env.name: unknown brax environment 'antt'"),
    (["-s", "no_equals_sign"], "-s no_equals_sign"),
]


@pytest.mark.parametrize(("extra", "message"), PROCESS_CASES, ids=["spec", "suite", "override"])
def test_the_process_exits_2_with_one_line(tmp_path, extra, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(BASE))
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    assert_refused(run_cli_process(tmp_path, spec, *extra), message, tmp_path, before)


def test_a_duplicate_key_names_its_path_and_lines(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(BASE)
        + "search:\n  agent.net.optim.lr__choice: [1.0e-3]\n  agent.net.optim.lr__choice: [2.0e-3]\n"
    )
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    message = "search.agent.net.optim.lr__choice: duplicate key (lines"
    assert_refused(run_cli(tmp_path, spec), message, tmp_path, before)


def test_a_binary_spec_file_is_one_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(bytes(range(256)) * 4)
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    assert_refused(run_cli(tmp_path, spec), "not a text (UTF-8) spec file", tmp_path, before)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "jaxlab: the following arguments are required: MODE (see jaxlab --help)"),
        (["fly"], "jaxlab: argument MODE: invalid choice: 'fly'"),
        (["train"], "jaxlab train: the following arguments are required: spec (see jaxlab train"),
        (["enjoy", "run", "--episodes", "x"], "jaxlab enjoy: argument --episodes: invalid int"),
        (["train", "spec.yaml", "--frobnicate"], "jaxlab: unrecognized arguments: --frobnicate"),
    ],
    ids=["no-mode", "unknown-mode", "no-spec", "not-an-int", "unknown-flag"],
)
def test_command_line_mistakes_are_one_line_not_a_usage_block(capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.startswith(message) and err.count("\n") == 1, err


# Env suites (issue: env suites): each refused up front, in one line, with no run folder.
SUITE_CASES = [
    (["env.name=brx/ant"], "env.name: unknown env suite 'brx' (did you mean 'brax'?)"),
    (["env.name=ant"], "env.name: unknown gymnax environment 'ant' (did you mean 'brax/ant'?)"),
    (["env.name=brax/antt"], "env.name: unknown brax environment 'antt' (did you mean 'ant'?)"),
    (
        ["env.name=brax/ant", "env.params.backnd=mjx"],
        "env.params.backnd: not a parameter of brax/ant (did you mean 'backend'?)",
    ),
    (
        ["env.name=navix/Navix-Empty-5x5-v0", "env.params.max_steps=0"],
        "env.params.max_steps: must be",
    ),
    (
        ["env.name=brax/inverted_pendulum", "agent.algorithm=DQN", "agent.memory.name=Replay"],
        "DQN needs discrete actions; brax/inverted_pendulum has none",
    ),
    (
        ["env.name=envpool/HalfCheetah-v6"],
        "env.name: unknown envpool environment 'HalfCheetah-v6' (did you mean 'HalfCheetah-v5'?)",
    ),
    (
        ["env.name=envpool/Hopper-v5", "env.params.max_episode_step=5"],
        "env.params.max_episode_step: not a parameter of envpool/Hopper-v5 (did you mean 'max_episode_steps'?)",
    ),
    (
        ["env.name=envpool/Pong-v5", "env.params.repeat_action_probability=high"],
        "env.params.repeat_action_probability: must be a number, got 'high'",
    ),
    (
        ["env.name=envpool/HalfCheetah-v5", "agent.algorithm=DQN", "agent.memory.name=Replay"],
        "DQN needs discrete actions; envpool/HalfCheetah-v5 has none",
    ),
    (
        ["env.name=jumanji/Maze-v0", "env.normalize_obs=true"],
        "env.normalize_obs: jumanji/Maze-v0 appends its action mask to the observation",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"), SUITE_CASES, ids=[c[1][:40] for c in SUITE_CASES]
)
def test_a_bad_suite_env_is_one_line_and_writes_nothing(tmp_path, overrides, message):
    spec = tmp_path / "spec.yaml"
    algorithm = {"name": "DQN"} if "agent.algorithm=DQN" in overrides else None
    base = {**BASE, "agent": {**BASE["agent"], "algorithm": algorithm}} if algorithm else BASE
    spec.write_text(yaml.safe_dump(base))
    sets = [arg for o in overrides if o != "agent.algorithm=DQN" for arg in ("-s", o)]
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    assert_refused(run_cli(tmp_path, spec, *sets), message, tmp_path, before)


def test_a_suite_whose_extra_is_missing_names_the_extra(tmp_path):
    """Brax hidden from the interpreter (``sys.modules['brax'] = None`` makes its import
    fail as if it were not installed): the spec is refused naming the extra."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**BASE, "env": {**BASE["env"], "name": "brax/ant"}}))
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    code = (
        "import sys; sys.modules['brax'] = None; from jaxlab.cli import main; "
        f"sys.exit(main(['train', {str(spec)!r}, '--data', {str(tmp_path / 'data')!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    message = "env.name: the brax suite needs its extra: pip install -e '.[brax]'"
    assert_refused(result, message, tmp_path, before)


def run_search(tmp_path, *extra):
    spec = tmp_path / "search.yaml"
    spec.write_text(yaml.safe_dump({**BASE, "search": {"agent.net.optim.lr__choice": [1e-3]}}))
    env = {**os.environ, "JAXLAB_XLA_CACHE": "off"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "jaxlab", "search", str(spec), "--data", str(tmp_path / "data"),
         *extra],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip


def test_an_unreachable_ray_address_fails_fast_in_one_line(tmp_path):
    """Ray itself retries a dead address for minutes; jaxlab probes it first."""
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    result = run_search(tmp_path, "--address", "127.0.0.1:9")
    message = "ray: cannot reach a Ray cluster at 127.0.0.1:9 (Connection refused)"
    assert_refused(result, message, tmp_path, before)


@pytest.mark.slow
def test_search_resources_no_node_has_are_refused_not_waited_for(tmp_path):
    """Ray would queue a trial asking for 100 CPUs forever, printing nothing."""
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    result = run_search(tmp_path, "-s", "meta.search_resources.cpu=100")
    message = "meta.search_resources: no Ray node has cpu 100 and gpu 0 for one trial"
    assert_refused(result, message, tmp_path, before)


def test_a_data_folder_the_os_refuses_is_one_line(tmp_path):
    """``--data`` naming a file (as root, a read-only folder would still be writable)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(BASE))
    (tmp_path / "data").write_text("a file, not a folder")
    result = run_cli(tmp_path, spec)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("jaxlab: file system: ") and str(tmp_path / "data") in line, line
    assert (tmp_path / "data").read_text() == "a file, not a folder"


# The error boundary, in process (a fault injected where no input could cause one).
def boom(*args, **kwargs):
    raise ZeroDivisionError("injected fault")


def test_an_unexpected_failure_in_a_run_is_one_line_with_the_traceback_in_the_run(
    tmp_path, monkeypatch, capsys
):
    from jaxlab.cli import main
    from jaxlab.runtime import run

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(BASE))
    monkeypatch.setattr(run, "start", boom)  # fails inside the locked run folder
    assert main(["train", str(spec), "--data", str(tmp_path / "data"), "--no-progress"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    (folder,) = (tmp_path / "data").iterdir()
    saved = folder / "error.txt"
    expected = (
        f"jaxlab: unexpected error: ZeroDivisionError: injected fault (traceback saved to {saved})"
    )
    assert line == expected
    text = saved.read_text()
    assert text.startswith("ZeroDivisionError: injected fault") and "Traceback" in text


def test_an_unexpected_failure_outside_a_run_saves_its_traceback_to_a_temp_file(
    tmp_path, monkeypatch, capsys
):
    import tempfile

    from jaxlab import api
    from jaxlab.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(api, "report", boom)
    assert main(["report", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    (saved,) = tmp_path.glob("jaxlab_error_*.txt")
    assert line.endswith(f"(traceback saved to {saved})") and "injected fault" in line
    assert "Traceback" in saved.read_text()


def test_a_cluster_asking_for_a_token_gets_one_line_naming_the_setting(monkeypatch):
    """A cluster started with token authentication refuses a driver without the token
    (Ray raises AuthenticationError with a traceback); jaxlab says what to set."""
    import ray

    from jaxlab.experiment import raytune

    def refuse(**kwargs):
        raise ray.exceptions.AuthenticationError("no authentication token")

    monkeypatch.setattr(raytune, "probe", lambda address: None)  # as if it answered
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(raytune.ClusterError, match="uses token authentication: export RAY_AUTH"):
        raytune.init_ray("10.1.2.3:6379", quiet=True)
