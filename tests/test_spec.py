"""Spec loading and validation: every bad input is one line naming the key, exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from jaxlab.cli import main
from jaxlab.spec import SpecError, load_spec, parse_spec, shrink, spec_from_dict
from tests.conftest import REPO


def write(tmp_path, raw, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


def cli_error(tmp_path, capsys, raw, *extra):
    """Run the CLI on ``raw``; assert exit 2, one stderr line, nothing written; return it."""
    path = write(tmp_path, raw)
    data = tmp_path / "data"
    code = main(["train", str(path), "--data", str(data), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert not data.exists()
    return err


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda r: r["agent"]["algorithm"].update(gamam=0.9),
            "agent.algorithm.gamam: unknown key (did you mean 'gamma'?)",
        ),
        (
            lambda r: r["agent"]["net"].update(hid_layer=[3]),
            "agent.net.hid_layer: unknown key (did you mean 'hid_layers'?)",
        ),
        (lambda r: r.update(metaa={}), "metaa: unknown section (did you mean 'meta'?)"),
        (
            lambda r: r["env"].update(num_envs="four"),
            "env.num_envs: must be an integer, got 'four'",
        ),
        (lambda r: r["env"].update(num_envs=2.5), "env.num_envs: must be an integer, got 2.5"),
        (
            lambda r: r["agent"]["net"].update(shared="yes"),
            "agent.net.shared: must be true or false",
        ),
        (
            lambda r: r["agent"]["net"].update(hid_layers=[16, -1]),
            "agent.net.hid_layers[1]: must be positive",
        ),
        (
            lambda r: r["env"].update(name="CartPole-v2"),
            "env.name: unknown gymnax environment 'CartPole-v2' (did you mean 'CartPole-v1'?)",
        ),
        (
            lambda r: r["agent"]["algorithm"].update(name="PP0"),
            "agent.algorithm.name: unknown algorithm 'PP0' (did you mean 'PPO'?)",
        ),
        (
            lambda r: r["agent"]["algorithm"].update(minibatch_count=3),
            "agent.algorithm.minibatch_count: batch num_envs * time_horizon = 4 * 8 = 32 does not divide into 3 minibatches",
        ),
        (lambda r: r["env"].update(num_envs=0), "env.num_envs: must be positive, got 0"),
        (lambda r: r["meta"].update(max_session=-2), "meta.max_session: must be positive, got -2"),
        (
            lambda r: r["meta"].update(eval_frequency=-1),
            "meta.eval_frequency: must be >= 0 (0 turns evaluation off)",
        ),
        (
            lambda r: r["meta"].update(eval_episodes=0),
            "meta.eval_episodes: must be positive, got 0",
        ),
        (
            lambda r: r["agent"]["algorithm"].update(gamma=1.5),
            "agent.algorithm.gamma: must lie in [0.0, 1.0], got 1.5",
        ),
        (
            lambda r: r["agent"]["net"]["optim"].update(name="adamm"),
            "agent.net.optim.name: must be one of 'adam', 'adamw', 'rmsprop', 'sgd', got 'adamm' (did you mean 'adam'?)",
        ),
        (
            lambda r: r["env"].update(params={"max_step": 3}),
            "env.params.max_step: not a parameter of CartPole-v1 (did you mean 'max_steps_in_episode'?)",
        ),
        (lambda r: r["env"].update(max_frame=16), "env.max_frame: 16 is less than one update"),
        (
            lambda r: r["meta"].update(compile="quick"),
            "meta.compile: must be one of 'optimized', 'fast', got 'quick'",
        ),
        (
            lambda r: r.update(search={"agent.algorithm.gamma__choise": [0.9]}),
            "search.agent.algorithm.gamma__choise: unknown distribution 'choise' (did you mean 'choice'?)",
        ),
        (
            lambda r: r.update(search={"agent.algorithm.gama__choice": [0.9]}),
            "'agent.algorithm.gama' is not a key of the spec",
        ),
        (lambda r: r["env"].pop("name"), "env.name: is required"),
        (
            lambda r: r["agent"]["net"].update(type="Conv"),
            "agent.net.type: Conv needs image observations ([height, width] or [height, "
            "width, channels]); CartPole-v1 gives shape [4]: use MLP",
        ),
        (
            lambda r: (
                r["env"].update(name="Breakout-MinAtar"),
                r["agent"]["net"].update(
                    type="Conv", conv_layers=[[8, 3, 1], [8, 9, 1]], conv_padding="VALID"
                ),
            ),
            "agent.net.conv_layers[1]: leaves no pixels of Breakout-MinAtar's 10x10 image "
            "(VALID padding): use smaller kernels or strides",
        ),
    ],
)
def test_invalid_specs_exit_2_with_one_line(tmp_path, capsys, tiny_raw, mutate, expected):
    mutate(tiny_raw)
    err = cli_error(tmp_path, capsys, tiny_raw)
    assert expected in err
    assert err.startswith("jaxlab: spec error: ")


def test_unreadable_yaml_and_missing_file(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, "agent: [unclosed\nenv: {name: CartPole-v1")
    assert "invalid YAML at line" in err
    code = main(["train", str(tmp_path / "nope.yaml"), "--data", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot read spec file" in err and len(err.splitlines()) == 1
    assert "list" in cli_error(tmp_path, capsys, "- just\n- a list\n")


# An alias "bomb": each level is nine aliases of the one before, 9**8 lists at the bottom.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{key}: &{key} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, key in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env: &e {name: CartPole-v1, nested: [*e]}\n", "env.nested[0]: a YAML alias used inside"),
        ("agent: " + "[" * 3000 + "]" * 3000 + "\n", "YAML nested deeper than 64 levels"),
        ("agent: " + "[" * 100 + "]" * 100 + "\n", "YAML nested deeper than 64 levels"),
        (ALIAS_BOMB, "YAML expands to more than 100,000 values (through aliases)"),
    ],
    ids=["self-alias", "deep-for-yaml", "deep", "alias-bomb"],
)
def test_yaml_that_would_recurse_or_explode_is_refused_in_one_line(
    tmp_path, capsys, text, expected
):
    """Each of these used to end in a RecursionError, or (the bomb) in minutes of walking."""
    assert expected in cli_error(tmp_path, capsys, text)


def test_aliases_that_expand_to_a_real_spec_still_load(tmp_path):
    text = """
agent:
  algorithm: {name: PPO, time_horizon: &steps 8, minibatch_count: 2}
  net: {hid_layers: &width [16, 16]}
env: {name: CartPole-v1, num_envs: 4, max_frame: 320}
meta: {max_session: 2, log_frequency: 64}
search: {agent.net.hid_layers__choice: [*width, [32, 32]], agent.algorithm.time_horizon__choice: [*steps, 16]}
"""
    spec = load_spec(write(tmp_path, text))
    assert spec.agent.net.hid_layers == (16, 16)
    assert spec.search["agent.net.hid_layers__choice"] == [[16, 16], [32, 32]]


def test_cli_subprocess_no_traceback(tmp_path, tiny_raw):
    tiny_raw["env"]["num_envs"] = "many"
    path = write(tmp_path, tiny_raw)
    out = subprocess.run(
        [sys.executable, "-m", "jaxlab", "train", str(path), "--data", str(tmp_path / "d")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == "jaxlab: spec error: env.num_envs: must be an integer, got 'many'"
    assert not (tmp_path / "d").exists()


def test_overrides_and_variables(tmp_path, tiny_raw):
    tiny_raw["vars"] = {"width": 32}
    tiny_raw["agent"]["net"]["hid_layers"] = ["${width}", "${width}"]
    tiny_raw["name"] = "run_${tag}"
    path = write(tmp_path, tiny_raw)
    spec = load_spec(path, ["tag=a1", "width=8", "agent.net.optim.lr=3e-4", "meta.max_session=3"])
    assert spec.agent.net.hid_layers == (8, 8)  # typed: the variable's int, not "8"
    assert spec.name == "run_a1"
    assert spec.agent.net.optim.lr == pytest.approx(3e-4)
    assert spec.meta.max_session == 3
    # Defaults come from the spec's vars: block when not set on the command line.
    assert load_spec(path, ["tag=x"]).agent.net.hid_layers == (32, 32)


def test_name_defaults_to_file_stem(tmp_path, tiny_raw):
    del tiny_raw["name"]
    assert load_spec(write(tmp_path, tiny_raw, "my_study.yaml")).name == "my_study"


def test_spec_is_frozen_and_round_trips(tiny_raw):
    spec = spec_from_dict(tiny_raw)
    with pytest.raises(AttributeError):
        spec.env.num_envs = 8  # type: ignore[misc]
    again = parse_spec(yaml.safe_load(yaml.safe_dump(spec.to_dict())))
    assert again == spec


def test_derived_quantities(tiny_raw):
    d = spec_from_dict(tiny_raw).derived
    assert (d.frames_per_update, d.num_updates, d.updates_per_chunk, d.num_chunks) == (32, 10, 2, 5)
    assert d.total_frames == 320
    spec = load_spec(REPO / "specs/ppo/ppo_cartpole.yaml")
    d = spec.derived  # the well-known configuration: 976 updates of 512 frames
    assert (d.frames_per_update, d.num_updates, d.updates_per_chunk) == (512, 976, 20)
    assert d.num_chunks == 49 and d.total_frames == 499_712


@pytest.mark.parametrize("path", sorted((REPO / "specs").rglob("*.yaml")), ids=lambda p: p.stem)
def test_shrink_keeps_every_rule(path):
    small = shrink(load_spec(path))
    d = small.derived
    assert small.meta.max_session <= 2 and d.num_updates == 3 and d.num_chunks == 3
    assert small.agent.net == load_spec(path).agent.net


def test_spec_error_message_format():
    err = SpecError("a.b", "must be positive")
    assert str(err) == "a.b: must be positive"
