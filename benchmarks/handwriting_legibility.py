"""Does a trained HandwritingSynthesis write the asked text? For held-out texts (none of the
training data's), the share of writings nearer (DTW, :func:`pyro_frmdn.data.legibility.
text_match`) the clean rendering of the asked text than renderings of other texts of the same
length, and the share whose window reached the last character; at several biases. Reference
rows: the simulated test writers' renderings of the same texts (the ceiling), the writings
matched against shuffled texts (chance). Figures of samples and attention maps.

Writes ``legibility.json`` and ``legibility.md`` into ``--out``, the figures into ``--figures``.

    python benchmarks/handwriting_legibility.py --model MODEL.pt --out OUT --figures docs/_static
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyro
import torch

import pyro_frmdn as pf
from pyro_frmdn.data import (
    ALPHABET,
    WriterStyle,
    handwriting,
    pad_strokes,
    random_texts,
    render_text,
)
from pyro_frmdn.data.legibility import text_match
from pyro_frmdn.files import read_torch_file
from pyro_frmdn.nn import encode_texts
from pyro_frmdn.plots import plot_strokes

SENTENCES = ["hello world", "Pyro writes", "a b c d e"]


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--model", required=True, help="a HandwritingSynthesis saved by benchmarks/handwriting.py")
    a("--out", default="benchmarks/results/handwriting")
    a("--figures", default=None, help="where the figures go (default: --out)")
    a("--texts", type=int, default=200, help="held-out texts to write")
    a("--data-texts", type=int, default=200, help="handwriting(num_texts=): the texts to avoid")
    a("--num-others", type=int, default=4)
    a("--biases", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    a("--steps-per-character", type=int, default=40, help="the cap of write()")
    a("--seed", type=int, default=0)
    a("--no-figures", action="store_true")
    a(
        "--train-more",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="first train the model this many more epochs on benchmarks/handwriting.py's data "
        "(its defaults, batch 32, lr 0.005) and save it as --save",
    )
    a("--save", default=None, help="where the further trained model goes")
    return p.parse_args()


def load(path: str) -> pf.HandwritingSynthesis:
    """The model; a config key of the first run of this round (``window_step``: an
    initialisation, set by ``pace_window`` since) is dropped."""
    payload = read_torch_file(path, "a saved model", map_location="cpu")
    payload["config"].pop("window_step", None)
    return pf.HandwritingSynthesis.from_payload(payload).eval()


def train_more(model, args) -> None:
    """More epochs of ``fit`` on the benchmark's data (20 writers, 200 texts, 16 a writer)."""
    data = {}
    for name in ("train", "val"):
        d = handwriting(name, 20, args.data_texts, 16, seed=0, progress=False)
        y, mask = pad_strokes(d.strokes)
        codes, text_mask = encode_texts(d.texts, d.alphabet)
        data[name] = {"y": y, "mask": mask, "text": codes, "text_mask": text_mask}
    model.train()
    history = pf.fit(
        model, data["train"], data["val"], epochs=args.train_more, batch_size=32, lr=0.005,
        seed=args.seed,
    )  # fmt: skip
    model.eval()
    print(json.dumps({"val_nll": history["val_nll"]}), flush=True)
    if args.save:
        model.save(args.save)


def held_out(args) -> tuple[list[str], list[str]]:
    """``--texts`` texts none of the data's, each with >= num_others others of its length in
    the pool (a larger draw of held-out texts)."""
    seen = set(random_texts(args.data_texts, seed=0, alphabet=ALPHABET))
    pool = [t for t in random_texts(6 * args.texts, seed=12345, alphabet=ALPHABET) if t not in seen]
    lengths = {}
    for t in pool:
        lengths[len(t)] = lengths.get(len(t), 0) + 1
    texts = [t for t in pool if lengths[len(t)] > args.num_others][: args.texts]
    if len(texts) < args.texts:
        raise SystemExit(f"only {len(texts)} held-out texts have enough others of their length")
    return texts, pool


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    out, figures = Path(args.out), Path(args.figures or args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    model = load(args.model)
    if args.train_more:
        train_more(model, args)
    texts, pool = held_out(args)
    cap = args.steps_per_character * max(map(len, texts))
    rows = []
    styled = [
        render_text(t, style=WriterStyle.sample(900 + i), seed=i) for i, t in enumerate(texts)
    ]
    match = text_match(styled, texts, pool, args.num_others, seed=args.seed)
    rows.append({"writer": "simulated writers (ceiling)", "match": float(match.float().mean())})
    for bias in args.biases:
        pyro.set_rng_seed(args.seed)
        start = time.time()
        written = model.write(texts, bias=bias, max_steps=cap)
        match = text_match(written.strokes, texts, pool, args.num_others, seed=args.seed)
        shuffled = texts[1:] + texts[:1]
        same = [a for a, b in zip(texts, shuffled, strict=True) if len(a) == len(b)]
        chance = text_match(written.strokes, shuffled, pool, args.num_others, seed=args.seed)
        row = {
            "writer": f"model, bias {bias:g}", "bias": bias,
            "match": float(match.float().mean()),
            "match_other_texts": float(chance.float().mean()),
            "end_reached": sum(len(s) < cap for s in written.strokes) / len(texts),
            "seconds": time.time() - start, "same_length_shuffled": len(same),
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"args": vars(args), "texts": texts, "chance": 1 / (1 + args.num_others), "rows": rows}
    (out / "legibility.json").write_text(json.dumps(result, indent=1))
    report(out, args, result)
    if not args.no_figures:
        draw(figures, model, args)


def report(out: Path, args, result: dict) -> None:
    lines = [
        f"{args.texts} held-out texts, each against {args.num_others} others of its length "
        f"(chance {result['chance']:.0%}); model {args.model}",
        "",
        "| writer | nearer its own text | scored against another text | window reached the end |",
        "|---|---|---|---|",
    ]
    for r in result["rows"]:
        other = f"{r['match_other_texts']:.1%}" if "match_other_texts" in r else "-"
        end = f"{r['end_reached']:.1%}" if "end_reached" in r else "-"
        lines.append(f"| {r['writer']} | {r['match']:.1%} | {other} | {end} |")
    text = "\n".join(lines) + "\n"
    (out / "legibility.md").write_text(text)
    print(text)


def draw(figures: Path, model, args) -> None:
    """Samples of SENTENCES at each bias, and their attention maps at the middle bias."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strokes, titles, attention = [], [], None
    for bias in args.biases:
        pyro.set_rng_seed(args.seed)
        written = model.write(SENTENCES, bias=bias, max_steps=args.steps_per_character * 12)
        strokes += written.strokes
        titles += [f"{t!r}, bias {bias:g}" for t in SENTENCES]
        if attention is None or bias == args.biases[len(args.biases) // 2]:
            attention = written.attention
    plot_strokes(strokes, figures / "handwriting_samples.png", texts=titles)
    fig, axes = plt.subplots(len(SENTENCES), 1, figsize=(7, 1.6 * len(SENTENCES)))
    for ax, phi, text in zip(axes, attention, SENTENCES, strict=True):
        ax.imshow(phi.T.numpy(), aspect="auto", interpolation="nearest", cmap="viridis")
        ax.set_yticks(range(len(text)), [c if c != " " else "␣" for c in text], fontsize=7)
        ax.set_title(f"attention φ(t, u) writing {text!r}", fontsize=9, loc="left")
    axes[-1].set_xlabel("time step t")
    fig.tight_layout()
    fig.savefig(figures / "handwriting_attention.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
