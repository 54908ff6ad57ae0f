"""``pyro-frmdn agent``: collect, fit V and M, train C by CMA-ES, evaluate, and show the agent."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from ..data.envs import ENVS, collect_episodes, env_factory, episode_windows
from ..files import atomic_write
from ..infer import fit
from ..infer.done_head import refit_done_head
from ..infer.dynamics import refit_dynamics
from ..infer.evolution import BACKENDS, train_controller
from ..infer.exploration import Exploration
from ..infer.rollouts import DONE_MODES, DreamFitness, EnvFitness, episode_inputs, real_rollout
from ..models import Controller, WorldModel
from .checks import ConfigError, check_folder

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["DEFAULTS", "HELP", "add_arguments", "load_agent_config", "main", "run_agent"]

HELP = "World Models' agent: collect, fit V and M, train C by CMA-ES (real or dream), evaluate."

DEFAULTS = {
    "env": {"name": "CartPole-v1", "size": 32, "stack": 2, "max_steps": 500},
    "collect": {
        "episodes": 60,
        "seed": 0,
        "iterations": 1,
        "sticky": 0,
        "hold": 4.0,
        "epsilon": 0.0,
    },
    "world": {
        "latent_dim": 8,
        "channels": [16, 32],
        "features": 64,
        "hidden_dim": 32,
        "prior": "rmdn",
        "likelihood": "logistic",
        "kl_warmup": 200,
    },
    "fit": {
        "epochs": 20,
        "batch_size": 16,
        "lr": 2e-3,
        "window": 32,
        "seed": 0,
        "done_steps": 500,
        "dynamics_epochs": 100,
        "done_hidden": False,
    },
    "controller": {
        "use_hidden": True,
        "one_sided": [],
        "train_in": "dream",
        "temperature": 1.15,
        "done": "expected",
        "generations": 20,
        "popsize": 16,
        "rollouts": 8,
        "sigma": 0.5,
        "seed": 0,
        "workers": 0,
        "backend": "processes",
        "dream_steps": 200,
    },
    "evaluate": {"episodes": 20, "seed": 1000, "gif": True},
}
"""Every section and key of an agent config, with its default (a small CartPole agent)."""

TRAIN_IN = ("dream", "env")


def _check(section: str, key: str, value, default) -> None:
    name = f"[{section}] {key}"
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{name} must be like {default!r}, got {value!r}")
    positive = (section, key) not in {("collect", "seed"), ("fit", "seed"), ("evaluate", "seed"),
                                      ("controller", "seed"), ("controller", "workers"),
                                      ("world", "kl_warmup"), ("fit", "done_steps"),
                                      ("fit", "dynamics_epochs"), ("collect", "sticky"),
                                      ("collect", "epsilon")}  # fmt: skip
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or (positive and value == 0):
            rule = "> 0" if positive else ">= 0"
            raise ConfigError(f"{name} must be {rule}, got {value!r}")
    if (section, key) == ("collect", "hold") and value < 1:
        raise ConfigError(
            f"{name} must be >= 1 (mean steps a random action is held), got {value!r}"
        )
    if (section, key) == ("collect", "epsilon") and value > 1:
        raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
    if key == "train_in" and value not in TRAIN_IN:
        raise ConfigError(f"{name} must be one of {TRAIN_IN}, got {value!r}")
    if section == "env" and key == "name" and value not in ENVS:
        raise ConfigError(f"{name} must be one of {tuple(ENVS)}, got {value!r}")
    if section == "controller" and key == "done" and value not in DONE_MODES:
        raise ConfigError(f"{name} must be one of {DONE_MODES}, got {value!r}")
    if key == "backend" and value not in BACKENDS:
        raise ConfigError(f"{name} must be one of {BACKENDS}, got {value!r}")


def load_agent_config(path: str | Path | None) -> dict:
    """The config of ``path`` (TOML) over :data:`DEFAULTS`, every key checked: an unknown
    section or key, a wrong type or a value out of range is a :class:`ConfigError` naming it."""
    given = {}
    if path is not None:
        try:
            given = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as err:
            raise ConfigError(f"--config: no file {path}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"--config {path} is not valid TOML: {err}") from err
    config = {section: dict(values) for section, values in DEFAULTS.items()}
    for section, values in given.items():
        if section not in DEFAULTS or not isinstance(values, dict):
            raise ConfigError(f"unknown config section [{section}] (known: {', '.join(DEFAULTS)})")
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                known = ", ".join(DEFAULTS[section])
                raise ConfigError(f"unknown key [{section}] {key} (known: {known})")
            _check(section, key, value, DEFAULTS[section][key])
            config[section][key] = value
    if config["fit"]["done_hidden"] and not config["fit"]["done_steps"]:
        raise ConfigError("[fit] done_hidden needs [fit] done_steps > 0 (the head is refitted)")
    return config


def _world(config: dict, frame_shape, action_dim: int) -> WorldModel:
    torch.manual_seed(config["fit"]["seed"])
    return WorldModel(tuple(frame_shape), action_dim=action_dim, reward=True, done=True,
                      **config["world"])  # fmt: skip


def _report(log: Callable[[str], None], name: str, returns: torch.Tensor) -> dict:
    mean, sd = float(returns.mean()), float(returns.std()) if len(returns) > 1 else 0.0
    log(f"{name}: mean return {mean:.1f} ± {sd:.1f} over {len(returns)} real episodes")
    return {"mean": mean, "sd": sd, "episodes": len(returns)}


def run_agent(config: dict, out: str | Path, progress: bool = True, make_env=None,
              log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """The whole loop of World Models for the config (see :data:`DEFAULTS`), files in ``out``:
    ``world.pt`` (V and M), ``controller.pt`` (C), ``evolution.pt`` (the CMA-ES checkpoint: a
    stopped run resumes), ``evolution.png``, ``agent.gif`` and ``results.json`` (mean ± sd of
    the real returns of random actions and of C)."""
    env, fit_cfg, c_cfg = config["env"], config["fit"], config["controller"]
    make = make_env or env_factory(env["name"], env["size"], env["stack"])
    probe = make()
    space = probe.action_space
    probe.close()
    try:  # before any work: the flags must fit the environment's actions
        Controller(1, 0, space, one_sided=c_cfg["one_sided"] or None, use_hidden=False)
    except ValueError as e:
        raise ConfigError(f"[controller] one_sided: {e}") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    collect = config["collect"]
    episodes = collect_episodes(make, collect["episodes"], seed=collect["seed"],
                                max_steps=env["max_steps"], progress=progress)  # fmt: skip
    random_returns = episodes["returns"]
    if collect["sticky"]:  # random actions held for a while: runs of one action for M to see
        more = collect_episodes(make, collect["sticky"], seed=collect["seed"] + 10_000,
                                max_steps=env["max_steps"], progress=progress,
                                explore=Exploration(1.0, collect["hold"]))  # fmt: skip
        episodes = _join(episodes, more)
    world = controller = None
    for iteration in range(collect["iterations"]):
        if iteration:  # World Models' iterative procedure: collect with C, refit V and M
            bursts = (
                Exploration(collect["epsilon"], collect["hold"]) if collect["epsilon"] else None
            )
            more = collect_episodes(make, collect["episodes"], world, controller,
                                    seed=collect["seed"] + iteration, max_steps=env["max_steps"],
                                    progress=progress, explore=bursts)  # fmt: skip
            episodes = _join(episodes, more)
        train = episode_windows(episodes, fit_cfg["window"])
        keys = ("frames", "actions", "mask", "rewards", "dones")
        frame_shape, action_dim = episodes["frames"].shape[2:], episodes["actions"].shape[-1]
        world = world or _world(config, frame_shape, action_dim)
        fit(world, {k: train[k] for k in keys}, epochs=fit_cfg["epochs"],
            batch_size=fit_cfg["batch_size"], lr=fit_cfg["lr"], seed=fit_cfg["seed"],
            progress=progress)  # fmt: skip
        world.eval()
        if fit_cfg["dynamics_epochs"]:  # M alone on V's codes, in standard units
            refit_dynamics(world, episodes["frames"], episodes["actions"], episodes["mask"],
                           epochs=fit_cfg["dynamics_epochs"], seed=fit_cfg["seed"],
                           progress=progress)  # fmt: skip
            world.eval()
        if fit_cfg["done_steps"]:  # the done head alone, class-weighted (see refit_done_head)
            refit_done_head(world, episodes["frames"], episodes["actions"], episodes["dones"],
                            episodes["mask"], steps=fit_cfg["done_steps"], seed=fit_cfg["seed"],
                            hidden=fit_cfg["done_hidden"], progress=progress)  # fmt: skip
        world.save(out / "world.pt")
        controller = Controller(world.latent_dim, world.prior.rnn.hidden_size, space,
                                one_sided=c_cfg["one_sided"] or None,
                                use_hidden=c_cfg["use_hidden"])  # fmt: skip
        controller.set_flat(torch.zeros(controller.num_parameters))
        z, h = episode_inputs(world, episodes["frames"], episodes["actions"], episodes["mask"])
        controller.fit_inputs(z, h if c_cfg["use_hidden"] else None)
        if c_cfg["train_in"] == "dream":
            first = episodes["frames"][:, :1]
            initial = world.encode(first)[:, 0]
            fitness = DreamFitness(world, controller, c_cfg["rollouts"], c_cfg["dream_steps"],
                                   c_cfg["temperature"], initial, c_cfg["done"])  # fmt: skip
        else:
            fitness = EnvFitness(make, world, controller, c_cfg["rollouts"], env["max_steps"])
        result = train_controller(
            controller, fitness, c_cfg["generations"], popsize=c_cfg["popsize"],
            sigma=c_cfg["sigma"], seed=c_cfg["seed"] + iteration, workers=c_cfg["workers"],
            backend=c_cfg["backend"], checkpoint=out / f"evolution{iteration or ''}.pt",
            progress=progress,
        )  # fmt: skip
        controller.save(out / "controller.pt")
    from ..plots import plot_evolution, save_episode_gif

    plot_evolution(result.history).savefig(out / "evolution.png", dpi=100)
    ev = config["evaluate"]
    runs = collect_episodes(make, ev["episodes"], world, controller, seed=ev["seed"],
                            max_steps=env["max_steps"], progress=progress)  # fmt: skip
    results = {
        "random (collected)": _report(log, "random actions", random_returns),
        "controller": _report(log, f"C trained in the {c_cfg['train_in']}", runs["returns"]),
        "history": result.history,
        "config": config,
    }
    if ev["gif"]:
        first = make()
        try:
            shown = real_rollout(first, world, controller, None, ev["seed"], env["max_steps"], True)
        finally:
            first.close()
        save_episode_gif(out / "agent.gif", shown.frames[:, -3:])  # the newest of stacked frames
    with atomic_write(out / "results.json", "w") as f:
        f.write(json.dumps(results, indent=1))
    return results


def _join(a: dict, b: dict) -> dict:
    t = max(a["mask"].shape[1], b["mask"].shape[1])
    pad = lambda x: torch.cat([x, x.new_zeros(x.shape[0], t - x.shape[1], *x.shape[2:])], 1)  # noqa: E731
    out = {k: torch.cat([pad(a[k]), pad(b[k])]) for k in a if k != "returns"}
    out["returns"] = torch.cat([a["returns"], b["returns"]])
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyro-frmdn agent``."""
    p.add_argument(
        "--config", help="the agent's TOML config (sections and defaults: docs/agent.md)"
    )
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def main(args: argparse.Namespace) -> int:
    """Run ``agent`` from parsed arguments; the config is checked before anything runs."""
    config = load_agent_config(args.config)
    check_folder("--out", args.out)
    torch.set_num_threads(1)
    run_agent(config, args.out, progress=not args.no_progress)
    return 0
