"""What limits one boosting component on the 2-D toys: its conditioner, bins, couplings or steps.

Per toy (``--seed``, default 0: 4,000 training, 1,000 validation, 2,000 test points, as in
``boosting_toys.py``), one ``pf.BoostedFlow(2, **component)`` grown by
``pf.fit_boosted(model, train, val, num_components=C, **fit)`` with every other default; the
held-out NLL minus the toy's entropy after each of its C components. The variants change one
thing against the previous default component (2 spline couplings, 8 bins, one hidden layer of
64), or against the current one (two hidden layers of 64), all at the training length of the
second round (20 epochs of 4,000 points: 640 steps, lr 5e-3) unless the name says otherwise
(``epochs80``: 2,560 steps; ``epochs160``: 5,120 steps, about the default now; ``epochs320``:
10,240 steps; ``lr1e-2``: the initial learning rate). Each result is a line of
``component.jsonl`` under ``--out``; ``component.md`` is rebuilt from all of them.

    python benchmarks/boosting_component.py --toys rings checkerboard pinwheel \\
        --variants 1x64 1x64-bins16 1x64-couplings4 1x64-epochs40 1x64-batch64 2x64
    python benchmarks/boosting_component.py --toys rings --variants 2x64 --components 4
    python benchmarks/boosting_component.py --toys rings --variants 2x64-epochs80 \\
        2x64-epochs40-lr1e-2 2x64-epochs160 2x64-epochs80-lr1e-2 2x64-epochs40-lr2e-2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import pyro_frmdn as pf
from pyro_frmdn.data import TOY2D, toy2d, toy2d_entropy
from pyro_frmdn.experiments import cpu_name

ONE, TWO = dict(hidden_dims=[64]), dict(hidden_dims=[64, 64])
E20 = {"epochs_per_component": 20}  # the training length these variants were measured with
VARIANTS = {  # name: (BoostedFlow arguments, fit_boosted arguments)
    "1x64": (ONE, E20),
    "1x64-bins16": ({**ONE, "count_bins": 16}, E20),
    "1x64-couplings4": ({**ONE, "flow_layers": 4}, E20),
    "1x64-epochs40": (ONE, {"epochs_per_component": 40}),
    "1x64-batch64": (ONE, {**E20, "batch_size": 64}),
    "2x64": (TWO, E20),
    "2x64-bins16": ({**TWO, "count_bins": 16}, E20),
    "2x64-couplings3": ({**TWO, "flow_layers": 3}, E20),
    "2x64-epochs40": (TWO, {"epochs_per_component": 40}),
    "2x64-epochs80": (TWO, {"epochs_per_component": 80}),
    "2x64-epochs160": (TWO, {"epochs_per_component": 160}),
    "2x64-epochs320": (TWO, {"epochs_per_component": 320}),
    "2x64-epochs40-lr1e-2": (TWO, {"epochs_per_component": 40, "lr": 1e-2}),
    "2x64-epochs80-lr1e-2": (TWO, {"epochs_per_component": 80, "lr": 1e-2}),
    "2x64-epochs40-lr2e-2": (TWO, {"epochs_per_component": 40, "lr": 2e-2}),
}


def run(name: str, variant: str, components: int, seed: int = 0) -> dict:
    train, val = toy2d(name, 4000, seed=seed), toy2d(name, 1000, seed=500 + seed)
    test, entropy = toy2d(name, 2000, seed=1000 + seed), toy2d_entropy(name)
    component, fit = VARIANTS[variant]
    torch.manual_seed(seed)
    model = pf.BoostedFlow(2, **component)
    start, gaps = time.perf_counter(), []
    for c in range(1, components + 1):
        pf.fit_boosted(model, train, val, num_components=c, seed=seed, progress=False, **fit)
        with torch.no_grad():
            gaps.append(round(-float(model.log_prob(test).mean()) - entropy, 3))
    rho = [round(float(r), 2) for r in model.rho]
    seconds = round(time.perf_counter() - start, 1)
    return dict(toy=name, v=variant, seed=seed, gap=gaps, rho=rho, s=seconds)


def report(out: Path) -> None:
    runs = [json.loads(line) for line in (out / "component.jsonl").read_text().splitlines()]
    lines = [
        "# One boosting component on the 2-D toys: what limits it",
        "",
        "Commands in `benchmarks/boosting_component.py`; "
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread (shared "
        "with other jobs, so seconds are only indicative).",
        "",
        "Held-out NLL minus the entropy after C = 1, 2, … components, 4,000 training "
        "points. Variants: `1x64` is the previous default component (2 spline couplings, 8 "
        "bins, one hidden layer of 64), `2x64` the current one (two hidden layers); a suffix "
        "changes one thing (bins, couplings, epochs per component, batch size, initial "
        "learning rate) against 20 epochs (640 steps) at lr 5e-3.",
        "",
        "| toy | variant | seed | NLL − H after C = 1, 2, … | ρ | seconds |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['toy']} | {r['v']} | {r.get('seed', 0)} | "
        f"{', '.join(f'{g:.3f}' for g in r['gap'])} | "
        f"{', '.join(f'{x:.2f}' for x in r['rho'])} | {r['s']:.0f} |"
        for r in runs
    ]
    (out / "component.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--toys", nargs="+", choices=list(TOY2D), default=["rings"])
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["2x64"])
    p.add_argument("--components", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="the toy's samples and the initialisation")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "boosting"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    for name in args.toys:
        for variant in args.variants:
            row = run(name, variant, args.components, args.seed)
            with open(out / "component.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(row, flush=True)
    report(out)


if __name__ == "__main__":
    main()
