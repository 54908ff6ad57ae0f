"""Why a dream-trained CartPole controller fails: probes of V, M's done and reward heads, and
dreams of simple policies against the real world.

Collects random-policy CartPole-v1 episodes from pixels with the true state
(``env.unwrapped.state``) beside every frame, fits (or loads) a world model as
``benchmarks/agent.py`` does, and reports as JSON:

- how much of the state (x, x', theta, theta') a ridge regression recovers (R^2 on held-out
  episodes) from the frame's pixels, from V's code z, and from [z, h] with M's state h;
- the done head on held-out episodes: its mean probability at the last step and elsewhere, the
  ranking of last steps above the others (AUC), and its sum over an episode (1 when calibrated);
- the reward head's predictions (CartPole pays 1 a step);
- the length of dreams under constant and random actions against real episodes of the same
  policies (a dream C can learn from must tell them apart).

    python benchmarks/agent_diagnostics.py --out /tmp/diag --size 32 --crop 160 320 --stack 2

(``--columns 0`` for the frames before the window followed the cart.)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import pyro_frmdn as pf
from pyro_frmdn.data.envs import FrameEnv, cartpole_cart, episode_windows
from pyro_frmdn.distributions import temper
from pyro_frmdn.infer.done_head import refit_done_head
from pyro_frmdn.infer.rollouts import episode_inputs, hidden_state

STATE = ("x", "x_velocity", "theta", "theta_velocity")


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--out", required=True)
    a("--size", type=int, default=32)
    a("--crop", type=int, nargs=2, default=[160, 320])
    a("--columns", type=int, default=160, help="a window following the cart (0: the whole width)")
    a("--stack", type=int, default=1, help="frames stacked as channels (velocity visible)")
    a("--overview", type=int, default=0, help="top rows showing the whole track (with a window)")
    a("--episodes", type=int, default=80)
    a("--held-out", type=int, default=20)
    a("--epochs", type=int, default=20)
    a("--latent", type=int, default=8)
    a("--hidden", type=int, default=32)
    a("--world", default=None, help="a world.pt to load instead of fitting one")
    a("--done-hidden", action="store_true", help="refit the done head on [z, a, h]")
    a("--seed", type=int, default=0)
    return p.parse_args()


def make(args):
    import gymnasium

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gymnasium.make("CartPole-v1", render_mode="rgb_array")
    follow = dict(columns=args.columns, locate=cartpole_cart) if args.columns else {}
    return FrameEnv(env, args.size, tuple(args.crop), stack=args.stack, overview=args.overview,
                    **follow)  # fmt: skip


def collect(env, episodes: int, seed: int, policy: str = "random") -> dict:
    """Padded episodes as collect_episodes returns them, with ``states`` (N, T, 4)."""
    runs, rng = [], np.random.default_rng(seed)
    for i in range(episodes):
        frame, _ = env.reset(seed=seed * 1000 + i)
        keep = {k: [] for k in ("frames", "actions", "states", "dones")}
        for _ in range(500):
            action = int(rng.integers(2)) if policy == "random" else int(policy)
            keep["frames"].append(frame)
            keep["states"].append(np.array(env.env.unwrapped.state, dtype=np.float32))
            keep["actions"].append(np.eye(2, dtype=np.float32)[action])
            frame, _, terminated, truncated, _ = env.step(action)
            keep["dones"].append(terminated or truncated)
            if terminated or truncated:
                break
        runs.append({k: np.stack(v) for k, v in keep.items()})
    t = max(len(r["dones"]) for r in runs)
    out = {}
    for k in runs[0]:
        x = np.zeros((episodes, t, *runs[0][k].shape[1:]), dtype=runs[0][k].dtype)
        for n, r in enumerate(runs):
            x[n, : len(r[k])] = r[k]
        out[k] = torch.from_numpy(x)
    steps = torch.tensor([len(r["dones"]) for r in runs])
    out["mask"] = torch.arange(t)[None] < steps[:, None]
    out["rewards"] = out["mask"].float()
    out["steps"] = steps.float()
    return out


def named(values: list[float]) -> dict:
    return dict(zip(STATE, values, strict=True))


def r2(train_x, train_y, test_x, test_y, ridge: float = 1e-3) -> list[float]:
    """R^2 per target column of a ridge regression fitted on train, scored on test."""
    train_x, test_x = train_x.double(), test_x.double()
    loc, scale = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    a = torch.cat([(train_x - loc) / scale, torch.ones(len(train_x), 1, dtype=torch.float64)], 1)
    b = torch.cat([(test_x - loc) / scale, torch.ones(len(test_x), 1, dtype=torch.float64)], 1)
    lam, y = ridge * len(a), train_y.double()
    if a.shape[1] <= len(a):
        w = torch.linalg.solve(a.T @ a + lam * torch.eye(a.shape[1], dtype=a.dtype), a.T @ y)
    else:  # more features than rows (pixels): the dual form
        w = a.T @ torch.linalg.solve(a @ a.T + lam * torch.eye(len(a), dtype=a.dtype), y)
    resid = ((b @ w - test_y.double()) ** 2).sum(0)
    total = ((test_y.double() - test_y.double().mean(0)) ** 2).sum(0)
    return [round(float(v), 3) for v in 1 - resid / total]


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    pos, neg = scores[labels], scores[~labels]
    return float(
        (pos[:, None] > neg[None]).double().mean()
        + 0.5 * (pos[:, None] == neg[None]).double().mean()
    )


@torch.no_grad()
def dream_lengths(world, initial, policy: str, n: int, steps: int, tau: float, seed: int) -> dict:
    """Steps until the first sampled done, and the expected steps under the done hazard."""
    torch.manual_seed(seed)
    m, b = world.prior, n
    state = m.initial_state(b)
    feats = torch.zeros(b, 2)
    d, state = m.step(state, None, feats)
    z = initial[torch.randint(len(initial), (b,))]
    alive, survive = torch.ones(b, dtype=torch.bool), torch.ones(b)
    length, expected = torch.full((b,), float(steps)), torch.zeros(b)
    for t in range(steps):
        a = torch.randint(2, (b,)) if policy == "random" else torch.full((b,), int(policy))
        feats = torch.nn.functional.one_hot(a, 2).float()
        hidden = hidden_state(state)[:, None] if world.done_hidden else None  # M's h_t
        p = world.head_distributions(z[:, None], feats[:, None], None, hidden)
        p = p["done"].base_dist.probs[:, 0]
        expected += survive
        survive = survive * (1 - p)
        done = torch.rand(b) < p
        length = torch.where(alive & done, torch.tensor(float(t + 1)), length)
        alive &= ~done
        d, state = m.step(state, z, feats)
        z = temper(d, tau, tau).sample()
    return {"sampled": round(float(length.mean()), 1), "expected": round(float(expected.mean()), 1)}


@torch.no_grad()
def heads_and_dreams(report, prefix, world, tz, th, test, initial, held_out) -> None:
    tkeep = test["mask"]
    hidden = th[:, None] if world.done_hidden else None  # a done head on [z, a, h]
    heads = world.head_distributions(tz[:, None], test["actions"][tkeep][:, None], None, hidden)
    p = heads["done"].base_dist.probs[:, 0]
    last = test["dones"][tkeep]
    episode = torch.arange(held_out)[:, None].expand_as(tkeep)[tkeep]
    per_episode = torch.zeros(held_out).index_add_(0, episode, p)
    report[prefix + "done head"] = {
        "mean p at the last step": round(float(p[last].mean()), 3),
        "mean p elsewhere": round(float(p[~last].mean()), 3),
        "AUC last vs others": round(auc(p, last), 3),
        "sum of p per episode (1 if calibrated)": round(float(per_episode.mean()), 2),
        "base rate": round(float(last.float().mean()), 3),
    }
    reward = heads["reward"].base_dist.mean[:, 0]
    report[prefix + "reward head"] = {"mean": round(float(reward.mean()), 3),
                                      "sd": round(float(reward.std()), 4)}  # fmt: skip
    for tau in (1.0, 1.15):
        for policy in ("random", "0", "1"):
            report[f"{prefix}dream steps tau={tau} {policy}"] = dream_lengths(
                world, initial, policy, 256, 200, tau, 0
            )


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = make(args)
    t0 = time.perf_counter()
    data = collect(env, args.episodes, args.seed)
    test = collect(env, args.held_out, args.seed + 1)
    report = {"args": vars(args), "real random steps": float(data["steps"].mean())}
    for policy in ("0", "1"):
        report[f"real steps, always {policy}"] = float(collect(env, 20, 7, policy)["steps"].mean())
    channels = 3 * args.stack
    keep, tkeep = data["mask"], test["mask"]
    pixels = lambda d, k: d["frames"][k].reshape(int(k.sum()), -1).float()  # noqa: E731
    train_pixels, test_pixels = pixels(data, keep), pixels(test, tkeep)
    report["R2 pixels -> state"] = named(
        r2(train_pixels, data["states"][keep], test_pixels, test["states"][tkeep], ridge=1.0)
    )
    torch.manual_seed(args.seed)
    world = pf.WorldModel(
        (channels, args.size, args.size), latent_dim=args.latent, action_dim=2,
        channels=[16, 32], features=64, hidden_dim=args.hidden, prior="rmdn", reward=True,
        done=True, kl_warmup=200,
    )  # fmt: skip
    if args.world:  # a world model saved by world.save (benchmarks/agent.py writes world.pt)
        world = pf.load(args.world)
    else:
        train = episode_windows(data, 32)
        keys = ("frames", "actions", "mask", "rewards", "dones")
        pf.fit(world, {k: train[k] for k in keys}, epochs=args.epochs, batch_size=16, lr=2e-3,
               seed=args.seed)  # fmt: skip
        world.save(out / "world.pt")
    world.eval()
    report["fit s"] = round(time.perf_counter() - t0)
    z, h = episode_inputs(world, data["frames"], data["actions"], data["mask"])
    tz, th = episode_inputs(world, test["frames"], test["actions"], test["mask"])
    report["R2 z -> state"] = named(r2(z, data["states"][keep], tz, test["states"][tkeep]))
    zh, tzh = torch.cat([z, h], 1), torch.cat([tz, th], 1)
    report["R2 [z, h] -> state"] = named(r2(zh, data["states"][keep], tzh, test["states"][tkeep]))
    initial = world.encode(data["frames"][:, :1])[:, 0]
    heads_and_dreams(report, "", world, tz, th, test, initial, args.held_out)
    report["refit"] = refit_done_head(world, data["frames"], data["actions"], data["dones"],
                                      data["mask"], hidden=args.done_hidden or None,
                                      progress=False)  # fmt: skip
    heads_and_dreams(report, "after refit, ", world, tz, th, test, initial, args.held_out)
    text = json.dumps(report, indent=1)
    (out / "diagnostics.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
