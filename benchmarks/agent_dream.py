"""Does M's dream rank CartPole policies as the real world does, and does a controller trained
only in it work in the real world?

Starts from a saved world model (V, M and heads, e.g. run B's ``follow/refit/world.pt``),
collects real episodes from pixels (plain random, random actions held for a few steps: "sticky",
``pyro_frmdn.infer.exploration.Exploration``), refits M alone in standard units
(``refit_dynamics``) and the done head (``refit_done_head``, on ``[z, a]`` or, with
``--done-hidden``, on ``[z, a, h]``), then:

1. probes the dream: the expected length of dreams (the survival the done head allows, what the
   dream fitness reads) under random actions, always left, always right and a hand-made
   balancing controller (push toward the lean, ``a = [theta + 0.3 theta' > 0]``, with theta and
   theta' read linearly from ``[z, h]``, fitted on the true states: a check of the world model,
   not an agent), beside the real lengths of the same policies;
2. trains C on ``[z, h]`` by CMA-ES only in the dream and judges it on real episodes;
3. with ``--iterations k``, runs World Models' iterative procedure k - 1 more times: collect
   with the dream C plus random bursts (``Exploration(epsilon, hold)``), refit M and the done
   head on all episodes, probe, retrain C in the new dream.

Writes ``results.json`` (every number, per round), ``dream.png`` (dream against real lengths,
and the dream C's curve) and the last round's ``world.pt`` and ``controller.pt`` into ``--out``.

    python benchmarks/agent_dream.py --out /tmp/dream/sticky --sticky 100 \\
        --world benchmarks/results/agent_cartpole/follow/refit/world.pt
    python benchmarks/agent_dream.py --out /tmp/dream/sticky --world /tmp/dream/sticky/world.pt \\
        --judge /tmp/dream/sticky/controller.pt --seed 77777
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from agent import fit_world, join  # the benchmark beside this one

import pyro_frmdn as pf
from pyro_frmdn.data.envs import collect_episodes, env_factory
from pyro_frmdn.distributions import temper
from pyro_frmdn.infer.done_head import refit_done_head
from pyro_frmdn.infer.dynamics import refit_dynamics
from pyro_frmdn.infer.evolution import train_controller
from pyro_frmdn.infer.exploration import Exploration
from pyro_frmdn.infer.rollouts import DreamFitness, episode_inputs, hidden_state, real_rollout
from pyro_frmdn.plots import save_episode_gif

STATE = ("x", "x_velocity", "theta", "theta_velocity")


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--world", required=True, help="a world.pt (V, M and heads); M and the done head are refit")
    a("--out", required=True)
    a("--size", type=int, default=32)
    a("--stack", type=int, default=2)
    a("--overview", type=int, default=0,
      help="CartPole: top rows of each frame showing the whole track")  # fmt: skip
    a("--random", type=int, default=100, help="plain random episodes to fit M on")
    a("--sticky", type=int, default=0, help="episodes of random actions held --hold steps")
    a("--hold", type=float, default=4.0, help="mean steps a random action is held")
    a("--dynamics-epochs", type=int, default=300, help="0: M as loaded")
    a("--refit-epochs", type=int, default=0,
      help="epochs of V and M refitted jointly in rounds after the first (0: none)")  # fmt: skip
    a("--done-steps", type=int, default=500, help="0: the done head as loaded")
    a("--done-hidden", action="store_true", help="the done head reads [z, a, h]")
    a("--held-out", type=int, default=20, help="random episodes to score the read-outs on")
    a("--probe-dreams", type=int, default=256)
    a("--probe-steps", type=int, default=300)
    a("--probe-real", type=int, default=10, help="real episodes of the balancing policy")
    a("--generations", type=int, default=40, help="CMA-ES generations in the dream (0: none)")
    a("--popsize", type=int, default=8)
    a("--dream-rollouts", type=int, default=16)
    a("--dream-steps", type=int, default=300)
    a("--temperature", type=float, default=1.15)
    a("--curve-every", type=int, default=10)
    a("--curve-episodes", type=int, default=5)
    a("--eval-episodes", type=int, default=100)
    a("--max-steps", type=int, default=500)
    a("--iterations", type=int, default=1)
    a("--explore-episodes", type=int, default=100, help="episodes collected per iteration")
    a("--epsilon", type=float, default=0.3, help="chance a step starts a random burst")
    a("--explore-hold", type=float, default=4.0)
    a("--seed", type=int, default=0)
    a("--judge", default=None,
      help="a controller.pt: judge it (with --world) on --eval-episodes real episodes seeded by "
      "--seed, write judge.json and agent.gif, and stop")  # fmt: skip
    return p.parse_args()


class StateRecorder:
    """A frame environment that also keeps the true CartPole state beside every frame."""

    def __init__(self, env, log: list):
        self.env, self.log, self.action_space = env, log, env.action_space

    def reset(self, seed=None):
        out = self.env.reset(seed=seed)
        self.log.append([self._state()])
        return out

    def step(self, action):
        out = self.env.step(action)
        self.log[-1].append(self._state())  # the last one (after the end) is dropped
        return out

    def _state(self) -> np.ndarray:
        return np.array(self.env.env.unwrapped.state, dtype=np.float32)

    def close(self):
        self.env.close()


def collect(make, episodes: int, seed: int, world=None, controller=None, explore=None) -> dict:
    """collect_episodes' padded tensors, with the true ``states`` (N, T, 4)."""
    log: list = []
    data = collect_episodes(lambda: StateRecorder(make(), log), episodes, world, controller,
                            seed=seed, max_steps=500, progress=False, explore=explore)  # fmt: skip
    states = torch.zeros(*data["mask"].shape, 4)
    for i, run in enumerate(log):
        n = int(data["mask"][i].sum())
        states[i, :n] = torch.from_numpy(np.stack(run[:n]))
    data["states"] = states
    return data


def readout(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """Ridge regression of y (N, K) on [x, 1] (x already standardised): (I + 1, K)."""
    a = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1).double()
    lam = ridge * len(a) * torch.eye(a.shape[1], dtype=torch.float64)
    return torch.linalg.solve(a.T @ a + lam, a.T @ y.double())


def r2(x, y, w) -> list[float]:
    a = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1).double()
    resid = ((a @ w - y.double()) ** 2).sum(0)
    total = ((y.double() - y.double().mean(0)) ** 2).sum(0)
    return [round(float(v), 3) for v in 1 - resid / total]


def balancer(world, data, test, space) -> tuple[pf.Controller, dict]:
    """C with a = [theta_hat + 0.3 theta'_hat > 0], theta and theta' read linearly from the
    standardised [z, h] (fitted on the true states of ``data``; R^2 on ``test``)."""
    c = pf.Controller(world.latent_dim, world.prior.rnn.hidden_size, space)
    z, h = episode_inputs(world, data["frames"], data["actions"], data["mask"])
    c.fit_inputs(z, h)
    std = lambda z, h: (torch.cat([z, h], 1) - c.input_loc) / c.input_scale  # noqa: E731
    w = readout(std(z, h), data["states"][data["mask"]])
    tz, th = episode_inputs(world, test["frames"], test["actions"], test["mask"])
    scores = dict(zip(STATE, r2(std(tz, th), test["states"][test["mask"]], w), strict=True))
    zs = dict(zip(STATE, r2(std(tz, th)[:, : world.latent_dim],
                            test["states"][test["mask"]],
                            readout(std(z, h)[:, : world.latent_dim],
                                    data["states"][data["mask"]])), strict=True))  # fmt: skip
    v = w[:, 2] + 0.3 * w[:, 3]
    c.set_flat(v.float())  # W = v[:-1], b = v[-1]: act 1 when the read-out is > 0
    return c, {"R2 [z, h] -> state (held out)": scores, "R2 z -> state (held out)": zs}


@torch.no_grad()
def dream_length(world, initial, policy, n: int, steps: int, tau: float, seed: int) -> float:
    """The expected length of ``n`` dreams of at most ``steps`` steps under ``policy`` (a
    Controller, or "random", "0", "1"): the sum over steps of the probability of being alive,
    the done head read as ``dream_rollout(done="expected")`` reads it."""
    g = torch.Generator().manual_seed(seed)
    m = world.prior
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = m.initial_state(n)
        feats = torch.zeros(n, world.action_dim)
        d, state = m.step(state, None, feats)
        z = initial[torch.randint(len(initial), (n,), generator=g)]
        alive, total = torch.ones(n), torch.zeros(n)
        for _ in range(steps):
            h = hidden_state(state)
            if policy == "random":
                a = torch.randint(2, (n,), generator=g)
            elif isinstance(policy, str):
                a = torch.full((n,), int(policy))
            else:
                a = policy.act(z, h)
            feats = torch.nn.functional.one_hot(a, 2).float()
            hidden = h[:, None] if world.done_hidden else None
            heads = world.head_distributions(z[:, None], feats[:, None], None, hidden)
            total += alive
            alive = alive * (1 - heads["done"].base_dist.probs[:, 0])
            d, state = m.step(state, z, feats)
            z = temper(d, tau, tau).sample()
    return round(float(total.mean()), 1)


def real_length(make, world, policy, episodes: int, seed: int, max_steps: int) -> dict:
    if isinstance(policy, str):
        log: list = []
        env = make()
        for i in range(episodes):
            env.reset(seed=seed + i)
            rng, steps = np.random.default_rng(seed + i), 0
            for steps in range(1, max_steps + 1):  # noqa: B007
                a = int(rng.integers(2)) if policy == "random" else int(policy)
                if any(env.step(a)[2:4]):
                    break
            log.append(steps)
        env.close()
        r = torch.tensor(log, dtype=torch.float64)
    else:
        runs = collect_episodes(make, episodes, world, policy, seed=seed, max_steps=max_steps,
                                progress=False)  # fmt: skip
        r = runs["returns"].double()
    return {"mean": round(float(r.mean()), 1), "sd": round(float(r.std()), 1), "episodes": episodes}


def probe(args, make, world, data, test, initial, space) -> dict:
    """Dream against real lengths of four policies, and the read-outs behind the balancer."""
    c, report = balancer(world, data, test, space)
    t = time.perf_counter()
    policies = {"random": "random", "always left": "0", "always right": "1", "balancer": c}
    for name, policy in policies.items():
        report[f"dream {name}"] = dream_length(world, initial, policy, args.probe_dreams,
                                               args.probe_steps, args.temperature, 0)  # fmt: skip
        episodes = args.probe_real if name == "balancer" else 20
        report[f"real {name}"] = real_length(make, world, policy, episodes, 30_000,
                                             args.max_steps)  # fmt: skip
        print(f"  {name}: dream {report[f'dream {name}']}, real {report[f'real {name}']}",
              flush=True)  # fmt: skip
    report["probe s"] = round(time.perf_counter() - t)
    return report


def fit(args, world, data, seed: int, joint: bool = False) -> dict:
    t = time.perf_counter()
    if joint and args.refit_epochs:  # V too, on the episodes C collected (World Models' rounds)
        fit_world(world, data, args.refit_epochs, seed, 0)
    world.eval()
    m = d = {}  # 0 epochs or steps: M or the done head as loaded
    if args.dynamics_epochs:
        m = refit_dynamics(world, data["frames"], data["actions"], data["mask"],
                           epochs=args.dynamics_epochs, seed=seed, progress=False)  # fmt: skip
    world.eval()
    if args.done_steps:
        d = refit_done_head(world, data["frames"], data["actions"], data["dones"], data["mask"],
                            steps=args.done_steps, hidden=args.done_hidden, seed=seed,
                            progress=False)  # fmt: skip
    return {"dynamics": m, "done head": d, "fit s": round(time.perf_counter() - t)}


def dream_controller(args, make, world, data, initial, space, seed: int) -> tuple:
    c = pf.Controller(world.latent_dim, world.prior.rnn.hidden_size, space)
    c.set_flat(torch.zeros(c.num_parameters))
    c.fit_inputs(*episode_inputs(world, data["frames"], data["actions"], data["mask"]))
    fitness = DreamFitness(world, c, args.dream_rollouts, args.dream_steps, args.temperature,
                           initial, "expected")  # fmt: skip
    curve = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "evolution.pt"
        for g in range(0, args.generations, args.curve_every):
            last = min(g + args.curve_every, args.generations)
            evo = train_controller(c, fitness, last, popsize=args.popsize, sigma=0.5, seed=seed,
                                   checkpoint=path, progress=False)  # fmt: skip
            real = real_length(make, world, c, args.curve_episodes, 20_000 + last, args.max_steps)
            curve.append({**evo.history[-1], "dream best": evo.best_score, "real": real["mean"]})
            print(f"  dream generation {last}: dream {evo.best_score:.1f}, real {real['mean']}",
                  flush=True)  # fmt: skip
    return c, curve


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    make = env_factory("CartPole-v1", args.size, args.stack, overview=args.overview)
    probe_env = make()
    space = probe_env.action_space
    probe_env.close()
    world = pf.load(args.world)
    if args.judge:
        judge(args, make, world.eval(), pf.load(args.judge), out)
        return
    t0 = time.perf_counter()
    data = collect(make, args.random, args.seed)
    if args.sticky:
        data = join(data, collect(make, args.sticky, args.seed + 1,
                                  explore=Exploration(1.0, args.hold)))  # fmt: skip
    test = collect(make, args.held_out, args.seed + 2)
    report = {"args": vars(args), "machine": f"{platform.processor()}, torch {torch.__version__}",
              "rounds": []}  # fmt: skip
    c = None
    for k in range(args.iterations):
        row = {"round": k + 1}
        if k:  # collect with the dream C and random bursts
            more = collect(make, args.explore_episodes, args.seed + 10 + k, world, c,
                           Exploration(args.epsilon, args.explore_hold))  # fmt: skip
            row["collected with C + exploration"] = {
                "mean steps": round(float(more["returns"].mean()), 1)
            }
            data = join(data, more)
        row["episodes"], row["steps"] = len(data["mask"]), int(data["mask"].sum())
        print(f"round {k + 1}: {row['episodes']} episodes, {row['steps']} steps", flush=True)
        row.update(fit(args, world, data, args.seed + k, joint=k > 0))
        print("  fitted:", {k: row[k] for k in ("dynamics", "done head", "fit s")}, flush=True)
        initial = world.encode(data["frames"][:, :1])[:, 0]
        row["probe"] = probe(args, make, world, data, test, initial, space)
        if args.generations:
            t = time.perf_counter()
            c, row["curve"] = dream_controller(args, make, world, data, initial, space,
                                               args.seed + k)  # fmt: skip
            row["dream C (real)"] = real_length(make, world, c, args.eval_episodes, 10_000,
                                                args.max_steps)  # fmt: skip
            row["dream C (dream)"] = dream_length(
                world, initial, c, args.probe_dreams, args.probe_steps, args.temperature, 0
            )
            row["C s"] = round(time.perf_counter() - t)
            print(f"  dream C: real {row['dream C (real)']}, dream {row['dream C (dream)']}",
                  flush=True)  # fmt: skip
        report["rounds"].append(row)
        report["total s"] = round(time.perf_counter() - t0)
        (out / "results.json").write_text(json.dumps(report, indent=1))
        plot(report, out / "dream.png")
        world.save(out / "world.pt")
        if c is not None:
            c.save(out / "controller.pt")
        if not args.generations:
            break


def judge(args, make, world, c, out: Path) -> None:
    """A saved controller on fresh real episodes, and a GIF of one (every second frame)."""
    t = time.perf_counter()
    report = real_length(make, world, c, args.eval_episodes, args.seed, args.max_steps)
    report.update(seed=args.seed, s=round(time.perf_counter() - t))
    print(report, flush=True)
    (out / "judge.json").write_text(json.dumps(report, indent=1))
    env = make()
    shown = real_rollout(env, world, c, None, args.seed, args.max_steps, record=True)
    env.close()
    save_episode_gif(out / "agent.gif", shown.frames[::2, -3:], scale=4)


def plot(report: dict, path: Path) -> None:
    """Left: each round's dream against real lengths of the probe policies (and of the dream
    C); right: the dream C's curves, its dream score and its real return by generation."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = ("random", "always left", "always right", "balancer")
    for row in report["rounds"]:
        probe = row["probe"]
        real = [probe[f"real {n}"]["mean"] for n in names]
        dream = [probe[f"dream {n}"] for n in names]
        if "dream C (real)" in row:
            real.append(row["dream C (real)"]["mean"])
            dream.append(row["dream C (dream)"])
        points = left.plot(real, dream, "o", label=f"round {row['round']}")
        for x, y, n in zip(real, dream, [*names, "dream C"], strict=False):
            left.annotate(n, (x, y), fontsize=6, color=points[0].get_color())
        if "curve" in row:
            g = [p["generation"] for p in row["curve"]]
            line = right.plot(g, [p["real"] for p in row["curve"]], marker="o",
                              label=f"round {row['round']}, real")  # fmt: skip
            right.plot(g, [p.get("dream best", p["reevaluated"]) for p in row["curve"]], ls=":",
                       color=line[0].get_color(), label=f"round {row['round']}, dream")  # fmt: skip
    top = max(left.get_xlim()[1], left.get_ylim()[1])
    left.plot([5, top], [5, top], color="grey", lw=0.5)
    left.set(xlabel="real steps", ylabel="expected dream steps", title="dream against real",
             xscale="log", yscale="log")  # fmt: skip
    right.set(xlabel="CMA-ES generation (dream)", ylabel="steps", title="the dream-trained C")
    for ax in (left, right):
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
