"""One table of the handwriting runs' held-out NLL per point: every variant at the same number of
optimiser steps, per seed, from the logs of benchmarks/handwriting.py (``results.json``) and
benchmarks/handwriting_longer.py (JSON lines); a figure of the means against steps.

A run logged twice (the same variant, seed and steps, e.g. a stage run again from scratch) is
taken from the first log given; the largest difference between such repeats is printed.

Writes ``comparison.md`` and ``comparison.png`` into ``--out``.

    python benchmarks/handwriting_table.py --out benchmarks/results/handwriting \\
        --logs benchmarks/results/handwriting/{comparison.jsonl,results.json,longer.jsonl}
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from handwriting import VARIANTS, data_and_size_arguments, size

import pyro_frmdn as pf
from pyro_frmdn.data import handwriting

Key = tuple[str, int, int]  # variant, steps, seed


def read_logs(paths: list[str]) -> tuple[dict[Key, float], dict[Key, float]]:
    """Test NLL per point of every (variant, steps, seed), and of the repeats the largest gap
    to the value kept."""
    nll: dict[Key, float] = {}
    gaps: dict[Key, float] = {}
    for path in paths:
        text = Path(path).read_text()
        if path.endswith(".json"):  # benchmarks/handwriting.py: one stage of args.epochs
            log = json.loads(text)
            epochs = log["args"]["epochs"]
            rows = [{**r, "steps": epochs * r["steps_per_epoch"]} for r in log["runs"]]
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        for r in rows:
            key = (r["variant"], r["steps"], r["seed"])
            if key in nll:
                gap = abs(nll[key] - r["test_nll_per_point"])
                gaps[key] = max(gaps.get(key, 0.0), gap)
            else:
                nll[key] = r["test_nll_per_point"]
    return nll, gaps


def parameters(args, variants: list[str]) -> dict[str, tuple[int, int]]:
    """hidden_dim and parameter count of each variant (benchmarks/handwriting.py's sizes)."""
    alphabet = handwriting("train", args.writers, args.texts, args.texts_per_writer).alphabet
    out = {}
    for variant in variants:
        hidden = size(alphabet, args, variant)
        m = pf.HandwritingSynthesis(
            alphabet, hidden_dim=hidden, num_layers=args.layers, num_components=args.components,
            window_components=args.window, **VARIANTS[variant],
        )  # fmt: skip
        out[variant] = hidden, sum(p.numel() for p in m.parameters())
    return out


def table(nll: dict[Key, float], steps: int, variants: list[str], seeds: list[int], sizes) -> str:
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [
        f"| variant | hidden | parameters | {head} | mean ± sd (seeds) | minus rmdn |",
        "|---|---|---|" + "---|" * len(seeds) + "---|---|",
    ]
    base = [nll.get(("rmdn", steps, s)) for s in seeds]
    for variant in variants:
        values = [nll.get((variant, steps, s)) for s in seeds]
        if all(v is None for v in values):
            continue
        cells = " | ".join("-" if v is None else f"{v:.4f}" for v in values)
        done = [v for v in values if v is not None]
        sd = statistics.stdev(done) if len(done) > 1 else float("nan")
        pairs = [v - b for v, b in zip(values, base, strict=True) if None not in (v, b)]
        behind = f"{statistics.mean(pairs):+.3f}" if pairs and variant != "rmdn" else "-"
        hidden, count = sizes[variant]
        lines.append(
            f"| {variant} | {hidden} | {count:,} | {cells} | {statistics.mean(done):.4f} ± "
            f"{sd:.4f} ({len(done)}) | {behind} |"
        )
    return "\n".join(lines)


def figure(nll: dict[Key, float], variants: list[str], seeds: list[int], path: Path) -> None:
    """Mean test NLL per point against steps, each variant; bars: the seeds' range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant in variants:
        steps = sorted({k[1] for k in nll if k[0] == variant})
        full = [t for t in steps if all((variant, t, s) in nll for s in seeds)]
        if not full:
            continue
        values = [[nll[variant, t, s] for s in seeds] for t in full]
        mean = [statistics.mean(v) for v in values]
        low = [m - min(v) for m, v in zip(mean, values, strict=True)]
        high = [max(v) - m for m, v in zip(mean, values, strict=True)]
        ax.errorbar(full, mean, yerr=[low, high], marker="o", capsize=3, label=variant)
    ax.set_xlabel("optimiser steps (batch 32)")
    ax.set_ylabel("test NLL per point (nats)")
    ax.set_title(f"held-out NLL, mean and range of seeds {', '.join(map(str, seeds))}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    a = p.add_argument
    a("--logs", nargs="+", required=True, help="results.json and JSON-lines logs")
    a("--out", default="benchmarks/results/handwriting")
    a("--steps", type=int, nargs="+", default=None, help="default: every count logged")
    a("--seeds", type=int, nargs="+", default=[0, 1, 2])
    data_and_size_arguments(p)
    args = p.parse_args()
    nll, gaps = read_logs(args.logs)
    variants = [v for v in VARIANTS if any(k[0] == v for k in nll)]
    sizes = parameters(args, variants)
    steps = args.steps or sorted({k[1] for k in nll})
    parts = [
        f"### {t} steps\n\n{table(nll, t, variants, args.seeds, sizes)}\n" for t in steps
    ]  # fmt: skip
    note = "".join(
        f"- {v}, seed {s}, {t} steps: a repeat differs by {g:.4f} nats per point\n"
        for (v, t, s), g in sorted(gaps.items())
    )  # fmt: skip
    note = f"Runs logged twice (the first log's value is in the tables):\n\n{note}" if note else ""
    about = (
        "Test NLL per point (nats); minus rmdn: the mean over seeds of the variant's NLL minus "
        "the RMDN's of the same seed (positive: worse).\n\n"
    )
    text = about + "\n".join(parts) + "\n" + note
    out = Path(args.out)
    (out / "comparison.md").write_text(text)
    figure(nll, variants, args.seeds, out / "comparison.png")
    print(text)


if __name__ == "__main__":
    main()
