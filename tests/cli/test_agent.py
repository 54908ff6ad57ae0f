"""pyro-frmdn agent: the config is checked, and the whole V-M-C loop runs end to end on a fake
environment in seconds (and on CartPole from pixels when gymnasium renders it)."""

import json
import re
from functools import partial

import pytest
import torch
from support.agents import BalanceEnv

import pyro_frmdn as pf
from pyro_frmdn.cli import main
from pyro_frmdn.cli.agent import DEFAULTS, load_agent_config, run_agent

pytest.importorskip("cma")

TINY = {
    "env": {"size": 8, "max_steps": 30},
    "collect": {"episodes": 6, "iterations": 2},
    "world": {"latent_dim": 3, "channels": [4], "features": 8, "hidden_dim": 6, "kl_warmup": 0},
    "fit": {"epochs": 1, "batch_size": 8, "window": 8},
    "controller": {"generations": 2, "popsize": 4, "rollouts": 2, "dream_steps": 10},
    "evaluate": {"episodes": 3},
}


def config(**controller):
    c = {section: {**DEFAULTS[section], **TINY.get(section, {})} for section in DEFAULTS}
    c["controller"].update(controller)
    return c


@pytest.mark.parametrize("train_in", ["dream", "env"])
def test_the_whole_loop_runs_on_a_fake_environment(tmp_path, train_in):
    lines = []
    results = run_agent(config(train_in=train_in), tmp_path, progress=False,
                        make_env=partial(BalanceEnv, 30), log=lines.append)  # fmt: skip
    for name in ("world.pt", "controller.pt", "evolution.pt", "evolution1.pt", "evolution.png",
                 "agent.gif", "results.json"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["controller"]["episodes"] == 3 and len(saved["history"]) == 2
    assert results["controller"]["mean"] == saved["controller"]["mean"]
    assert lines[1].startswith(f"C trained in the {train_in}: mean return")
    # the saved parts rebuild and act: C reads M's hidden state
    world, c = pf.load(tmp_path / "world.pt"), pf.load(tmp_path / "controller.pt")
    assert isinstance(c, pf.Controller) and c.hidden_dim == world.prior.rnn.hidden_size == 6
    assert c.act(torch.zeros(3), torch.zeros(6)).shape == ()
    # every real return is a whole number of steps of reward 1, at most max_steps
    assert 1 <= saved["controller"]["mean"] <= 30


def test_sticky_collection_bursts_and_a_done_head_on_h(tmp_path, monkeypatch):
    """[collect] sticky / hold / epsilon reach the collector and [fit] done_hidden the done
    head's refit: the saved world model's head reads [z, a, h] and rebuilds so."""
    import pyro_frmdn.cli.agent as agent

    calls = []
    real = agent.collect_episodes

    def spy(make, n, *args, explore=None, **kwargs):
        calls.append((n, None if explore is None else (explore.epsilon, explore.hold)))
        return real(make, n, *args, explore=explore, **kwargs)

    monkeypatch.setattr(agent, "collect_episodes", spy)
    c = config()
    c["collect"].update(sticky=3, hold=3.0, epsilon=0.5)
    c["fit"].update(done_hidden=True, done_steps=20)
    run_agent(c, tmp_path, progress=False, make_env=partial(BalanceEnv, 30), log=lambda _: None)
    # random episodes, sticky ones, then C's with bursts (iteration 2), then the judging runs
    assert calls[:3] == [(6, None), (3, (1.0, 3.0)), (6, (0.5, 3.0))]
    world = pf.load(tmp_path / "world.pt")
    assert world.done_hidden and world.config["done_hidden"]
    assert world.done_head[0].in_features == 3 + 2 + 6  # z, the action's one-hot, M's h


def test_one_sided_flags_that_do_not_fit_the_actions_are_refused_before_any_work(tmp_path):
    with pytest.raises(pf.cli.agent.ConfigError, match=r"\[controller\] one_sided: one_sided "
                       "applies to a Box"):  # fmt: skip
        run_agent(config(one_sided=[True]), tmp_path / "run", progress=False,
                  make_env=partial(BalanceEnv, 30), log=lambda _: None)  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_bad_configs_are_refused_with_the_key_named(tmp_path, capsys):
    path = tmp_path / "a.toml"
    for text, message in (
        ("[controller]\npopsize = 0\n", "[controller] popsize must be > 0, got 0"),
        ("[controller]\ntrain_in = 'moon'\n", "[controller] train_in must be one of"),
        ("[controller]\npopsise = 3\n", "unknown key [controller] popsise"),
        ("[agent]\n", "unknown config section [agent]"),
        ("[fit]\nlr = 'fast'\n", "[fit] lr must be like 0.002, got 'fast'"),
        ("[fit\n", "is not valid TOML"),
        ("[env]\nname = 'Pong'\n", "[env] name must be one of ('CartPole-v1', 'CarRacing-v3')"),
        ("[env]\nstack = 0\n", "[env] stack must be > 0, got 0"),
        ("[controller]\ndone = 'never'\n", "[controller] done must be one of ('sample', "),
        ("[fit]\ndone_steps = -1\n", "[fit] done_steps must be >= 0, got -1"),
        ("[collect]\nhold = 0.5\n", "[collect] hold must be >= 1 (mean steps a random action"),
        ("[collect]\nepsilon = 1.5\n", "[collect] epsilon must be in [0, 1], got 1.5"),
        ("[collect]\nsticky = -2\n", "[collect] sticky must be >= 0, got -2"),
        ("[fit]\ndone_hidden = true\ndone_steps = 0\n", "[fit] done_hidden needs [fit] done_steps"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)):
            load_agent_config(path)
        with pytest.raises(SystemExit):
            main(["agent", "--config", str(path), "--out", str(tmp_path / "run")])
        assert "pyro-frmdn agent: error:" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing ran
    assert load_agent_config(None) == DEFAULTS
    # the example config spells out every default
    assert load_agent_config("examples/configs/agent_cartpole.toml") == DEFAULTS


def test_the_carracing_config_builds_the_papers_sizes():
    """examples/configs/agent_carracing.toml loads, and its V, M and C have World Models' sizes
    (Ha & Schmidhuber 2018): a 32-D code of 64 x 64 frames, an LSTM of 256 and a controller of
    867 parameters for CarRacing's three actions (steer, gas, brake)."""
    c = load_agent_config("examples/configs/agent_carracing.toml")
    assert c["env"] == {"name": "CarRacing-v3", "size": 64, "stack": 1, "max_steps": 1000}
    assert (c["controller"]["popsize"], c["controller"]["rollouts"]) == (64, 16)
    size = c["env"]["size"]
    torch.manual_seed(0)
    world = pf.WorldModel((3, size, size), action_dim=3, reward=True, done=True, **c["world"])
    assert (world.latent_dim, world.prior.rnn.hidden_size) == (32, 256)
    assert world.encode(torch.zeros(1, 1, 3, size, size, dtype=torch.uint8)).shape == (1, 1, 32)
    controller = pf.Controller(world.latent_dim, world.prior.rnn.hidden_size, low=[-1, 0, 0],
                               high=[1, 1, 1], one_sided=c["controller"]["one_sided"],
                               use_hidden=c["controller"]["use_hidden"])  # fmt: skip
    assert controller.num_parameters == 867


@pytest.mark.slow
def test_the_command_runs_on_cartpole_from_pixels(tmp_path):
    pytest.importorskip("gymnasium")
    pytest.importorskip("pygame", reason="CartPole renders with pygame")
    path = tmp_path / "cartpole.toml"
    path.write_text(
        "[env]\nsize = 16\nmax_steps = 20\n[collect]\nepisodes = 3\n"
        "[world]\nlatent_dim = 3\nchannels = [4]\nfeatures = 8\nhidden_dim = 6\n"
        "[fit]\nepochs = 1\nwindow = 8\n"
        "[controller]\ngenerations = 1\npopsize = 2\nrollouts = 1\ndream_steps = 5\n"
        "[evaluate]\nepisodes = 2\ngif = false\n"
    )
    assert main(["agent", "--config", str(path), "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0  # fmt: skip
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["env"]["name"] == "CartPole-v1"
    assert 1 <= results["controller"]["mean"] <= 20
