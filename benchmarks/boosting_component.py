"""What limits one boosting component on the 2-D toys: its conditioner, bins, couplings or steps.

Per toy (seed 0: 4,000 training, 1,000 validation, 2,000 test points, as in
``boosting_toys.py``), one ``pf.BoostedFlow(2, **component)`` grown by
``pf.fit_boosted(model, train, val, num_components=C, **fit)`` with every other default; the
held-out NLL minus the toy's entropy after each of its C components. The variants change one
thing against the previous default component (2 spline couplings, 8 bins, one hidden layer of
64), or against the current one (two hidden layers of 64). Each result is a line of
``component.jsonl`` under ``--out``; ``component.md`` is rebuilt from all of them.

    python benchmarks/boosting_component.py --toys rings checkerboard pinwheel \\
        --variants 1x64 1x64-bins16 1x64-couplings4 1x64-epochs40 1x64-batch64 2x64
    python benchmarks/boosting_component.py --toys rings --variants 2x64 --components 4
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
VARIANTS = {  # name: (BoostedFlow arguments, fit_boosted arguments)
    "1x64": (ONE, {}),
    "1x64-bins16": ({**ONE, "count_bins": 16}, {}),
    "1x64-couplings4": ({**ONE, "flow_layers": 4}, {}),
    "1x64-epochs40": (ONE, {"epochs_per_component": 40}),
    "1x64-batch64": (ONE, {"batch_size": 64}),
    "2x64": (TWO, {}),
    "2x64-bins16": ({**TWO, "count_bins": 16}, {}),
    "2x64-couplings3": ({**TWO, "flow_layers": 3}, {}),
    "2x64-epochs40": (TWO, {"epochs_per_component": 40}),
}


def run(name: str, variant: str, components: int) -> dict:
    train, val = toy2d(name, 4000, seed=0), toy2d(name, 1000, seed=500)
    test, entropy = toy2d(name, 2000, seed=1000), toy2d_entropy(name)
    component, fit = VARIANTS[variant]
    torch.manual_seed(0)
    model = pf.BoostedFlow(2, **component)
    start, gaps = time.perf_counter(), []
    for c in range(1, components + 1):
        pf.fit_boosted(model, train, val, num_components=c, seed=0, progress=False, **fit)
        with torch.no_grad():
            gaps.append(round(-float(model.log_prob(test).mean()) - entropy, 3))
    rho = [round(float(r), 2) for r in model.rho]
    return dict(toy=name, v=variant, gap=gaps, rho=rho, s=round(time.perf_counter() - start, 1))


def report(out: Path) -> None:
    runs = [json.loads(line) for line in (out / "component.jsonl").read_text().splitlines()]
    lines = [
        "# One boosting component on the 2-D toys: what limits it",
        "",
        "Commands in `benchmarks/boosting_component.py`; "
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread (shared "
        "with other jobs, so seconds are only indicative).",
        "",
        "Held-out NLL minus the entropy after C = 1, 2, … components, seed 0, 4,000 training "
        "points. Variants: `1x64` is the previous default component (2 spline couplings, 8 "
        "bins, one hidden layer of 64), `2x64` the current one (two hidden layers); a suffix "
        "changes one thing (bins, couplings, epochs per component, batch size).",
        "",
        "| toy | variant | NLL − H after C = 1, 2, … | ρ | seconds |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['toy']} | {r['v']} | {', '.join(f'{g:.3f}' for g in r['gap'])} | "
        f"{', '.join(f'{x:.2f}' for x in r['rho'])} | {r['s']:.0f} |"
        for r in runs
    ]
    (out / "component.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--toys", nargs="+", choices=list(TOY2D), default=["rings"])
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["2x64"])
    p.add_argument("--components", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "boosting"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    for name in args.toys:
        for variant in args.variants:
            row = run(name, variant, args.components)
            with open(out / "component.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(row, flush=True)
    report(out)


if __name__ == "__main__":
    main()
