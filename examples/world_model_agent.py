"""World Models' agent, V-M-C, on CartPole-v1 from pixels, with the package's pieces one by one.

1. Collect random-policy episodes; each frame is rendered, cropped and resized, and the last
   two are one observation, so that it shows velocities (``make_env(..., stack=2)``).
2. Fit V and M jointly: a :class:`pyro_frmdn.WorldModel` (VAE + RMDN dynamics + reward and done
   heads) on windows of the episodes, by SVI (``pyro_frmdn.fit``); then refit M alone on V's
   codes in standard units (``refit_dynamics``) and the done head alone, class-weighted
   (``refit_done_head``): a CartPole dream lasts as long as it allows.
3. Train C (:class:`pyro_frmdn.Controller`, a = tanh(W [z, h] + b)) by CMA-ES entirely inside
   M's dream (``--train-in dream``, at temperature τ) or in the real environment (``env``).
4. Judge C on real episodes, save its GIF and the curve of return against generation.

    python examples/world_model_agent.py --out runs/agent              # minutes on a CPU
    python examples/world_model_agent.py --out runs/agent --train-in env --workers 2

The same loop is the command ``pyro-frmdn agent --config examples/configs/agent_cartpole.toml``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import pyro_frmdn as pf
from pyro_frmdn.data.envs import collect_episodes, env_factory, episode_windows
from pyro_frmdn.infer import DreamFitness, EnvFitness, refit_dynamics, train_controller
from pyro_frmdn.infer.done_head import refit_done_head
from pyro_frmdn.infer.rollouts import episode_inputs
from pyro_frmdn.plots import plot_evolution, save_episode_gif


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--out", default="runs/agent")
    a("--size", type=int, default=32, help="frame side")
    a("--episodes", type=int, default=60, help="random episodes to fit V and M on")
    a("--epochs", type=int, default=40)
    a("--train-in", default="dream", choices=["dream", "env"])
    a("--temperature", type=float, default=1.15, help="the dream's temperature")
    a("--generations", type=int, default=20)
    a("--popsize", type=int, default=16)
    a("--rollouts", type=int, default=8)
    a("--workers", type=int, default=0, help="worker processes for real rollouts")
    a("--eval-episodes", type=int, default=20)
    return p.parse_args()


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    make = env_factory("CartPole-v1", args.size, stack=2)

    data = collect_episodes(make, args.episodes, seed=0)  # 1. random episodes
    print(f"random actions: mean return {float(data['returns'].mean()):.1f}")

    torch.manual_seed(0)  # 2. V and M
    world = pf.WorldModel((6, args.size, args.size), latent_dim=8, action_dim=2,
                          channels=[16, 32], features=64, hidden_dim=32, prior="rmdn",
                          reward=True, done=True, kl_warmup=200)  # fmt: skip
    train = episode_windows(data, 32)
    pf.fit(world, {k: train[k] for k in ("frames", "actions", "mask", "rewards", "dones")},
           epochs=args.epochs, batch_size=16, lr=2e-3)  # fmt: skip
    world.eval()  # then M alone on V's codes, in standard units, and the done head alone
    refit_dynamics(world, data["frames"], data["actions"], data["mask"], epochs=100)
    refit_done_head(world, data["frames"], data["actions"], data["dones"], data["mask"])

    c = pf.Controller(world.latent_dim, 32, num_actions=2)  # 3. C
    c.set_flat(torch.zeros(c.num_parameters))
    c.fit_inputs(*episode_inputs(world, data["frames"], data["actions"], data["mask"]))
    if args.train_in == "dream":
        initial = world.encode(data["frames"][:, :1])[:, 0]  # dreams start from real first frames
        fitness = DreamFitness(
            world, c, args.rollouts, 200, args.temperature, initial, done="expected"
        )  # the expected survival under the done head
    else:
        fitness = EnvFitness(make, world, c, args.rollouts, 500)
    result = train_controller(c, fitness, args.generations, popsize=args.popsize, sigma=0.5,
                              workers=args.workers, checkpoint=out / "evolution.pt")  # fmt: skip
    plot_evolution(result.history).savefig(out / "evolution.png")

    runs = collect_episodes(make, args.eval_episodes, world, c, seed=1000)  # 4. the real world
    r = runs["returns"]
    print(f"C trained in the {args.train_in}: mean return {float(r.mean()):.1f} ± "
          f"{float(r.std()):.1f} over {len(r)} real episodes (solved: 475)")  # fmt: skip
    best = int(r.argmax())
    frames = runs["frames"][best][runs["mask"][best]][:, -3:]  # the newest of the two frames
    save_episode_gif(out / "agent.gif", frames.numpy())
    c.save(out / "controller.pt")
    world.save(out / "world.pt")


if __name__ == "__main__":
    main()
