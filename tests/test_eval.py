"""Periodic evaluation, the best checkpoint, and diverging sessions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.algorithms.ppo import PPO
from jaxlab.envs.gymnax_suite import make
from jaxlab.lab.evaluate import make_episodes
from jaxlab.logging.table import read_rows
from jaxlab.runtime.checkpoint import Checkpointer
from jaxlab.runtime.run import format_summary, train
from jaxlab.spec import spec_from_dict
from tests.probes import register_probes

NON_EVAL = {"wall_time", "fps", "eval_return_mean", "eval_return_std"}


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def rows(run, k):
    return read_rows(run)[k]


def test_episodes_are_cut_at_their_first_end():
    """ConstantReward: reward 1 per step, 5-step limit, so every episode returns exactly 5."""
    register_probes()
    raw = {
        "name": "probe",
        "agent": {"algorithm": {"name": "PPO", "time_horizon": 4, "minibatch_count": 1}},
        "env": {"name": "ConstantReward-probe", "num_envs": 2, "max_frame": 8},
    }
    agent = PPO(spec_from_dict(raw))
    env = make("ConstantReward-probe", 3, {})
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    out = jax.jit(make_episodes(agent, env, record=True))(state, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(out.returns, [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(out.lengths, [5, 5, 5])
    _, obs, finished = out.trace
    np.testing.assert_array_equal(finished, [False] * 5)  # the scan covers one full episode
    assert obs.shape == (5, env.observation_spec.dim)  # what env 0's policy saw, per step


def test_evaluation_is_logged_and_never_changes_training(tiny_raw, tmp_path):
    off = train(
        spec_from_dict(tiny_raw, ["meta.eval_frequency=0"]),
        root=tmp_path,
        progress=False,
        report=False,
    )
    on = train(
        spec_from_dict(tiny_raw, ["meta.eval_frequency=128"]),
        root=tmp_path,
        progress=False,
        report=False,
    )
    assert leaves_equal(jax.device_get(off.state), jax.device_get(on.state))
    assert not (off.run_dir / "best").exists() and off.summary["best_eval_return"] is None
    for k in range(2):
        a, b = rows(off.run_dir, k), rows(on.run_dir, k)
        strip = [{c: v for c, v in r.items() if c not in NON_EVAL} for r in a]
        assert strip == [{c: v for c, v in r.items() if c not in NON_EVAL} for r in b]
        assert all(r["eval_return_mean"] == "" for r in a)
        # every 2 chunks (128 frames) and at the end
        evaluated = [int(r["frame"]) for r in b if r["eval_return_mean"] != ""]
        assert evaluated == [128, 256, 320]
        assert all(float(r["eval_return_mean"]) >= 8 for r in b if r["eval_return_mean"])
    # the best checkpoint holds the eval point with the best mean over sessions
    means = {
        int(r0["frame"]): (float(r0["eval_return_mean"]) + float(r1["eval_return_mean"])) / 2
        for r0, r1 in zip(rows(on.run_dir, 0), rows(on.run_dir, 1), strict=True)
        if r0["eval_return_mean"]
    }
    best_frame = max(means, key=lambda f: (means[f], f))  # ties: the later one
    best = Checkpointer(on.run_dir / "best", read_only=True)
    assert best.steps() == [best_frame]
    assert on.summary["best_eval_frame"] == best_frame
    np.testing.assert_allclose(on.summary["best_eval_return"], means[best_frame], rtol=1e-5)
    best.close()


def test_a_diverging_session_is_flagged_and_the_others_are_unharmed(tiny_raw, tmp_path, capsys):
    spec = spec_from_dict(tiny_raw, ["meta.max_session=4"])

    def poison_session_1(state):
        hyper = state.hyper.replace(lr=state.hyper.lr.at[1].set(jnp.nan))
        return state.replace(hyper=hyper)

    clean = train(spec, root=tmp_path, progress=False, report=False)
    bad = train(spec, root=tmp_path, progress=False, state_fn=poison_session_1, report=False)
    assert "session 1 diverged" in capsys.readouterr().err
    healthy = [0, 2, 3]
    pick = lambda tree: jax.tree.map(lambda x: np.asarray(x)[healthy], jax.device_get(tree))  # noqa: E731
    assert leaves_equal(pick(clean.state), pick(bad.state))
    assert not np.all(
        np.isfinite(
            np.asarray(bad.state.params["params"]["actor_torso"]["MLP_0"]["Dense_0"]["kernel"][1])
        )
    )
    s = bad.summary
    assert s["diverged_sessions"] == [1] and s["diverged_at_frame"][1] == 64
    assert s["diverged_at_frame"][0] is None
    finals = [clean.summary["final_return_per_session"][k] for k in healthy]
    np.testing.assert_allclose(s["final_return_mean"], np.mean(finals), rtol=1e-6)
    assert clean.summary["diverged_sessions"] == []
    assert [r["diverged"] for r in rows(bad.run_dir, 1)] == ["1"] * 5
    assert [r["diverged"] for r in rows(bad.run_dir, 0)] == ["0"] * 5
    assert "session 1 DIVERGED" in format_summary(s)


def test_the_summary_of_thousands_of_sessions_names_eight_and_sums_up_the_rest():
    finals = [float(k) for k in range(2048)]
    summary = {
        "spec_name": "big", "final_return_mean": 1023.5, "final_return_std": 591.2,
        "final_return_min": 0.0, "final_return_max": 2047.0,
        "final_return_per_session": finals, "sessions": 2048,
        "diverged_sessions": list(range(10, 30)), "diverged_at_frame": [64] * 2048,
        "frames_per_session": 640, "wall_clock_s": 1.0, "compile_s": 1.0, "fps_total": 1e6,
        "best_eval_return": None,
    }  # fmt: skip
    text = format_summary(summary)
    first = text.splitlines()[0]
    assert "[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, ... 2040 more; min 0.0, max 2047.0]" in first
    assert len(first) < 300 and len(text.splitlines()) == 1 + 8 + 1
    assert text.splitlines()[-1] == "... and 12 more diverged sessions (trial_summary.json)"
    none_ended = {**summary, "final_return_mean": None, "final_return_per_session": [None] * 9}
    assert "[n/a, n/a, n/a, n/a, n/a, n/a, n/a, n/a, ... 1 more]" in format_summary(none_ended)
