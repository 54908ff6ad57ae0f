"""Can M, fitted alone on V's codes, tell what an action does? Raw codes against standard units.

Loads a world model (``--world``, e.g. the ``world.pt`` that ``benchmarks/agent.py`` writes),
encodes random-policy CartPole-v1 episodes from pixels (V's guide means), and fits two RMDNs of
M's size on the codes with the actions as inputs, one on the raw codes and one on the codes in
standard units (``FRMDN.set_standardization``, as ``pyro_frmdn.infer.refit_dynamics`` does).
On held-out episodes it reports, per step, the log-density of the codes (in the codes' units)
and how much more density the actions taken give than the other action (a model that ignores
actions scores 0). Writes ``dynamics.json`` into ``--out``.

    python benchmarks/agent_dynamics.py --world benchmarks/results/agent_cartpole/world.pt \\
        --out benchmarks/results/agent_cartpole
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import pyro_frmdn as pf
from pyro_frmdn.data.envs import collect_episodes, env_factory
from pyro_frmdn.models import shift_actions


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--world", required=True)
    a("--out", required=True)
    a("--size", type=int, default=32)
    a("--stack", type=int, default=2)
    a("--episodes", type=int, default=100)
    a("--held-out", type=int, default=40)
    a("--epochs", type=int, default=300)
    a("--seed", type=int, default=0)
    return p.parse_args()


def scores(m, z: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Mean log-density per step after the first, and its gain over the other action."""
    keep = mask[:, 1:]
    with torch.no_grad():
        right = m.step_log_prob(z, x, mask)[:, 1:][keep]
        other = m.step_log_prob(z, 1 - x, mask)[:, 1:][keep]
    return float(right.mean()), float((right - other).mean())


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    world = pf.load(args.world).eval()
    make = env_factory("CartPole-v1", args.size, args.stack)
    data = {
        "train": collect_episodes(make, args.episodes, seed=args.seed, progress=False),
        "test": collect_episodes(make, args.held_out, seed=args.seed + 9, progress=False),
    }
    codes, inputs = {}, {}
    with torch.no_grad():
        for k, d in data.items():
            codes[k] = world.encode(d["frames"], d["mask"])
            inputs[k] = shift_actions(d["actions"].to(codes[k].dtype))
    rows = codes["train"][data["train"]["mask"]]
    results = {"code mean": rows.mean(0).tolist(), "code sd": rows.std(0).tolist()}
    size = world.prior.rnn.hidden_size
    for name in ("raw codes", "standard units"):
        torch.manual_seed(args.seed)
        m = pf.RMDN(world.latent_dim, input_dim=world.action_dim, hidden_dim=size,
                    num_components=5)  # fmt: skip
        if name == "standard units":
            m.set_standardization(rows.mean(0), rows.std(0).clamp_min(1e-8))
        t0 = time.perf_counter()
        pf.fit(m, {"y": codes["train"], "x": inputs["train"], "mask": data["train"]["mask"]},
               epochs=args.epochs, lr=3e-3, seed=args.seed, progress=False)  # fmt: skip
        log_p, gain = scores(m, codes["test"], inputs["test"], data["test"]["mask"])
        results[name] = {"held-out log p per step": log_p, "over the other action": gain,
                         "fit s": time.perf_counter() - t0}  # fmt: skip
        print(name, results[name], flush=True)
    results["args"] = vars(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dynamics.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
