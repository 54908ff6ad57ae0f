"""Longer training of one handwriting network of benchmarks/handwriting.py (its data and
sizes): fit in stages of epochs (each stage a new optimiser, as a resumed run), the held-out
NLL per point after each stage, optionally starting from a model that script saved. Appends a
JSON line per stage to ``--log``.

    python benchmarks/handwriting_longer.py --variant "text-blind, wider" --stages 40 40 \\
        --log benchmarks/results/handwriting/longer.jsonl
    python benchmarks/handwriting_longer.py --variant rmdn --model rmdn-0.pt --stages 40 \\
        --log benchmarks/results/handwriting/longer.jsonl --save rmdn-0-80.pt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyro
import torch
from handwriting import VARIANTS, data_and_size_arguments, size, split

import pyro_frmdn as pf
from pyro_frmdn.data import handwriting
from pyro_frmdn.files import read_torch_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--variant", choices=list(VARIANTS), required=True)
    a("--model", default=None, help="start from this saved model (benchmarks/handwriting.py)")
    a("--done-epochs", type=int, default=40, help="epochs the --model has had already")
    a("--stages", type=int, nargs="+", required=True)
    a("--seed", type=int, default=0)
    a("--log", required=True)
    a("--save", default=None)
    # benchmarks/handwriting.py's settings of the runs in results/handwriting
    data_and_size_arguments(p)
    a("--batch-size", type=int, default=32)
    a("--lr", type=float, default=0.005)
    args = p.parse_args()
    torch.set_num_threads(1)
    (train, _), (val, _), (test, _) = (split(n, args) for n in ("train", "val", "test"))
    alphabet = handwriting("train", args.writers, args.texts, args.texts_per_writer).alphabet
    pyro.set_rng_seed(args.seed)
    if args.model:
        payload = read_torch_file(args.model, "a saved model", map_location="cpu")
        payload["config"].pop("window_step", None)  # an initialisation (pace_window since)
        model, done = pf.HandwritingSynthesis.from_payload(payload), args.done_epochs
    else:
        model = pf.HandwritingSynthesis(
            alphabet, hidden_dim=size(alphabet, args, args.variant), num_layers=args.layers,
            num_components=args.components, window_components=args.window,
            offset_scale=float(train["y"][train["mask"]][:, :2].std()), **VARIANTS[args.variant],
        )  # fmt: skip
        if not model.text_blind:
            model.pace_window(float(train["text_mask"].sum() / train["mask"].sum()))
        done = 0
    steps_per_epoch = -(-len(train["y"]) // args.batch_size)
    for epochs in args.stages:
        start = time.time()
        model.train()
        history = pf.fit(
            model, train, val, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
            seed=args.seed + done,
        )  # fmt: skip
        model.eval()
        done += epochs
        row = {
            "variant": args.variant, "seed": args.seed, "epochs": done,
            "steps": done * steps_per_epoch, "lr": args.lr,
            "test_nll_per_point": pf.evaluate(model, test),
            "val_nll": history["val_nll"], "seconds": time.time() - start,
        }  # fmt: skip
        if not model.text_blind:
            wrong = {**test, "text": test["text"].roll(1, 0)}
            wrong["text_mask"] = test["text_mask"].roll(1, 0)
            row["test_nll_other_texts"] = pf.evaluate(model, wrong)
        print(json.dumps(row), flush=True)
        with Path(args.log).open("a") as f:
            f.write(json.dumps(row) + "\n")
        if args.save:
            model.save(args.save)


if __name__ == "__main__":
    main()
