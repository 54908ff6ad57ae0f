"""The default boosting component on real data: one against two hidden layers, digits and vowels.

A check that the component chosen on the 2-D toys (``pf.models.DEFAULT_COMPONENT``: conditioners
of two hidden layers of 64) still trains on the package's real data sets, against the previous
default (one hidden layer of 64): ``pf.BoostedFlow(D, hidden_dims=...)`` grown by
``pf.fit_boosted(model, train, val, num_components=C)`` with every other default, test NLL in the
units of ``benchmarks/boosting.py`` (digits: bits/dim of the pixels; vowels: nats per frame of
the standardised frames). Writes ``real_defaults.md`` and ``real_defaults.json`` under ``--out``.

    python benchmarks/boosting_real_defaults.py                 # C = 1, seed 0, one digit copy

(``real_defaults.md`` was measured with 20 epochs per component, the default then, which
``--epochs`` keeps; ``--epochs 0`` uses ``fit_boosted``'s default length now, 5,000 steps.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from boosting import digits_data, vowels_data

import pyro_frmdn as pf
from pyro_frmdn.experiments import cpu_name

WIDTHS = {"one hidden layer (previous)": [64], "two hidden layers (default)": [64, 64]}


def run(task: str, hidden: list[int], args) -> dict:
    data, score = (
        digits_data(args.seed, args.copies) if task == "digits" else vowels_data(args.seed)
    )
    torch.manual_seed(args.seed)
    model = pf.BoostedFlow(data["train"].shape[-1], hidden_dims=hidden)
    start = time.perf_counter()
    epochs = {} if args.epochs == 0 else {"epochs_per_component": args.epochs}
    history = pf.fit_boosted(
        model, data["train"], data["val"], num_components=args.components, seed=args.seed,
        progress=False, **epochs,
    )  # fmt: skip
    with torch.no_grad():
        test = score("test", model.log_prob(data["test"]))
    return dict(
        task=task, hidden_dims=hidden, test=test, val_nll=history["val_nll"][-1],
        rho=[float(r) for r in model.rho], minutes=(time.perf_counter() - start) / 60,
    )  # fmt: skip


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--components", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--copies", type=int, default=1, help="dequantised copies of the digits")
    p.add_argument(
        "--epochs", type=int, default=20,
        help="epochs per component (real_defaults.md: 20, the default then); 0: the default now",
    )  # fmt: skip
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "boosting"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    pyro.enable_validation(False)
    rows = []
    for task in ("vowels", "digits"):
        for label, hidden in WIDTHS.items():
            rows.append({"component": label, **run(task, hidden, args)})
            print(rows[-1], flush=True)
    machine = f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread"
    command = (
        f"python benchmarks/boosting_real_defaults.py --components {args.components} "
        f"--seed {args.seed} --copies {args.copies} --epochs {args.epochs}"
    )
    fixed = "" if args.epochs == 0 else f", epochs_per_component={args.epochs}"
    lines = [
        "# The default boosting component on digits and vowels",
        "",
        f"`{command}`: {machine}.",
        "",
        f"`pf.BoostedFlow(D, hidden_dims=...)`, `pf.fit_boosted(model, train, val, "
        f"num_components={args.components}{fixed})` with the other defaults, seed {args.seed}; "
        "test NLL (digits: bits/dim; vowels: nats/frame), lower is better.",
        "",
        "| data | component | test | minutes |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['task']} | {r['component']} | {r['test']:.4f} | {r['minutes']:.1f} |" for r in rows
    ]
    out = Path(args.out)
    (out / "real_defaults.md").write_text("\n".join(lines) + "\n")
    (out / "real_defaults.json").write_text(
        json.dumps({"command": command, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
