"""sketch-rnn on KanjiVG: train a small SketchVAE, then draw reconstructions and an interpolation.

Needs the data extra (``pip install 'pyro-frmdn[data]'``: KanjiVG and svgpathtools). A few minutes
on a laptop CPU with the defaults below; the figures go to ``runs/sketch/``.

    python examples/sketch_vae.py
"""

from pathlib import Path

import torch

import pyro_frmdn as pf
from pyro_frmdn.data import kanji_stroke5
from pyro_frmdn.plots import plot_drawings

torch.set_num_threads(1)
out = Path("runs/sketch")

# KanjiVG in stroke-5, one scale for the data set (the training offsets' standard deviation)
train, scale = kanji_stroke5("train", limit=600, spacing=8.0, grid=1.0)
val, _ = kanji_stroke5("val", limit=50, spacing=8.0, grid=1.0, scale=scale)
test, _ = kanji_stroke5("test", limit=8, spacing=8.0, grid=1.0, scale=scale)

m = pf.SketchVAE(
    latent_dim=16, encoder_dim=64, hidden_dim=128, num_components=10, rank=1, flow_layers=2,
    kl_warmup=100, kl_tolerance=0.2,
)  # fmt: skip
pf.fit(m, train, val=val, epochs=5, batch_size=32, lr=2e-3)
m.save(out / "sketch.pt")

y = test["y"]
with torch.no_grad():
    bound = m.iwae(y, num_particles=32).mean()
print(f"held-out IWAE bound: {float(bound):.1f} nats per drawing")
codes = m.encode(y)
greedy = m.decode(codes, steps=y.shape[1], greedy_decoding=True)
sampled = m.decode(codes, steps=y.shape[1], temperature=0.2)


def units(d: torch.Tensor) -> torch.Tensor:
    """A drawing back in KanjiVG's canvas units."""
    return torch.cat([d[..., :2] * scale, d[..., 2:]], -1)


rows = [[units(d) for d in drawings[:6]] for drawings in (y, greedy, sampled)]
titles = [[label] * 6 for label in ("input", "greedy", "τ = 0.2")]
print(plot_drawings(rows, out / "reconstructions.png", titles))
path = m.interpolate(y[0], y[1], steps=8)  # spherical, between the two kanji's codes
drawn = m.decode(path, steps=y.shape[1], greedy_decoding=True)
print(plot_drawings([[units(d) for d in drawn]], out / "interpolation.png"))
