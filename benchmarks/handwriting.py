"""Handwriting synthesis on simulated writers: held-out NLL per stroke point of the network that
reads the text with an RMDN head and with an FRMDN head (a coupling flow on the offsets),
against a text-blind network of the same layers, over seeds; how often the attention reaches
the last character when writing held-out texts; a figure of samples and attention maps.

Writes ``results.json`` (after every run), ``results.md``, ``samples.png`` and
``attention.png`` into ``--out``.

    python benchmarks/handwriting.py --out benchmarks/results/handwriting
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import pyro
import torch

import pyro_frmdn as pf
from pyro_frmdn.data import handwriting, pad_strokes
from pyro_frmdn.nn import encode_texts
from pyro_frmdn.plots import plot_attention, plot_strokes

VARIANTS = {
    "rmdn": dict(flow_layers=0),
    "frmdn": dict(flow_layers=2, flow_hidden_dims=[32]),
    "text-blind": dict(flow_layers=0, text_blind=True),
    "text-blind, wider": dict(flow_layers=0, text_blind=True),  # hidden_dim: the RMDN's count
}


def data_and_size_arguments(p: argparse.ArgumentParser) -> None:
    """The simulated writers and the network's size (shared with handwriting_longer.py)."""
    a = p.add_argument
    a("--writers", type=int, default=20)
    a("--texts", type=int, default=200)
    a("--texts-per-writer", type=int, default=16)
    a("--hidden", type=int, default=48)
    a("--layers", type=int, default=2)
    a("--components", type=int, default=10)
    a("--window", type=int, default=5)


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--out", default="benchmarks/results/handwriting")
    data_and_size_arguments(p)
    a(
        "--window-step",
        type=float,
        default=None,
        help="the window's pace at the start, characters a point (default: the training data's)",
    )
    a("--epochs", type=int, default=8)
    a("--batch-size", type=int, default=16)
    a("--lr", type=float, default=0.005)
    a("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    a("--save", default=None, help="a folder to save every text-reading model in")
    a("--bias", type=float, default=1.0, help="Graves' bias when writing held-out texts")
    return p.parse_args()


def split(name: str, args) -> tuple[dict, list[str]]:
    d = handwriting(name, args.writers, args.texts, args.texts_per_writer, seed=0, progress=False)
    y, mask = pad_strokes(d.strokes)
    codes, text_mask = encode_texts(d.texts, d.alphabet)
    return {"y": y, "mask": mask, "text": codes, "text_mask": text_mask}, d.texts


def size(alphabet: str, args, variant: str) -> int:
    """hidden_dim: ``--hidden``, or for the wider text-blind model the width whose parameter
    count is nearest the RMDN's (the window's inputs make the text-reading layers larger)."""
    if variant != "text-blind, wider":
        return args.hidden

    def count(variant: str, hidden: int) -> int:
        m = pf.HandwritingSynthesis(
            alphabet, hidden_dim=hidden, num_layers=args.layers, num_components=args.components,
            window_components=args.window, **VARIANTS[variant],
        )  # fmt: skip
        return sum(p.numel() for p in m.parameters())

    target = count("rmdn", args.hidden)
    return min(range(args.hidden, 4 * args.hidden), key=lambda h: abs(count(variant, h) - target))


def end_reached(model, texts: list[str], bias: float) -> float:
    """The share of texts whose writing stopped because the window passed the last character
    (not at the step cap of 40 points per character)."""
    cap = 40 * max(len(t) for t in texts)
    written = model.write(texts, bias=bias, max_steps=cap)
    return sum(len(s) < cap for s in written.strokes) / len(texts)


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (train, _), (val, _), (test, test_texts) = (split(n, args) for n in ("train", "val", "test"))
    alphabet = handwriting("train", args.writers, args.texts, args.texts_per_writer).alphabet
    scale = float(train["y"][train["mask"]][:, :2].std())
    pace = args.window_step or float(train["text_mask"].sum() / train["mask"].sum())
    runs, models = [], {}
    for seed in args.seeds:
        for variant in args.variants:
            pyro.set_rng_seed(seed)
            model = pf.HandwritingSynthesis(
                alphabet, hidden_dim=size(alphabet, args, variant), num_layers=args.layers,
                num_components=args.components, window_components=args.window,
                offset_scale=scale, **VARIANTS[variant],
            )  # fmt: skip
            if not model.text_blind:
                model.pace_window(pace)
            start = time.time()
            history = pf.fit(
                model, train, val, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                seed=seed,
            )  # fmt: skip
            seconds = time.time() - start
            nll = pf.evaluate(model, test)
            run = {
                "variant": variant, "seed": seed, "test_nll_per_point": nll,
                "val_nll": history["val_nll"], "train_nll": history["train_nll"],
                "seconds": seconds, "parameters": sum(p.numel() for p in model.parameters()),
                "hidden_dim": model.config["hidden_dim"],
                "steps_per_epoch": -(-len(train["y"]) // args.batch_size),
            }  # fmt: skip
            if not model.text_blind:  # does it read the text? the NLL with others' texts
                wrong = {**test, "text": test["text"].roll(1, 0)}
                wrong["text_mask"] = test["text_mask"].roll(1, 0)
                run["test_nll_other_texts"] = pf.evaluate(model, wrong)
                pyro.set_rng_seed(seed)
                run["end_reached"] = end_reached(model, test_texts[:40], args.bias)
                if args.save:
                    Path(args.save).mkdir(parents=True, exist_ok=True)
                    model.save(Path(args.save) / f"{variant}-{seed}.pt")
            runs.append(run)
            models[variant, seed] = model
            print(json.dumps({k: v for k, v in run.items() if "_nll" not in k or k[0] == "t"}))
            (out / "results.json").write_text(json.dumps({"args": vars(args), "runs": runs}))
    write_report(out, args, runs)
    best = min((r for r in runs if "end_reached" in r), key=lambda r: r["test_nll_per_point"])
    figures(out, models[best["variant"], best["seed"]], best)


def write_report(out: Path, args, runs: list[dict]) -> None:
    lines = [
        "| variant | hidden | parameters | test NLL per point (nats) | seeds | with other texts "
        "| attention reached the end |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in args.variants:
        rs = [r for r in runs if r["variant"] == variant]
        if not rs:
            continue
        nll = [r["test_nll_per_point"] for r in rs]
        sd = statistics.stdev(nll) if len(nll) > 1 else 0.0
        ends = [r["end_reached"] for r in rs if "end_reached" in r]
        end = f"{100 * statistics.mean(ends):.0f}%" if ends else "-"
        other = [r["test_nll_other_texts"] for r in rs if "test_nll_other_texts" in r]
        other = f"{statistics.mean(other):.4f}" if other else "-"
        lines.append(
            f"| {variant} | {rs[0]['hidden_dim']} | {rs[0]['parameters']:,} | "
            f"{statistics.mean(nll):.4f} ± {sd:.4f} | {len(rs)} | {other} | {end} |"
        )
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    text = "\n".join(lines) + f"\n\nMachine: {machine}, 1 thread.\n"
    (out / "results.md").write_text(text)
    print(text)
    curves(out, args, runs)


def curves(out: Path, args, runs: list[dict]) -> None:
    """Validation NLL per point against optimiser steps, each variant's mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant in args.variants:
        rs = [r for r in runs if r["variant"] == variant]
        if rs:
            mean = [statistics.mean(v) for v in zip(*(r["val_nll"] for r in rs), strict=True)]
            steps = [rs[0]["steps_per_epoch"] * (e + 1) for e in range(len(mean))]
            ax.plot(steps, mean, label=f"{variant} ({len(rs)} seeds)")
    ax.set_xlabel("optimiser steps")
    ax.set_ylabel("validation NLL per point (nats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=120)
    plt.close(fig)


def figures(out: Path, model, run: dict) -> None:
    texts = ["hello world", "Pyro writes", "flows (2024)"]
    strokes, titles = [], []
    for bias in (0.0, 1.0, 2.0):
        pyro.set_rng_seed(0)
        written = model.write(texts, bias=bias, max_steps=40 * 12)
        strokes += written.strokes
        titles += [f"{t!r}, bias {bias:g}" for t in texts]
        if bias == 1.0:
            plot_attention(written.attention[0], texts[0], out / "attention.png")
    plot_strokes(strokes, out / "samples.png", texts=titles)
    print(f"figures of the {run['variant']} model, seed {run['seed']}, in {out}")


if __name__ == "__main__":
    main()
