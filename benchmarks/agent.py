"""World Models' agent from pixels: random actions, C on z, C on [z, h] (both trained in the real
environment) and C on [z, h] trained only in M's dream, each judged by its mean return over real
episodes (CartPole-v1 "solved": 475 over 100 episodes).

One V and M (a small VAE with an RMDN prior, reward and done heads, fitted jointly by SVI on
random-policy episodes; then the done head refitted alone, class-weighted) serve every
controller. The dream agent's real return is measured every ``--curve-every`` generations (the
dream's own best, judged on real episodes it never trained on). Writes ``results.json``,
``results.md``, ``returns.png`` and ``agent.gif`` into ``--out``.

    python benchmarks/agent.py --out benchmarks/results/agent_cartpole
    python benchmarks/agent.py --env CarRacing-v3 --out benchmarks/results/agent_carracing ...
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import pyro_frmdn as pf
from pyro_frmdn.data.envs import collect_episodes, env_factory, episode_windows
from pyro_frmdn.infer.done_head import refit_done_head
from pyro_frmdn.infer.dynamics import refit_dynamics
from pyro_frmdn.infer.evolution import train_controller
from pyro_frmdn.infer.exploration import Exploration
from pyro_frmdn.infer.rollouts import DreamFitness, EnvFitness, episode_inputs, real_rollout
from pyro_frmdn.plots import save_episode_gif

KEYS = ("frames", "actions", "mask", "rewards", "dones")


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--out", default="benchmarks/results/agent_cartpole")
    a("--env", default="CartPole-v1", choices=["CartPole-v1", "CarRacing-v3"])
    a("--size", type=int, default=32, help="frame side")
    a("--stack", type=int, default=2, help="frames stacked per observation (1: one frame)")
    a("--overview", type=int, default=0,
      help="CartPole: top rows of each frame showing the whole track")  # fmt: skip
    a("--whole-width", action="store_true",
      help="CartPole frames of the whole track (before the window followed the cart)")  # fmt: skip
    a("--episodes", type=int, default=100, help="random episodes V and M are fitted on")
    a("--sticky", type=int, default=0,
      help="more episodes of random actions each held --hold steps on average, for M")  # fmt: skip
    a("--hold", type=float, default=4.0, help="mean steps a sticky random action is held")
    a("--max-steps", type=int, default=500, help="step cap of every real episode")
    a("--epochs", type=int, default=60)
    a("--latent", type=int, default=8)
    a("--hidden", type=int, default=32)
    a("--done-steps", type=int, default=500, help="Adam steps of the done head's refit (0: none)")
    a("--done-hidden", action="store_true", help="the refitted done head reads [z, a, h]")
    a("--dynamics-epochs", type=int, default=0,
      help="epochs of M refitted alone on V's codes after the joint fit (0: none)")  # fmt: skip
    a("--world", default=None, help="a world.pt to load (V, M and heads) instead of fitting one")
    a("--kl-end", type=float, default=1.0, help="the KL weight after warm-up (< 1: a beta-VAE)")
    a(
        "--generations",
        type=int,
        default=8,
        help="CMA-ES generations in the real environment (0: none)",
    )
    a("--dream-generations", type=int, default=40, help="CMA-ES generations in the dream (0: none)")
    a("--popsize", type=int, default=8)
    a("--sigma", type=float, default=0.5, help="CMA-ES's initial step size")
    a("--same-start", action="store_true",
      help="scale --sigma by sqrt(latent / inputs) per controller, so that C on [z, h] starts with "
      "the spread of pre-activations C on z has (standardised inputs: the spread grows as the "
      "square root of their number)")  # fmt: skip
    a("--one-sided", type=int, nargs="+", choices=(0, 1),
      help="per action coordinate, 1: it rests at its low bound for u <= 0 (CarRacing: 0 0 1, "
      "World Models' brake; default: every coordinate at mid-range for u = 0)")  # fmt: skip
    a("--staged", type=int, default=0,
      help="> 0: C on [z, h] starts from C on z at this generation (weights on h zero) and "
      "searches for the remaining --generations; C on z runs them all")  # fmt: skip
    a("--rollouts", type=int, default=2, help="real rollouts per candidate")
    a("--reeval-rollouts", type=int, default=0,
      help="real rollouts re-evaluating each generation's best (0: --rollouts)")  # fmt: skip
    a("--judge-mean", action="store_true",
      help="also judge the real agents' CMA-ES search mean (for noisy returns)")  # fmt: skip
    a("--dream-rollouts", type=int, default=16, help="dream rollouts per candidate")
    a("--train-steps", type=int, default=200, help="step cap of real training episodes")
    a("--dream-steps", type=int, default=300)
    a("--temperature", type=float, default=1.15)
    a("--done", default="expected", choices=["sample", "expected"], help="the dream's done flags")
    a("--curve-every", type=int, default=5, help="generations between real checks of the dream C")
    a("--curve-episodes", type=int, default=5)
    a("--eval-episodes", type=int, default=100)
    a("--workers", type=int, default=0)
    a("--seed", type=int, default=0)
    a("--iterations", type=int, default=1,
      help="> 1: World Models' iterative procedure for the dream agent: collect with C, refit V "
      "and M, retrain C in the new dream")  # fmt: skip
    a("--refit-epochs", type=int, default=20, help="epochs of each refit of V and M")
    a("--epsilon", type=float, default=0.0,
      help="iterations collect with C plus random bursts started at this rate")  # fmt: skip
    a("--explore-hold", type=float, default=4.0, help="mean steps of a random burst")
    a("--collect-with", default=None,
      help="with --world: a controller .pt that drives --collect-episodes more episodes (random "
      "bursts at --epsilon) before M is refitted on all (--dynamics-epochs): M sees the "
      "controller's driving, as in World Models' iterative procedure")  # fmt: skip
    a("--collect-episodes", type=int, default=20)
    a("--v-only", default=None,
      help="with --staged: C on z at generation --staged, from this .pt; only C on [z, h] is "
      "searched (from it, for --generations - --staged generations)")  # fmt: skip
    args = p.parse_args()
    if args.collect_with and not args.world:
        p.error("--collect-with needs --world (the V and M the controller reads)")
    if args.v_only and not args.staged:
        p.error("--v-only needs --staged (the generation it was taken at)")
    if args.staged and not 0 < args.staged < args.generations:
        p.error(f"--staged must lie in 1..{args.generations - 1} (--generations - 1)")
    return args


def evaluate(make, world, controller, episodes: int, seed: int, max_steps: int) -> dict:
    runs = collect_episodes(make, episodes, world, controller, seed=seed, max_steps=max_steps)
    r = runs["returns"]
    return {"mean": float(r.mean()), "sd": float(r.std()), "episodes": episodes,
            "returns": [round(float(x), 3) for x in r]}  # fmt: skip


def join(a: dict, b: dict) -> dict:
    """Two sets of padded episodes as one (padded to the longer)."""
    t = max(a["mask"].shape[1], b["mask"].shape[1])
    out = {}
    for k in a:
        if k == "returns":
            out[k] = torch.cat([a[k], b[k]])
            continue
        pad = [torch.cat([x, x.new_zeros(x.shape[0], t - x.shape[1], *x.shape[2:])], 1)
               for x in (a[k], b[k])]  # fmt: skip
        out[k] = torch.cat(pad)
    return out


def fit_world(world, data, epochs: int, seed: int, done_steps: int, dynamics: int = 0,
              hidden: bool = False) -> dict:  # fmt: skip
    if epochs:
        train = episode_windows(data, 32)
        world.train()
        pf.fit(world, {k: train[k] for k in KEYS}, epochs=epochs, batch_size=16, lr=2e-3,
               seed=seed)  # fmt: skip
    if dynamics:  # M alone on V's codes, World Models' second stage
        world.eval()
        fitted = refit_dynamics(world, data["frames"], data["actions"], data["mask"],
                                epochs=dynamics, seed=seed)  # fmt: skip
        print("M refitted alone:", fitted, flush=True)
    world.eval()
    if done_steps and world.done_head is not None:
        return refit_done_head(world, data["frames"], data["actions"], data["dones"],
                               data["mask"], steps=done_steps, seed=seed,
                               hidden=hidden or None)  # fmt: skip
    return {}


def new_controller(args, world, env_space, data, use_hidden: bool):
    one_sided = [bool(f) for f in args.one_sided] if args.one_sided else None
    c = pf.Controller(args.latent, args.hidden, env_space, use_hidden=use_hidden,
                      one_sided=one_sided)  # fmt: skip
    c.set_flat(torch.zeros(c.num_parameters))
    z, h = episode_inputs(world, data["frames"], data["actions"], data["mask"])
    c.fit_inputs(z, h if use_hidden else None)  # standardised [z, h]
    return c


def sigma(args, c) -> float:
    """CMA-ES's initial step size for ``c`` (see ``--same-start``)."""
    inputs = c.input_loc.numel()
    return args.sigma * (math.sqrt(args.latent / inputs) if args.same_start else 1.0)


def real_agent(args, make, world, c, space, v_only):
    """C trained in the real environment. With ``--staged G``, C on z is checkpointed at
    generation G (a copy kept as ``v_only``) and continued; C on [z, h] starts from that copy
    (:meth:`~pyro_frmdn.Controller.start_from`) for the remaining generations. Returns the
    history, the generations, ``v_only`` and CMA-ES's search mean."""
    fitness = EnvFitness(make, world, c, args.rollouts, args.train_steps)
    kw = dict(popsize=args.popsize, sigma=sigma(args, c), seed=args.seed, workers=args.workers)
    if args.reeval_rollouts:  # the kept candidate judged on more tracks than one rollout
        kw["reevaluate"] = EnvFitness(make, world, c, args.reeval_rollouts, args.train_steps)
    if not args.staged:
        evo = train_controller(c, fitness, args.generations, **kw)
        return evo.history, args.generations, v_only, evo.mean_params
    if not c.use_hidden:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "evolution.pt"
            evo = train_controller(c, fitness, args.staged, checkpoint=path, **kw)
            v_only = copy.deepcopy(c)
            v_only.save(Path(args.out) / f"controller_z_generation{args.staged}.pt")
            evo = train_controller(c, fitness, args.generations, checkpoint=path, **kw)
        return evo.history, args.generations, v_only, evo.mean_params
    if v_only is None:
        raise SystemExit("--staged needs C on z trained first (--generations > 0)")
    c.start_from(v_only)
    evo = train_controller(c, fitness, args.generations - args.staged, **kw)
    history = [{**row, "generation": row["generation"] + args.staged} for row in evo.history]
    return (
        history,
        f"{args.staged} on z + {args.generations - args.staged}",
        v_only,
        evo.mean_params,
    )


def dream_agent(args, make, world, c, initial, seed: int) -> list[dict]:
    """C trained in the dream, its dream-selected best judged in the real world on the way."""
    fitness = DreamFitness(world, c, args.dream_rollouts, args.dream_steps, args.temperature,
                           initial, args.done)  # fmt: skip
    curve = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "evolution.pt"
        for g in range(0, args.dream_generations, args.curve_every):
            last = min(g + args.curve_every, args.dream_generations)
            evo = train_controller(c, fitness, last, popsize=args.popsize, sigma=sigma(args, c),
                                   seed=seed, checkpoint=path, progress=False)  # fmt: skip
            real = evaluate(make, world, c, args.curve_episodes, 20_000 + last, args.max_steps)
            curve.append({**evo.history[-1], "real": real["mean"]})
            print(f"dream generation {last}: dream {evo.best_score:.1f}, real {real['mean']:.1f}",
                  flush=True)  # fmt: skip
    return curve


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    make = env_factory(args.env, args.size, args.stack, not args.whole_width, args.overview)
    probe = make()
    space = probe.action_space
    probe.close()
    t0 = time.perf_counter()
    timings = {}
    data = collect_episodes(make, args.episodes, seed=args.seed, max_steps=args.max_steps)
    random_returns = data["returns"]
    if args.sticky:  # runs of one action, which random play rarely shows M
        sticky = collect_episodes(make, args.sticky, seed=args.seed + 1, max_steps=args.max_steps,
                                  explore=Exploration(1.0, args.hold))  # fmt: skip
        data = join(data, sticky)
    torch.manual_seed(args.seed)
    action_dim = pf.Controller(1, 0, space, use_hidden=False).action_dim
    world = pf.WorldModel(
        (3 * args.stack, args.size, args.size), latent_dim=args.latent, action_dim=action_dim,
        channels=[16, 32], features=64, hidden_dim=args.hidden, prior="rmdn", reward=True,
        done=True, kl_warmup=200, kl_end=args.kl_end,
    )  # fmt: skip
    if args.world:  # V and M (and the done head) as fitted before; M refitted if asked
        world = pf.load(args.world)
        if args.collect_with:  # episodes of a controller, so that M learns what it will meet
            explore = Exploration(args.epsilon, args.explore_hold) if args.epsilon else None
            more = collect_episodes(make, args.collect_episodes, world,
                                    pf.load(args.collect_with), seed=args.seed + 2,
                                    max_steps=args.max_steps, explore=explore)  # fmt: skip
            print(f"collected with {args.collect_with}: return {float(more['returns'].mean()):.1f}")
            data = join(data, more)
        refit = args.sticky or args.done_hidden  # the done head again, on the new episodes
        done_fit = fit_world(world, data, 0, args.seed, args.done_steps if refit else 0,
                             args.dynamics_epochs, args.done_hidden)  # fmt: skip
    else:
        done_fit = fit_world(world, data, args.epochs, args.seed, args.done_steps,
                             args.dynamics_epochs, args.done_hidden)  # fmt: skip
    world.save(out / "world.pt")
    timings["collect and fit V, M"] = time.perf_counter() - t0
    initial = world.encode(data["frames"][:, :1])[:, 0]

    results, curves = {}, {}
    results["random"] = {"mean": float(random_returns.mean()), "sd": float(random_returns.std()),
                         "episodes": args.episodes}  # fmt: skip
    agents = {"C on [z, h] (dream only)": "dream"} if args.dream_generations else {}
    if args.generations:
        agents.update({"C on z (real)": False, "C on [z, h] (real)": True})
    v_only = None  # with --staged: C on z at generation --staged
    if args.v_only:  # C on z given: only C on [z, h] is searched
        agents.pop("C on z (real)", None)
        v_only = pf.load(args.v_only)
    for k in range(1, args.iterations):
        agents[f"C on [z, h] (dream only, iteration {k + 1})"] = k
    dreamer = None  # the last dream-trained C: the iterations collect with it
    for name, spec in agents.items():
        t = time.perf_counter()
        if isinstance(spec, int) and not isinstance(spec, bool):  # collect with C, refit, dream
            explore = Exploration(args.epsilon, args.explore_hold) if args.epsilon else None
            more = collect_episodes(make, args.episodes, world, dreamer, seed=args.seed + spec,
                                    max_steps=args.max_steps, explore=explore)  # fmt: skip
            data = join(data, more)
            world = copy.deepcopy(world)
            done_fit = fit_world(world, data, args.refit_epochs, args.seed + spec, args.done_steps,
                                 args.dynamics_epochs, args.done_hidden)  # fmt: skip
            initial = world.encode(data["frames"][:, :1])[:, 0]
        c = new_controller(args, world, space, data, spec is not False)
        if spec is True or spec is False:
            curves[name], generations, v_only, mean = real_agent(args, make, world, c, space,
                                                                 v_only)  # fmt: skip
        else:
            seed = args.seed + (0 if spec == "dream" else spec)
            curves[name], dreamer = dream_agent(args, make, world, c, initial, seed), c
            generations = args.dream_generations
        slug = {False: "z", True: "zh", "dream": "dream"}.get(spec, f"dream{spec}")
        c.save(out / f"controller_{slug}.pt")
        results[name] = evaluate(make, world, c, args.eval_episodes, 10_000, args.max_steps)
        results[name].update(generations=generations, done_head=done_fit)
        if args.judge_mean and spec in (True, False):  # CMA-ES's mean, beside the kept best
            m = copy.deepcopy(c)
            m.set_flat(mean)
            m.save(out / f"controller_{slug}_mean.pt")
            results[f"{name}, CMA-ES mean"] = evaluate(make, world, m, args.eval_episodes, 10_000,
                                                       args.max_steps)  # fmt: skip
        timings[name] = time.perf_counter() - t
        print(name, results[name], f"{timings[name]:.0f} s", flush=True)
        write(out, args, results, curves, timings)  # after every agent: a stopped run keeps them
    if not results.keys() - {"random"}:  # V and M only: no agent to show
        return
    env = make()
    shown = real_rollout(env, world, dreamer or c, None, 10_000, args.max_steps, record=True)
    env.close()
    save_episode_gif(out / "agent.gif", shown.frames[:, -3:], scale=4)
    print((out / "results.md").read_text())


def write(out: Path, args, results: dict, curves: dict, timings: dict) -> None:
    plot(out / "returns.png", curves, args.env)
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    (out / "results.json").write_text(json.dumps(
        {"results": results, "curves": curves, "timings_s": timings, "args": vars(args),
         "machine": machine}, indent=1))  # fmt: skip
    lines = ["| agent | mean return ± sd (real episodes) | CMA-ES generations |", "|---|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['mean']:.1f} ± {r['sd']:.1f} ({r['episodes']}) | "
                     f"{r.get('generations', '')} |")  # fmt: skip
    (out / "results.md").write_text("\n".join(lines) + "\n")


def plot(path: Path, curves: dict, env: str) -> None:
    """Real return against generation: the real agents' re-evaluated best, and the dream
    agents' best judged on real episodes (and what the dream predicted for it)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, history in curves.items():
        g = [row["generation"] for row in history]
        if history and "real" in history[0]:
            line = ax.plot(g, [row["real"] for row in history], marker="o", label=name)
            ax.plot(g, [row["reevaluated"] for row in history], ls=":",
                    color=line[0].get_color(), label=f"{name}, predicted in the dream")  # fmt: skip
        else:
            ax.plot(g, [row["reevaluated"] for row in history], marker="o", label=name)
    ax.set(xlabel="CMA-ES generation", ylabel="mean return", title=f"{env} from pixels")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
