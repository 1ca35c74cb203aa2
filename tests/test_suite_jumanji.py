"""The Jumanji suite adapter: specs, episode boundaries against jumanji's own API, the
action mask (appended to the observation and obeyed by a masked policy), param checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jumanji = pytest.importorskip("jumanji")

from jaxlab.config.parse import SpecError  # noqa: E402
from jaxlab.envs import ObservationSpec, check_env  # noqa: E402
from jaxlab.envs import jumanji_suite as js  # noqa: E402
from jaxlab.networks import ActorCritic, TorsoDef  # noqa: E402

UP, RIGHT, DOWN, LEFT = range(4)  # Snake's moves
key = jax.random.PRNGKey


def own_flat(observation) -> np.ndarray:
    """A jumanji observation flattened by hand: every field but the mask, then the mask."""
    fields = observation._asdict()
    mask = fields.pop("action_mask")
    parts = [np.ravel(np.asarray(x, np.float32)) for x in jax.tree.leaves(list(fields.values()))]
    return np.concatenate(parts + [np.ravel(np.asarray(mask, np.float32))])


def pick(tree, i: int):
    return jax.tree.map(lambda x: x[i], tree)


def test_ids_keep_single_agent_envs():
    kept, registered = set(js.ids()), set(jumanji.registered_environments())
    assert kept | set(js.EXCLUDED) == registered and not kept & set(js.EXCLUDED)
    assert {"Snake-v1", "Tetris-v0", "Minesweeper-v0", "TSP-v1"} <= kept


@pytest.mark.parametrize("env_id", sorted(js.EXCLUDED))
def test_excluded_envs_act_per_agent(env_id):
    with pytest.raises(ValueError, match="not supported"):
        js.make(env_id, 1, {})
    with pytest.raises(ValueError, match="per agent|per-part|not supported"):
        js.JumanjiEnv(env_id, 1, {})  # the adapter's own rule refuses them too


def test_snake_specs():
    env = js.make("Snake-v1", 2, {})
    assert env.name == "jumanji/Snake-v1" and env.reset_mode == "full"
    assert env.observation_spec == ObservationSpec((12 * 12 * 5 + 1,), mask_dim=4)
    assert env.observation_spec.dim == 725
    assert env.action_spec.discrete and env.action_spec.dim == 4
    assert env.time_limit == env.max_episode_steps == 4000
    grid = js.make("Snake-v1", 1, {"obs_keys": "grid", "num_rows": 6, "num_cols": 7})
    assert grid.observation_spec == ObservationSpec((6, 7, 5), mask_dim=4)
    assert grid.reset(key(0)).obs.shape == (1, 6 * 7 * 5 + 4)


@pytest.mark.parametrize(
    "env_id, params, obs, actions, time_limit, episode",
    [
        ("Minesweeper-v0", {}, ObservationSpec((102,), 100), 100, None, js.DEFAULT_EPISODE_STEPS),
        ("Tetris-v0", {"obs_keys": ["tetromino"]}, ObservationSpec((4, 4), 40), 40, 400, 400),
        ("RubiksCube-partly-scrambled-v0", {}, ObservationSpec((55,)), 18, 20, 20),
        ("Maze-v0", {}, ObservationSpec((105,), 4), 4, 100, 100),
        ("Maze-v0", {"time_limit": 7}, ObservationSpec((105,), 4), 4, 7, 7),
        ("Game2048-v1", {}, ObservationSpec((4, 4), 4), 4, None, js.DEFAULT_EPISODE_STEPS),
    ],
)
def test_specs(env_id, params, obs, actions, time_limit, episode):
    env = js.make(env_id, 1, params)
    assert env.observation_spec == obs
    assert env.action_spec.discrete and env.action_spec.dim == actions
    assert (env.time_limit, env.max_episode_steps) == (time_limit, episode)


def test_continuous_action_spec():
    spec = jumanji.specs.BoundedArray((2, 3), jnp.float32, -1.0, 2.0)
    action, nvec = js._action_spec(spec, None)
    assert (action.discrete, action.dim, action.shape, nvec) == (False, 6, (2, 3), None)
    np.testing.assert_array_equal(action.low, -np.ones((2, 3)))
    np.testing.assert_array_equal(action.high, 2 * np.ones((2, 3)))


def test_time_limit_truncates_with_the_true_final_obs():
    env = js.make("Snake-v1", 2, {"time_limit": 3})
    step = jax.jit(env.step)
    state = env.reset(key(0))
    rows = state.env_state.current.head_position.row
    action = jnp.where(rows < 6, DOWN, UP)  # 3 moves straight towards the middle: safe
    for t in range(2):
        state, out = step(key(t + 1), state, action)
        assert not (out.terminated | out.truncated).any()
    before = state.env_state.current
    state, out = step(key(9), state, action)
    assert out.truncated.all() and not out.terminated.any()
    np.testing.assert_array_equal(out.done_length, [3, 3])
    own_step = jax.jit(jumanji.make("Snake-v1", time_limit=3).step)
    for i in range(2):
        _, ts = own_step(pick(before, i), action[i])
        assert ts.last() and ts.discount == 0  # jumanji's own: its limit "terminates"
        np.testing.assert_array_equal(out.final_obs[i], own_flat(ts.observation))
        assert out.reward[i] == ts.reward
    np.testing.assert_array_equal(out.obs[:, 720], [0, 0])  # step_count of a fresh reset
    np.testing.assert_array_equal(state.obs, out.obs)
    np.testing.assert_array_equal(state.env_state.current.step_count, [0, 0])
    np.testing.assert_array_equal(state.episode_length, [0, 0])
    state, out = step(
        key(10), state, jnp.where(state.env_state.current.head_position.row < 6, DOWN, UP)
    )
    assert not (out.terminated | out.truncated).any()


def test_hitting_a_wall_terminates():
    env = js.make("Snake-v1", 1, {})
    state = env.reset(key(3))
    row = int(state.env_state.current.head_position.row[0])

    def up(s, k):
        s, out = env.step(k, s, jnp.array([UP]))
        return s, (out.terminated[0], out.truncated[0])

    _, (term, trunc) = jax.lax.scan(up, state, jax.random.split(key(4), 13))
    assert term[row] and not term[:row].any() and not trunc.any()  # step row + 1 leaves


@pytest.mark.parametrize("env_id", ["Snake-v1", "Minesweeper-v0"])
def test_the_mask_is_jumanjis(env_id):
    env, own_step = js.make(env_id, 4, {}), jax.jit(jumanji.make(env_id).step)
    a = env.action_spec.dim
    state = env.reset(key(5))
    action = jax.random.randint(key(6), (4,), 0, a)
    _, out = jax.jit(env.step)(key(7), state, action)
    for i in range(4):
        joint = action[i] if a == 4 else jnp.array([action[i] // 10, action[i] % 10])
        _, ts = own_step(pick(state.env_state.current, i), joint)
        np.testing.assert_array_equal(out.final_obs[i], own_flat(ts.observation))
        mask = np.ravel(np.asarray(ts.observation.action_mask, np.float32))
        np.testing.assert_array_equal(out.final_obs[i, -env.observation_spec.mask_dim :], mask)
        if a == 100 and not out.terminated[i]:
            assert mask[int(action[i])] == 0  # the square just opened is no action any more
    going = np.asarray(~(out.terminated | out.truncated))
    np.testing.assert_array_equal(out.obs[going], out.final_obs[going])


def test_a_masked_policy_never_samples_a_forbidden_action():
    env = js.make("TSP-v1", 1, {})
    a, spec = env.action_spec.dim, env.observation_spec
    step, state = jax.jit(env.step), env.reset(key(0))
    for city in (3, 7, 11, 0, 19):
        state, _ = step(key(city), state, jnp.array([city]))
    obs = state.obs[0]
    allowed = np.asarray(obs[-a:] > 0.5)
    assert allowed.sum() == a - 5 and not allowed[[3, 7, 11, 0, 19]].any()
    net = ActorCritic(a, True, TorsoDef(obs_shape=spec.shape, mask_dim=spec.mask_dim))
    params = net.init(key(1), obs[None])
    dist = net.apply(params, obs, method=net.policy)
    samples = np.asarray(jax.vmap(dist.sample)(jax.random.split(key(2), 4000)))
    assert allowed[samples].all()
    assert len(np.unique(samples)) == a - 5  # and every allowed one is drawn


def test_write_gif(tmp_path):
    env = js.make("Snake-v1", 2, {"num_rows": 6, "num_cols": 6})
    step, state = jax.jit(env.step), env.reset(key(0))
    trace = [state.env_state]
    for t in range(3):
        state, _ = step(key(t), state, jnp.array([RIGHT, LEFT]))
        trace.append(state.env_state)
    states = jax.tree.map(lambda *x: np.stack(x)[:, 0], *trace)
    env.write_gif(states, tmp_path / "snake.gif")
    assert (tmp_path / "snake.gif").read_bytes()[:3] == b"GIF"


@pytest.mark.parametrize(
    "name, params, path, words",
    [
        ("Snake-v1", {"num_rowz": 8}, "num_rowz", "not a parameter of jumanji/Snake-v1"),
        ("Snake-v1", {"num_rows": 8.5}, "num_rows", "must be an integer"),
        ("Snake-v1", {"num_rows": True}, "num_rows", "must be an integer"),
        ("Snake-v1", {"time_limit": 0}, "time_limit", "must be an integer >= 1"),
        ("Snake-v1", {"obs_keys": "action_mask"}, "obs_keys", "unknown 'action_mask'"),
        ("Snake-v1", {"obs_keys": ["grid", 3]}, "obs_keys", "list of names"),
        ("Maze-v0", {"time_limit": "long"}, "time_limit", "must be an integer >= 1"),
        ("BinPack-v2", {"debug": 1}, "debug", "true or false"),
    ],
)
def test_check_env_refuses(name, params, path, words):
    with pytest.raises(SpecError, match=words) as err:
        check_env(f"jumanji/{name}", params, "env.name", "env.params")
    assert err.value.path == f"env.params.{path}"


def test_check_env_accepts_plain_params():
    check_env("jumanji/Snake-v1", {"num_rows": 8, "time_limit": 50, "obs_keys": ["grid"]}, "n", "p")
    check_env("jumanji/BinPack-v2", {"debug": True, "obs_num_ems": 20}, "n", "p")
    check_env("jumanji/Maze-v0", {"time_limit": 30}, "n", "p")  # an Optional[int] argument
    assert js.param_fields("Snake-v1") == ("obs_keys", "num_rows", "num_cols", "time_limit")
