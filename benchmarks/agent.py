"""World Models' agent on CartPole-v1 from pixels: random actions, C on z, C on [z, h] (both
trained in the real environment) and C on [z, h] trained only in M's dream, each judged by its
mean return over real episodes ("solved": 475 over 100 episodes).

One V and M (a small VAE with an RMDN prior, reward and done heads, fitted jointly by SVI on
random-policy episodes) serve every controller. Writes ``results.json``, ``results.md``,
``returns.png`` (return against generation) and ``agent.gif`` into ``--out``.

    python benchmarks/agent.py --out benchmarks/results/agent_cartpole
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import pyro_frmdn as pf
from pyro_frmdn.data.envs import collect_episodes, env_factory, episode_windows
from pyro_frmdn.infer.evolution import train_controller
from pyro_frmdn.infer.rollouts import DreamFitness, EnvFitness, episode_inputs, real_rollout
from pyro_frmdn.plots import save_episode_gif


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--out", default="benchmarks/results/agent_cartpole")
    a("--size", type=int, default=32, help="frame side")
    a("--episodes", type=int, default=100, help="random episodes V and M are fitted on")
    a("--epochs", type=int, default=30)
    a("--latent", type=int, default=8)
    a("--hidden", type=int, default=32)
    a("--generations", type=int, default=8, help="CMA-ES generations in the real environment")
    a("--dream-generations", type=int, default=40, help="CMA-ES generations in the dream")
    a("--popsize", type=int, default=8)
    a("--rollouts", type=int, default=2, help="real rollouts per candidate")
    a("--dream-rollouts", type=int, default=16, help="dream rollouts per candidate")
    a("--train-steps", type=int, default=200, help="step cap of real training episodes")
    a("--dream-steps", type=int, default=300)
    a("--temperature", type=float, default=1.15)
    a("--eval-episodes", type=int, default=100)
    a("--workers", type=int, default=0)
    a("--seed", type=int, default=0)
    a(
        "--iterations",
        type=int,
        default=1,
        help="> 1: World Models' iterative procedure for the "
        "dream agent: collect with C, refit V and M, retrain C in the new dream",
    )
    a("--refit-epochs", type=int, default=10, help="epochs of each refit of V and M")
    return p.parse_args()


def evaluate(make, world, controller, episodes: int, seed: int) -> dict:
    runs = collect_episodes(make, episodes, world, controller, seed=seed, max_steps=500,
                            progress=True)  # fmt: skip
    r = runs["returns"]
    return {"mean": float(r.mean()), "sd": float(r.std()), "episodes": episodes}


def join(a: dict, b: dict) -> dict:
    """Two sets of padded episodes as one (padded to the longer)."""
    t = max(a["mask"].shape[1], b["mask"].shape[1])
    out = {}
    for k in a:
        parts = [
            x
            if k == "returns"
            else torch.cat([x, x.new_zeros(x.shape[0], t - x.shape[1], *x.shape[2:])], 1)
            for x in (a[k], b[k])
        ]
        out[k] = torch.cat(parts)
    return out


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    make = env_factory("CartPole-v1", args.size)
    t0 = time.perf_counter()
    timings = {}
    data = collect_episodes(make, args.episodes, seed=args.seed, max_steps=500)
    train = episode_windows(data, 32)
    torch.manual_seed(args.seed)
    world = pf.WorldModel(
        (3, args.size, args.size), latent_dim=args.latent, action_dim=2, channels=[16, 32],
        features=64, hidden_dim=args.hidden, prior="rmdn", reward=True, done=True,
        kl_warmup=200,
    )  # fmt: skip
    keys = ("frames", "actions", "mask", "rewards", "dones")
    pf.fit(world, {k: train[k] for k in keys}, epochs=args.epochs, batch_size=16, lr=2e-3,
           seed=args.seed)  # fmt: skip
    world.eval()
    world.save(out / "world.pt")
    timings["collect and fit V, M"] = time.perf_counter() - t0
    initial = world.encode(data["frames"][:, :1])[:, 0]
    z, h = episode_inputs(world, data["frames"], data["actions"], data["mask"])

    results, curves = {}, {}
    results["random"] = {"mean": float(data["returns"].mean()), "sd": float(data["returns"].std()),
                         "episodes": args.episodes}  # fmt: skip
    agents = {
        "C on z (real)": dict(use_hidden=False, dream=False),
        "C on [z, h] (real)": dict(use_hidden=True, dream=False),
        "C on [z, h] (dream only)": dict(use_hidden=True, dream=True),
    }
    for name, spec in agents.items():
        t = time.perf_counter()
        c = pf.Controller(args.latent, args.hidden, num_actions=2, use_hidden=spec["use_hidden"])
        c.set_flat(torch.zeros(c.num_parameters))
        c.fit_inputs(z, h if spec["use_hidden"] else None)  # standardised [z, h]
        if spec["dream"]:
            fitness = DreamFitness(world, c, args.dream_rollouts, args.dream_steps,
                                   args.temperature, initial)  # fmt: skip
            generations = args.dream_generations
        else:
            fitness = EnvFitness(make, world, c, args.rollouts, args.train_steps)
            generations = args.generations
        evo = train_controller(c, fitness, generations, popsize=args.popsize, sigma=0.5,
                               seed=args.seed, workers=args.workers)  # fmt: skip
        curves[name] = evo.history
        results[name] = evaluate(make, world, c, args.eval_episodes, seed=10_000)
        results[name]["generations"] = generations
        timings[name] = time.perf_counter() - t
        print(name, results[name], f"{timings[name]:.0f} s", flush=True)
        if spec["dream"]:
            env = make()
            shown = real_rollout(env, world, c, None, 10_000, 500, record=True)
            env.close()
            save_episode_gif(out / "agent.gif", shown.frames, scale=4)

    for k in range(1, args.iterations):  # collect with the dream's C (the last agent), refit
        t = time.perf_counter()
        more = collect_episodes(make, args.episodes, world, c, seed=args.seed + k, max_steps=500)
        data = join(data, more)
        world = copy.deepcopy(world).train()
        train = episode_windows(data, 32)
        pf.fit(world, {key: train[key] for key in keys}, epochs=args.refit_epochs, batch_size=16,
               lr=2e-3, seed=args.seed + k)  # fmt: skip
        world.eval()
        initial = world.encode(data["frames"][:, :1])[:, 0]
        c = pf.Controller(args.latent, args.hidden, num_actions=2)
        c.set_flat(torch.zeros(c.num_parameters))
        c.fit_inputs(*episode_inputs(world, data["frames"], data["actions"], data["mask"]))
        fitness = DreamFitness(world, c, args.dream_rollouts, args.dream_steps, args.temperature,
                               initial)  # fmt: skip
        evo = train_controller(c, fitness, args.dream_generations, popsize=args.popsize,
                               sigma=0.5, seed=args.seed + k)  # fmt: skip
        name = f"C on [z, h] (dream only, iteration {k + 1})"
        curves[name] = evo.history
        results[name] = evaluate(make, world, c, args.eval_episodes, seed=10_000)
        results[name]["generations"] = args.dream_generations
        timings[name] = time.perf_counter() - t
        print(name, results[name], f"{timings[name]:.0f} s", flush=True)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, history in curves.items():
        g = [row["generation"] for row in history]
        ax.plot(g, [row["reevaluated"] for row in history], marker="o", label=name)
    ax.set(xlabel="generation", ylabel="re-evaluated best return (its own fitness)",
           title="CartPole from pixels: CMA-ES")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "returns.png", dpi=100)
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    (out / "results.json").write_text(json.dumps(
        {"results": results, "curves": curves, "timings_s": timings, "args": vars(args),
         "machine": machine}, indent=1))  # fmt: skip
    lines = ["| agent | mean return ± sd (real episodes) | CMA-ES generations |", "|---|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['mean']:.1f} ± {r['sd']:.1f} ({r['episodes']}) | "
                     f"{r.get('generations', '')} |")  # fmt: skip
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
