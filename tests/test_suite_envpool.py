"""The EnvPool suite (:mod:`jaxlab.envs.envpool_suite`): exact boundaries against
EnvPool's own API, sessions folded into one pool, float64 kept to the EnvPool calls, the
restart of a state from another pool, Atari and DM Control layouts, and a resumed run."""

from __future__ import annotations

import json
import re

import envpool
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from jaxlab.cli import main
from jaxlab.envs import check_env, envpool_suite, make_env, resumed_params
from jaxlab.envs.protocol import CannotRender
from jaxlab.lab.trial import Trial
from jaxlab.logging.table import read_rows
from jaxlab.rl.rollout import Transition, episode_metrics
from jaxlab.runtime.checkpoint import Checkpointer
from jaxlab.spec import SpecError, load_spec, spec_from_dict
from jaxlab.spec.schema import EnvSpec
from jaxlab.spec.smoke import shrink
from tests.test_conformance import _equal, for_actions
from tests.test_conformance_suites import every_algorithm, raw_spec


def env_spec(name: str, num_envs: int = 3, **params) -> EnvSpec:
    return EnvSpec(name=f"envpool/{name}", num_envs=num_envs, params=params)


def make(name: str, num_envs: int = 3, **params):
    return make_env(env_spec(name, num_envs, **params))


def rollout(env, actions, sessions: int | None = None, keys=None):
    """Reset, then one step per row of ``actions``; StepOuts stacked ``[T, ...]``
    (``[S, T, ...]`` for ``sessions``, vmapped over ``keys``)."""
    keys = jax.random.split(jax.random.PRNGKey(0), sessions or 1) if keys is None else keys

    def run(key, actions):
        def body(s, a):
            s, out = env.step(key, s, a)
            return s, out

        return jax.lax.scan(body, env.reset(key), actions)

    if sessions is None:
        return jax.jit(run)(keys[0], actions)
    return jax.vmap(run)(keys, actions)


def test_truncation_matches_envpool_and_restarts_at_once():
    """max_episode_steps 3: the adapter's step 3 is EnvPool's (truncated, the true final
    observation), and its reset observation is the one EnvPool itself would only give a
    step later (with a reward-0 transition the adapter skips)."""
    env = make("HalfCheetah-v5", max_episode_steps=3, seed=7)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (5, 3, 6), minval=-1, maxval=1)
    state, out = rollout(env, actions)
    ref = envpool.make("HalfCheetah-v5", "gymnasium", num_envs=3, seed=7, max_episode_steps=3)
    first, _ = ref.reset()
    assert out.truncated.tolist() == [
        [False] * 3,
        [False] * 3,
        [True] * 3,
        [False] * 3,
        [False] * 3,
    ]
    assert not out.terminated.any()
    steps = [ref.step(np.asarray(a, np.float64)) for a in actions[:3]]
    for t, (obs, reward, _term, _trunc, _) in enumerate(steps):
        np.testing.assert_allclose(out.final_obs[t], obs, rtol=1e-6)
        np.testing.assert_allclose(out.reward[t], reward, rtol=1e-6)
    restart = ref.step(np.zeros((3, 6)))  # EnvPool's lazy reset: reward 0, the new episode
    assert (restart[1] == 0).all() and (restart[4]["elapsed_step"] == 0).all()
    np.testing.assert_allclose(out.obs[2], restart[0], rtol=1e-6)
    assert not np.allclose(out.obs[2], out.final_obs[2])
    assert out.done_length[2].tolist() == [3, 3, 3]
    np.testing.assert_allclose(out.done_return[2], out.reward[:3].sum(0), rtol=1e-5)
    nxt = ref.step(np.asarray(actions[3], np.float64))  # the new episode's first step
    np.testing.assert_allclose(out.final_obs[3], nxt[0], rtol=1e-6)


def test_termination_is_apart_from_truncation():
    """A Hopper that is never healthy (healthy_z_min above its reach) terminates at once."""
    env = make("Hopper-v5", 2, healthy_z_min=10.0, max_episode_steps=50)
    _, out = rollout(env, jnp.zeros((3, 2, 3)))
    assert out.terminated.all() and not out.truncated.any()
    assert (out.done_length == 1).all()


def test_sessions_fold_into_one_pool_seeded_per_env():
    """Two vmapped sessions of 3 envs step one pool of 6; session s's env i is seeded
    ``seed + 3 s + i``, so session 1 equals a lone env seeded ``seed + 3``. Nested vmaps
    (a batched search) fold again: 2 x 2 sessions step one pool of 12."""
    actions = jax.random.uniform(jax.random.PRNGKey(2), (2, 4, 3, 6), minval=-1, maxval=1)
    env = make("HalfCheetah-v5", seed=5, max_episode_steps=3)
    _, both = rollout(env, actions, sessions=2)
    assert max(env._pools) == 6  # (tracing the unbatched call makes an idle pool of 3)
    _, lone = rollout(make("HalfCheetah-v5", seed=8, max_episode_steps=3), actions[1])
    assert np.array_equal(both.final_obs[1], lone.final_obs)
    assert np.array_equal(both.obs[1], lone.obs)
    _, first = rollout(make("HalfCheetah-v5", seed=5, max_episode_steps=3), actions[0])
    assert np.array_equal(both.obs[0], first.obs)

    nested = make("HalfCheetah-v5", seed=5, max_episode_steps=3)
    keys = jnp.stack([jax.random.split(jax.random.PRNGKey(0), 2)] * 2)
    grid = jax.vmap(lambda k, a: rollout(nested, a, 2, k)[1].obs)
    obs = jax.jit(grid)(keys, jnp.stack([actions, actions]))
    assert max(nested._pools) == 12 and obs.shape == (2, 2, 4, 3, 17)
    assert np.array_equal(obs[0, 0], first.obs)


def test_the_spec_random_seed_seeds_the_pools_unless_the_spec_sets_one():
    raw = {
        "name": "seeded",
        "agent": {"algorithm": {"name": "PPO"}, "memory": {"name": "OnPolicyBatch"}},
        "env": {"name": "envpool/CartPole-v1"},
    }
    seeds = {k: spec_from_dict(raw, [f"meta.random_seed={k}"]).env.params["seed"] for k in (1, 2)}
    assert seeds[1] != seeds[2] and abs(seeds[1] - seeds[2]) > 1_000_000  # no shared streams
    assert spec_from_dict(raw, ["env.params.seed=5"]).env.params["seed"] == 5
    assert "seed" not in spec_from_dict({**raw, "env": {"name": "CartPole-v1"}}).env.params


def test_steps_batched_wider_than_the_reset_restart_first():
    """A reset shared by an outer vmap (its keys unbatched there) made a pool of 6, the
    steps run on one of 12: the first step sees the other pool's token and restarts."""
    env = make("HalfCheetah-v5", max_episode_steps=3)
    actions = jnp.zeros((2, 2, 4, 3, 6))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    out = jax.jit(jax.vmap(lambda a: rollout(env, a, 2, keys)[1]))(actions)
    assert out.truncated[:, :, 0].all() and (out.reward[:, :, 0] == 0).all()
    assert not out.truncated[:, :, 1].any() and (out.reward[:, :, 1] != 0).all()


def test_float64_stays_at_the_envpool_calls():
    """Only EnvPool's own step takes and gives float64: in the lowered program every f64
    value is an action converted for it, its results, or their casts to f32."""
    env = make("HalfCheetah-v5")
    state = env.reset(jax.random.PRNGKey(0))
    text = jax.jit(env.step).lower(jax.random.PRNGKey(0), state, jnp.zeros((3, 6))).as_text()
    wide = [line.strip() for line in text.splitlines() if "f64" in line]
    assert wide, "EnvPool's step should see float64"
    allowed = ("stablehlo.convert", "stablehlo.custom_call", "call @", "func.func", "return")
    assert all(any(k in line for k in allowed) for line in wide), wide
    assert not jax.config.jax_enable_x64


def test_a_state_from_another_pool_restarts_its_episodes():
    """A state restored into a new env (another process's pool) restarts every episode on
    its first step: all truncated, reward 0, the old observation as ``final_obs``, and no
    episode counted; the next step is an ordinary one."""
    actions = jnp.zeros((2, 3, 6))
    old, _ = rollout(make("HalfCheetah-v5"), actions)
    env = make("HalfCheetah-v5")
    step = jax.jit(env.step)
    state, out = step(jax.random.PRNGKey(0), old, actions[0])
    assert out.truncated.all() and not out.terminated.any()
    assert (out.reward == 0).all() and (out.done_length == 0).all() and (out.done_return == 0).all()
    assert np.array_equal(out.final_obs, old.obs) and not np.allclose(out.obs, old.obs)
    assert (state.episode_length == 0).all()
    state, out = step(jax.random.PRNGKey(0), state, actions[0])
    assert not out.truncated.any() and (out.reward != 0).all()


def test_atari_is_channels_last_with_sticky_actions_by_default():
    env = make("Pong-v5", 2, max_episode_steps=20)
    assert env.observation_spec.shape == (84, 84, 4)
    assert env.action_spec.discrete and env.action_spec.dim == 6
    assert env.config["repeat_action_probability"] == 0.25
    assert not env.config["full_action_space"]
    assert env.observation_spec.dtype == "uint8"
    _, out = rollout(env, jnp.ones((3, 2), jnp.int32))
    assert out.obs.shape == (3, 2, 84 * 84 * 4)
    assert out.obs.dtype == out.final_obs.dtype == jnp.uint8  # the pixels, as bytes
    assert 1 < int(out.obs.max()) <= 255
    assert make("HalfCheetah-v5", 2).observation_spec.dtype == "float32"


def test_atari_frames_stay_bytes_in_the_replay_memory():
    """DQN's replay of Pong frames: uint8 observations, a quarter of float32's memory
    (the observation normaliser's statistics stay float32)."""
    raw = raw_spec("DQN", "Replay", "envpool/Pong-v5", {})
    raw["env"]["num_envs"] = 2
    state = Trial(spec_from_dict(raw)).abstract_state()
    frames = [
        (jax.tree_util.keystr(path), leaf.dtype)
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
        if leaf.shape
        and leaf.shape[-1] == 84 * 84 * 4
        and ".norm." not in jax.tree_util.keystr(path)
    ]
    assert any("memory" in p and "'next_obs'" in p for p, _ in frames), frames
    assert all(dtype == jnp.uint8 for _, dtype in frames), frames


def test_episodic_life_and_reward_clip_are_the_learners_only():
    """Breakout, random play: a lost life is ``terminated`` for the learner while the game
    goes on (``obs`` is the true next frame, no episode reported); the game's end reports
    its whole length and unclipped score; the learner's rewards are signs."""
    env = make(
        "Breakout-v5", 2, episodic_life=True, reward_clip=True, repeat_action_probability=0.0
    )
    actions = jax.random.randint(jax.random.PRNGKey(3), (400, 2), 0, 4)
    _, out = rollout(env, actions)
    lost = out.terminated & (out.done_length == 0)
    assert lost.sum() >= 4, "random Breakout loses lives within 400 steps"
    assert np.array_equal(out.obs[lost], out.final_obs[lost])
    assert set(np.unique(out.reward).tolist()) <= {0.0, 1.0}
    ends = np.argwhere(np.asarray(out.done_length) > 0)
    assert len(ends), "a game of 5 lives ends"
    t, i = ends[0]
    assert out.terminated[t, i] and out.done_length[t, i] == t + 1
    assert out.done_return[t, i] >= out.reward[: t + 1, i].sum()  # bricks score 1 to 7
    assert lost[:t, i].sum() == 4  # the game's first four lives
    # the update's episode metrics count games, not lives: returns are games' scores
    done = out.terminated | out.truncated
    tr = Transition(out.obs, actions, out.reward, out.terminated, done, out.final_obs,
                    out.done_return, out.done_length, {}, env.episodic_life)  # fmt: skip
    m = episode_metrics(tr)
    games = np.asarray(out.done_length) > 0
    assert float(m["ep_count"]) == games.sum() < done.sum()
    assert float(m["ep_return_sum"]) / float(m["ep_count"]) == pytest.approx(
        np.asarray(out.done_return)[games].mean()
    )
    scored = make_env(
        env_spec("Breakout-v5", 2, episodic_life=True, reward_clip=True), evaluation=True
    )
    assert not scored.episodic_life and not scored.reward_clip  # evaluation plays whole games


def test_dm_control_dict_observations_are_flattened_in_key_order():
    env = make("CheetahRun-v1", 2)
    assert env.observation_spec.shape == (17,)  # position 8 + velocity 9
    assert not env.action_spec.discrete and env.action_spec.dim == 6
    _, out = rollout(env, jnp.zeros((2, 2, 6)))
    assert np.isfinite(out.obs).all() and out.obs.shape == (2, 2, 17)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_episode_step": 5}, "not a parameter of envpool/Hopper-v5 (did you mean 'max_episode_steps'?)"),
        ({"healthy_z_min": "low"}, "env.params.healthy_z_min: must be a number"),
        ({"xml_file": 3}, "env.params.xml_file: must be a string"),
    ],
)  # fmt: skip
def test_bad_envpool_params_are_refused(params, message):

    with pytest.raises(SpecError, match=re.escape(message)):
        check_env("envpool/Hopper-v5", params, "env.name", "env.params")


def test_a_resumed_run_restarts_its_episodes_and_says_so(tmp_path, monkeypatch):
    """Train 2 of 4 updates, then resume with a larger budget: the run completes, its
    history continues, and its summary says a resume here is not bit-identical. The
    resumed pools are seeded from the checkpointed keys (recorded in provenance.json), not
    with the run's first seed, so the restarted episodes are new ones."""
    raw = {
        "name": "envpool_resume",
        "agent": {
            "algorithm": {"name": "PPO", "time_horizon": 16, "minibatch_count": 2},
            "net": {"hid_layers": [16]},
            "memory": {"name": "OnPolicyBatch"},
        },
        "env": {"name": "envpool/Hopper-v5", "num_envs": 2, "max_frame": 64},
        "meta": {"max_session": 2, "log_frequency": 32, "eval_frequency": 0},
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    data = tmp_path / "data"
    assert main(["train", str(spec), "--data", str(data), "--no-progress", "--no-report"]) == 0
    run = next(p for p in data.iterdir() if p.is_dir())
    summary = json.loads((run / "trial_summary.json").read_text())
    assert summary["resume_bit_identical"] is False
    saved = yaml.safe_load((run / "spec.yaml").read_text())
    saved["env"]["max_frame"] = 128
    (run / "spec.yaml").write_text(yaml.safe_dump(saved))
    made = []
    real_init = envpool_suite.Pool.__init__

    def spy(self, env_id, size, config):
        made.append(config["seed"])
        real_init(self, env_id, size, config)

    monkeypatch.setattr(envpool_suite.Pool, "__init__", spy)
    assert main(["train", str(run), "--no-progress", "--no-report"]) == 0
    monkeypatch.undo()
    ckpt = Checkpointer(run / "checkpoints")
    checkpointed, _ = ckpt.restore(Trial(load_spec(run / "spec.yaml")).abstract_state(), 64)
    ckpt.close()
    fresh = resumed_params("envpool/Hopper-v5", {}, np.asarray(checkpointed.key))["seed"]
    resumed = json.loads((run / "provenance.json").read_text())["resumes"]
    assert [r["env_seed"] for r in resumed] == [fresh] and fresh != saved["env"]["params"]["seed"]
    assert made and made[-1] == fresh  # the pools the resumed run trained on
    frames = [int(r["frame"]) for r in read_rows(run)[0]]
    assert frames == [32, 64, 96, 128]
    assert json.loads((run / "trial_summary.json").read_text())["frames_per_session"] == 128


def test_enjoy_draws_an_atari_episode_from_its_frames(tmp_path):
    """``enjoy --render`` on a Pong run: the GIF shows the newest frame of each observation
    the policy saw, one per step of episode 0, grey at twice the size; a MuJoCo run (no
    frames) gets the one-line note."""
    from PIL import Image  # noqa: PLC0415

    from jaxlab.tools.enjoy import enjoy  # noqa: PLC0415

    raw = {
        "name": "envpool_enjoy",
        "agent": {
            "algorithm": {"name": "PPO", "time_horizon": 8, "minibatch_count": 2},
            "net": {"hid_layers": [8]},
            "memory": {"name": "OnPolicyBatch"},
        },
        "env": {
            "name": "envpool/Pong-v5",
            "num_envs": 2,
            "max_frame": 16,
            "params": {"max_episode_steps": 12},
        },
        "meta": {"max_session": 1, "log_frequency": 16, "eval_frequency": 0},
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    args = ["--data", str(tmp_path / "data"), "--no-progress", "--no-report"]
    assert main(["train", str(spec), *args]) == 0
    run = next(p for p in (tmp_path / "data").iterdir() if p.is_dir())
    record = enjoy(run, episodes=1, render=True, checkpoint="latest")
    assert record["gif"] and record["lengths"] == [12], record
    gif = Image.open(record["gif"])
    durations = []  # Pillow merges repeated frames (Pong's first ones), adding their times
    for t in range(gif.n_frames):
        gif.seek(t)
        durations.append(gif.info["duration"])
    assert sum(durations) == 12 * 50 and gif.size == (168, 168)  # 20 frames/s
    # the frames are the observations' newest, exactly
    env = make("Pong-v5", 1)
    _, out = rollout(env, jnp.ones((5, 1), jnp.int32))
    obs = np.asarray(out.obs[:, 0])
    env.write_gif(obs, tmp_path / "pong.gif")
    drawn = Image.open(tmp_path / "pong.gif")
    drawn.seek(drawn.n_frames - 1)
    newest = obs[-1].reshape(84, 84, 4)[..., -1]
    np.testing.assert_array_equal(np.asarray(drawn.convert("L"))[::2, ::2], newest)
    hopper = make("Hopper-v5", 1)
    with pytest.raises(CannotRender, match="draws only Atari frames"):
        hopper.write_gif(np.zeros((3, hopper.observation_spec.dim), np.float32), tmp_path / "x.gif")


# The conformance contract as it holds for a host-stateful suite (EnvPool's C++ state is
# not in the jax state): compiled once; the same keys in a fresh Trial (fresh pools, as a
# new process gets) give bit-identical results; the checkpoint round trip is exact; and a
# restored state trains on in another Trial through the documented restart. One cheap
# C++ env per action space: classic control's CartPole and Pendulum.
HOST_ENVS = {
    "discrete": ("envpool/CartPole-v1", {"max_episode_steps": 8}),
    "continuous": ("envpool/Pendulum-v1", {"max_episode_steps": 8}),
}
HOST_CASES = every_algorithm(HOST_ENVS)


def test_every_algorithm_has_a_host_case_for_its_action_spaces():
    assert {a for a, k, _ in HOST_CASES if k == "discrete"} == for_actions(discrete=True)
    assert {a for a, k, _ in HOST_CASES if k == "continuous"} == for_actions(discrete=False)


def untokened(state):
    """``state`` without its pool tokens (each live pool's own, by design)."""
    return state.replace(env=state.env.replace(env_state=None))


@pytest.mark.parametrize(("algo", "kind", "memory"), HOST_CASES, ids=[f"{a}-{k}" for a, k, _ in HOST_CASES])  # fmt: skip
def test_host_contract(algo, kind, memory, tmp_path):
    raw = raw_spec(algo, memory, *HOST_ENVS[kind])
    spec = shrink(spec_from_dict(raw), updates=4)
    trial = Trial(spec)
    a = trial.init()
    for c in range(3):
        a, metrics = trial.chunk(a, c)
    compiled = trial._chunk
    assert metrics["updates"].tolist() == [1.0, 1.0]
    scalars = {k: v for k, v in metrics.items() if k != "actions" and not k.startswith("eval")}
    assert all(np.isfinite(np.asarray(v)).all() for v in scalars.values()), scalars

    fresh = Trial(spec)  # a new env, new pools: as a rerun in a new process
    b = fresh.init()
    for c in range(3):
        b, _ = fresh.chunk(b, c)
    assert trial._chunk is compiled
    assert _equal(untokened(a), untokened(b)), "the same keys gave different results"

    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(2, a, {})
    ckpt.manager.wait_until_finished()
    restored, _ = ckpt.restore(trial.abstract_state())
    ckpt.close()
    assert _equal(untokened(restored), untokened(a))
    assert (np.asarray(restored.env.env_state.token) == 0).all(), "saved bound to this process"
    # the restored state names no live pool: its episodes restart, training goes on
    after, metrics = trial.chunk(restored, 3)
    assert metrics["updates"].tolist() == [1.0, 1.0]
    token = np.asarray(after.env.env_state.token)
    assert (token != 0).all() and (token == token.flat[0]).all(), "restarted into the live pool"
