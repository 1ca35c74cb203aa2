"""The craftax, navix and xminigrid adapters: specs, the time-limit boundary (truncation,
the true final observation, the reset), termination, and spec checks of their params.

Each suite's env is built once per module with a short limit (craftax: 3 steps; navix and
xminigrid Empty-5x5: 6 steps, the goal being 5 steps away) and its reset and step are
compiled once. The final observations are recomputed with the suite's own API.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.config.parse import SpecError
from jaxlab.envs import check_env, make_env, shrink_params
from jaxlab.envs.adapter import suite_code
from jaxlab.spec.schema import EnvSpec

pytest.importorskip("craftax")
pytest.importorskip("navix")
pytest.importorskip("xminigrid")

CRAFTAX = "craftax/Craftax-Classic-Symbolic-v1"
NAVIX = "navix/Navix-Empty-5x5-v0"
XMG = "xminigrid/MiniGrid-Empty-5x5"
LIMIT = {CRAFTAX: 3, NAVIX: 6, XMG: 6}
LIMIT_KEY = {CRAFTAX: "max_timesteps", NAVIX: "max_steps", XMG: "max_steps"}
# Actions that never end an episode: craftax NOOP, navix rotate_ccw, xminigrid turn_right.
IDLE = {CRAFTAX: 0, NAVIX: 0, XMG: 1}
# From (1, 1) to the goal at (3, 3): forward, forward, turn, forward, forward.
TO_GOAL = {NAVIX: [2, 2, 1, 2, 2], XMG: [0, 0, 1, 0, 0]}
WAIT = {NAVIX: 3, XMG: 3}  # pick up: nothing to pick up in Empty


class Rig:
    """One suite env (2 copies, a short limit) with its reset and step compiled."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.env = make_env(EnvSpec(name=name, num_envs=2, params={LIMIT_KEY[name]: LIMIT[name]}))
        self.reset = jax.jit(self.env.reset)
        self.step = jax.jit(self.env.step)
        self.own_step = jax.jit(_own_step(self.env))

    def rollout(self, actions: list[list[int]]) -> list[tuple]:
        """``(before, key, action, after, out)`` per step from a reset."""
        state = self.reset(jax.random.PRNGKey(0))
        steps = []
        for t, a in enumerate(actions):
            key, action = jax.random.PRNGKey(100 + t), jnp.asarray(a, jnp.int32)
            after, out = self.step(key, state, action)
            steps.append((state, key, action, after, out))
            state = after
        return steps


def _own_step(env):
    """The suite's own step of the pre-step states: ``(key, current, action) -> (obs [N,
    D], terminated [N], truncated [N])``, with the core's per-env keys where it needs them."""
    name = env.name
    if name.startswith("craftax/"):

        def step(key, current, action):
            keys = jax.random.split(jax.random.split(key)[0], env.num_envs)
            obs, state, _, done, _ = jax.vmap(env.env.step, in_axes=(0, 0, 0, None))(
                keys, current, action, env.env_params
            )
            dead = state.player_health <= 0
            return obs.reshape(env.num_envs, -1), done & dead, done & ~dead

        return step
    if name.startswith("navix/"):
        import navix

        def step(key, current, action):
            with suite_code():  # navix broadcasts ranks implicitly
                nxt = jax.vmap(env.env.step)(current, action)  # its public (resetting) step
            kind = nxt.step_type
            obs = nxt.observation.reshape(env.num_envs, -1)
            return obs, kind == navix.StepType.TERMINATION, kind == navix.StepType.TRUNCATION

        return step

    def step(key, current, action):
        nxt = jax.vmap(env.env.step, in_axes=(None, 0, 0))(env.env_params, current, action)
        last = nxt.step_type == 2
        obs = nxt.observation.reshape(env.num_envs, -1)
        return obs, last & (nxt.discount == 0), last & (nxt.discount > 0)

    return step


_RIGS: dict[str, Rig] = {}


def rig_for(name: str) -> Rig:
    """The module's one :class:`Rig` of ``name`` (built, and compiled, once)."""
    if name not in _RIGS:
        _RIGS[name] = Rig(name)
    return _RIGS[name]


@pytest.fixture(params=[CRAFTAX, NAVIX, XMG], ids=["craftax", "navix", "xmg"])
def rig(request) -> Rig:
    return rig_for(request.param)


def _check_end(rig: Rig, step: tuple, terminated: list[bool], truncated: list[bool]) -> None:
    """At an end step: the flags, the true final obs (the suite's own step), the reset."""
    before, key, action, after, out = step
    np.testing.assert_array_equal(out.terminated, terminated)
    np.testing.assert_array_equal(out.truncated, truncated)
    obs, own_term, own_trunc = rig.own_step(key, before.env_state.current, action)
    np.testing.assert_array_equal(out.final_obs, obs)
    np.testing.assert_array_equal(own_term, terminated)
    np.testing.assert_array_equal(own_trunc, truncated)
    ended = np.asarray(out.terminated | out.truncated)
    np.testing.assert_array_equal(after.obs, out.obs)
    assert (after.episode_length[ended] == 0).all() and (after.episode_return[ended] == 0).all()
    assert (
        np.asarray(out.done_length)[ended] == np.asarray(before.episode_length)[ended] + 1
    ).all()
    assert not np.array_equal(out.obs[ended], out.final_obs[ended])
    first = rig.reset(jax.random.PRNGKey(0))
    if rig.name != CRAFTAX:  # Empty-5x5 always starts the same way
        np.testing.assert_array_equal(out.obs[ended], first.obs[ended])


def test_specs():
    env = make_env(EnvSpec(name=CRAFTAX, num_envs=2))
    assert (env.name, env.num_envs, env.reset_mode) == (CRAFTAX, 2, "pool")
    assert env.observation_spec.shape == (1345,) and env.observation_spec.mask_dim == 0
    assert (env.action_spec.discrete, env.action_spec.dim) == (True, 17)
    assert env.time_limit == env.max_episode_steps == 10000
    pixels = make_env(EnvSpec(name="craftax/Craftax-Classic-Pixels-v1", num_envs=2))
    assert pixels.observation_spec.shape == (63, 63, 3)

    env = make_env(EnvSpec(name=NAVIX, num_envs=2, params={"max_steps": 9}))
    assert env.observation_spec.shape == (5, 5, 3) and env.observation_spec.dim == 75
    assert (env.action_spec.discrete, env.action_spec.dim) == (True, 7)
    assert env.time_limit == env.max_episode_steps == 9
    env = make_env(EnvSpec(name=NAVIX, num_envs=2, params={"observation": "categorical"}))
    assert env.observation_spec.shape == (5, 5) and env.time_limit == 100

    env = make_env(EnvSpec(name=XMG, num_envs=2))
    assert env.observation_spec.shape == (7, 7, 2) and env.observation_spec.dim == 98
    assert (env.action_spec.discrete, env.action_spec.dim) == (True, 6)
    assert env.time_limit == env.max_episode_steps == 100  # xminigrid: 4 * height * width
    env = make_env(EnvSpec(name=XMG, num_envs=2, params={"height": 8, "view_size": 5}))
    assert env.observation_spec.shape == (5, 5, 2) and env.time_limit == 4 * 8 * 5


def test_the_time_limit_truncates_with_the_true_final_obs_and_resets(rig):
    limit = LIMIT[rig.name]
    steps = rig.rollout([[IDLE[rig.name]] * 2] * (limit + 1))
    for t, (_, _, _, after, out) in enumerate(steps[: limit - 1]):
        assert not (out.terminated | out.truncated).any()
        np.testing.assert_array_equal(after.episode_length, [t + 1] * 2)
    _check_end(rig, steps[limit - 1], [False, False], [True, True])
    np.testing.assert_array_equal(steps[limit - 1][4].done_length, [limit] * 2)
    after, out = steps[limit][3:]
    assert not (out.terminated | out.truncated).any()
    np.testing.assert_array_equal(after.episode_length, [1, 1])


@pytest.mark.parametrize("suite", [NAVIX, XMG], ids=["navix", "xmg"])
def test_reaching_the_goal_terminates_before_and_at_the_limit(suite):
    rig = rig_for(suite)
    idle, goal = IDLE[suite], TO_GOAL[suite]
    # env 0 reaches the goal at step 5; env 1 waits one step, so reaches it at step 6 = limit.
    steps = rig.rollout(list(zip(goal + [idle], [WAIT[suite]] + goal, strict=True)))
    _check_end(rig, steps[4], [True, False], [False, False])
    assert steps[4][4].reward[0] > 0 and steps[4][4].done_return[0] == steps[4][4].reward[0]
    _check_end(rig, steps[5], [False, True], [False, False])


def _with_health(state, env: int, health: int):
    """``state`` with env ``env``'s craftax player at ``health`` (0 dies on its next step)."""
    current = state.env_state.current
    current = current.replace(player_health=current.player_health.at[env].set(health))
    return state.replace(env_state=state.env_state.replace(current=current))


def test_craftax_death_terminates_before_and_at_the_limit():
    rig, idle = rig_for(CRAFTAX), jnp.full((2,), IDLE[CRAFTAX], jnp.int32)
    # env 0 dies on step 1 (before the limit of 3)
    before = _with_health(rig.reset(jax.random.PRNGKey(0)), 0, 0)
    key = jax.random.PRNGKey(100)
    after, out = rig.step(key, before, idle)
    _check_end(rig, (before, key, idle, after, out), [True, False], [False, False])
    # env 1 dies on step 3, its limit: a death, not a time-out
    after, _ = rig.step(jax.random.PRNGKey(101), after, idle)
    before, key = _with_health(after, 1, 0), jax.random.PRNGKey(102)
    after, out = rig.step(key, before, idle)
    _check_end(rig, (before, key, idle, after, out), [False, True], [False, False])
    np.testing.assert_array_equal(out.done_length, [0, LIMIT[CRAFTAX]])


def test_navix_restarts_keep_the_render_cache_where_no_observation_draws_from_it():
    """A restart gives navix's fresh initial observation; symbolic observations keep the
    ended state's render cache (building one draws every tile), rgb ones draw a new one."""
    for observation, keeps in (("symbolic", True), ("rgb", False)):
        env = make_env(EnvSpec(name=NAVIX, num_envs=1, params={"observation": observation}))
        ended, _ = env.reset_one(jax.random.PRNGKey(1))
        ended = ended.replace(
            state=ended.state.replace(cache=jax.tree.map(jnp.zeros_like, ended.state.cache))
        )
        with suite_code():
            restarted, obs = env.restart_one(jax.random.PRNGKey(2), ended)
            fresh, fresh_obs = env.reset_one(jax.random.PRNGKey(2))
        np.testing.assert_array_equal(obs, fresh_obs)
        kept = restarted.state.cache.patches
        assert np.array_equal(kept, ended.state.cache.patches) is keeps
        assert np.array_equal(kept, fresh.state.cache.patches) is not keeps


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (CRAFTAX, {"max_timestep": 3}, "not a parameter of craftax/"),
        (CRAFTAX, {"max_timesteps": 2.5}, "must be an integer >= 1, got 2.5"),
        (CRAFTAX, {"always_diamond": 1}, "must be true or false, got 1"),
        (CRAFTAX, {"spawn_cow_chance": "x"}, "must be a number, got 'x'"),
        (NAVIX, {"max_step": 3}, "(did you mean 'max_steps'?)"),
        (NAVIX, {"max_steps": "3"}, "must be an integer >= 1, got '3'"),
        (NAVIX, {"observation": "pixels"}, "must be one of symbolic,"),
        (XMG, {"maxsteps": 3}, "not a parameter of xminigrid/"),
        (XMG, {"view_size": 4}, "must be an odd integer >= 3, got 4"),
        (XMG, {"height": 4}, "must be >= 5, got 4"),
        ("xminigrid/MiniGrid-FourRooms", {"height": 9}, "not a parameter"),
        ("xminigrid/XLand-MiniGrid-R1-9x9", {}, "unknown xminigrid environment"),
    ],
)
def test_check_env_names_a_wrong_param(name, params, message):
    with pytest.raises(SpecError) as err:
        check_env(name, params, "env.name", "env.params")
    assert message in str(err.value)


def test_check_env_accepts_good_params_and_xland_needs_a_ruleset():
    check_env(CRAFTAX, {"max_timesteps": 5, "always_diamond": False, "day_length": 100}, "n", "p")
    check_env(NAVIX, {"max_steps": 5, "observation": "rgb", "penality_coeff": 0.5}, "n", "p")
    check_env(XMG, {"max_steps": 5, "view_size": 3, "width": 7}, "n", "p")
    with pytest.raises(SpecError, match="benchmark ruleset"):
        make_env(EnvSpec(name="xminigrid/XLand-MiniGrid-R1-9x9", num_envs=2))


def test_shrink_caps_the_episode_limit_and_craftax_restarts_from_its_first_world():
    assert shrink_params(NAVIX, {}) == {"max_steps": 50}
    assert shrink_params(XMG, {"max_steps": 999, "view_size": 5}) == {
        "max_steps": 50,
        "view_size": 5,
    }
    assert shrink_params(CRAFTAX, {"max_timesteps": 10, "reset": "pool"}) == {
        "max_timesteps": 10,
        "reset": "cached",
    }


def test_craftax_draws_a_recorded_episode(tmp_path):
    """``enjoy --render``'s path: env 0's recorded states -> a GIF by Craftax's renderer."""
    rig = rig_for(CRAFTAX)  # its compiled reset and step: a new env would compile them again
    steps = rig.rollout([[t + 1, t + 1] for t in range(3)])
    trace = [jax.tree.map(lambda x: np.asarray(x[0]), before.env_state) for before, *_ in steps]
    rig.env.write_gif(jax.tree.map(lambda *xs: np.stack(xs), *trace), tmp_path / "ep.gif")
    from PIL import Image

    gif = Image.open(tmp_path / "ep.gif")
    assert gif.size == (144, 144) and gif.n_frames >= 2  # identical frames may merge
