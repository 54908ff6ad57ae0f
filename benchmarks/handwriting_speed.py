"""Seconds per training step (forward and backward of the NLL of a minibatch of simulated
handwriting) of HandwritingSynthesis: the first layer and window stepped by autograd (the
network before ``window_lstm``: ``nn.LSTMCell`` and ``AttentionWindow`` a step at a time)
against ``window_lstm`` (its written-out backward), and the text-blind network (cuDNN/oneDNN
LSTMs over whole sequences), at several batch sizes; the two text-reading ways' NLL and
gradients compared. Interleaved repeats, the median reported.

    python benchmarks/handwriting_speed.py --out benchmarks/results/handwriting
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import pyro_frmdn as pf
from pyro_frmdn.data import handwriting, pad_strokes
from pyro_frmdn.models.handwriting import State
from pyro_frmdn.nn import encode_texts


def stepped_run(model, x, text, text_mask, state):
    """``HandwritingSynthesis.run`` as it was before ``window_lstm`` (commit 5565a49): the first
    layer by hand with nn.LSTM's weights, autograd through every step."""
    lstm = list(state.lstm)
    cell = model.layers[0]
    x_gates = x @ cell.weight_ih_l0[:, :3].T + cell.bias_ih_l0 + cell.bias_hh_l0
    x_gates = x_gates.unbind(1)
    recurrent = torch.cat([cell.weight_ih_l0[:, 3:], cell.weight_hh_l0], 1).T
    h, c = lstm[0] or (x.new_zeros(x.shape[0], cell.hidden_size),) * 2
    w, kappa, first, windows, phis, window = state.w, state.kappa, [], [], [], None
    for x_t in x_gates:
        i, f, g, o = (x_t + torch.cat([w, h], -1) @ recurrent).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        window = model.window(h, kappa, text, text_mask)
        w, kappa = window.w, window.kappa
        first.append(h)
        windows.append(w)
        phis.append(window.phi)
    lstm[0] = (h, c)
    outs, windows = [torch.stack(first, 1)], torch.stack(windows, 1)
    for n in range(1, len(model.layers)):
        out, lstm[n] = model.layers[n](torch.cat([x, outs[-1], windows], -1), lstm[n])
        outs.append(out)
    return torch.cat(outs, -1), window, torch.stack(phis, 1), State(tuple(lstm), w, kappa)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="benchmarks/results/handwriting")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    d = handwriting("train", 20, 200, 16, seed=0, progress=False)
    y, mask = pad_strokes(d.strokes)
    codes, text_mask = encode_texts(d.texts, d.alphabet)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    sizes = dict(hidden_dim=48, num_layers=2, num_components=10, window_components=5)
    torch.manual_seed(0)
    model = pf.HandwritingSynthesis(d.alphabet, offset_scale=0.26, **sizes)
    blind = pf.HandwritingSynthesis(d.alphabet, offset_scale=0.26, text_blind=True, **sizes)
    fused_run = model.run
    rows = []
    for b in args.batch_sizes:
        idx = order[:b]
        batch = (y[idx], codes[idx], mask[idx], text_mask[idx])
        times = {"stepped": [], "window_lstm": [], "text-blind": []}
        results = {}
        for _ in range(args.repeats):
            for way in times:
                net = blind if way == "text-blind" else model
                if way != "text-blind":
                    net.run = (lambda *a: stepped_run(model, *a)) if way == "stepped" else fused_run
                net.zero_grad()
                start = time.perf_counter()
                loss = -net.log_prob(*batch).sum()
                loss.backward()
                times[way].append(time.perf_counter() - start)
                results[way] = (loss.item(), [p.grad.clone() for p in net.parameters()])
        model.run = fused_run
        (a, ga), (f, gf) = results["stepped"], results["window_lstm"]
        pairs = zip(gf, ga, strict=True)
        grad_error = max(float(((u - v).abs() / (v.abs().max() + 1e-12)).max()) for u, v in pairs)
        row = {
            "batch": b, "steps": int(mask[idx].sum(1).max()),
            **{f"{k}_s": statistics.median(v) for k, v in times.items()},
            "loss_relative_difference": abs(a - f) / abs(a), "gradient_max_relative": grad_error,
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "| batch | steps | stepped by autograd (s) | window_lstm (s) | speed-up | text-blind (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {r['steps']} | {r['stepped_s']:.2f} | {r['window_lstm_s']:.2f} | "
            f"{r['stepped_s'] / r['window_lstm_s']:.1f}x | {r['text-blind_s']:.2f} |"
        )
    (out / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
