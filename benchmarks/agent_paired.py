"""Saved controllers judged on the same real episodes, and their returns compared pair by pair.

Every controller meets the same ``--episodes`` episodes (episode i seeded by ``(--seed, i)``,
as ``benchmarks/agent.py`` evaluates), so the difference of two controllers' returns on each
episode removes the tracks' own spread. Prints each controller's mean ± sd, then for each pair
the mean difference, its standard error and how many episodes the first won; writes
``paired.json`` into ``--out``.

    python benchmarks/agent_paired.py --env CarRacing-v3 --size 32 --stack 1 --max-steps 300 \
        --world benchmarks/results/agent_carracing/steps300/world.pt \
        --out benchmarks/results/agent_carracing/staged \
        benchmarks/results/agent_carracing/staged/run4_controller_zh.pt \
        benchmarks/results/agent_carracing/staged/run4_controller_z.pt \
        benchmarks/results/agent_carracing/staged/run4_controller_z_generation20.pt

``--results`` adds the controllers of ``agent.py``'s ``results.json`` files (each episode's
return is kept there) without running them again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import torch

import pyro_frmdn as pf
from pyro_frmdn.data.envs import collect_episodes, env_factory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("controllers", nargs="*", help="controller .pt files (pf.load)")
    p.add_argument("--results", nargs="+", default=[],
                   help="agent.py results.json files: their controllers' returns on the same "
                   "episodes, taken as they are (no rerun)")  # fmt: skip
    p.add_argument("--world", help="the world.pt (V and M) the controllers read")
    p.add_argument("--env", default="CarRacing-v3", choices=["CartPole-v1", "CarRacing-v3"])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--stack", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=10_000, help="agent.py's evaluation seed")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.controllers and not args.world:
        p.error("--world is needed to run controllers")
    if not args.controllers and not args.results:
        p.error("give controllers to run, or --results")
    returns = {}
    for path in args.results:  # agent.py judges every controller on episodes seeded 10_000
        for name, r in json.loads(Path(path).read_text())["results"].items():
            if "returns" in r and len(r["returns"]) == args.episodes:
                name = name if name not in returns else f"{name} [{path}]"  # two files alike
                returns[name] = x = torch.tensor(r["returns"], dtype=torch.float64)
                print(f"{name}: {float(x.mean()):.1f} ± {float(x.std()):.1f}", flush=True)
    if args.controllers:
        make = env_factory(args.env, args.size, args.stack)
        world = pf.load(args.world).eval()
    for path in args.controllers:
        runs = collect_episodes(make, args.episodes, world, pf.load(path), seed=args.seed,
                                max_steps=args.max_steps, progress=False)  # fmt: skip
        returns[Path(path).stem] = r = runs["returns"].double()
        print(f"{Path(path).stem}: {float(r.mean()):.1f} ± {float(r.std()):.1f}", flush=True)
    pairs = {}
    for a, b in itertools.combinations(returns, 2):
        d = returns[a] - returns[b]
        pairs[f"{a} - {b}"] = row = {
            "mean": round(float(d.mean()), 1),
            "se": round(float(d.std()) / math.sqrt(len(d)), 1),
            "wins": int((d > 0).sum()),
            "episodes": len(d),
        }
        print(f"{a} - {b}: {row['mean']} ± {row['se']} (se), {row['wins']} of {len(d)} won")
    out = {"args": vars(args), "returns": {k: v.tolist() for k, v in returns.items()},
           "pairs": pairs}  # fmt: skip
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "paired.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
