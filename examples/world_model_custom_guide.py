"""The FRMDN prior on the latents of your own Pyro model, with your own encoder guide.

``pyro_frmdn.SequenceDistribution(frmdn, x, mask)`` is a distribution over a whole latent
sequence z_1:T (batch (B,), event (T, D)) whose log-density is the FRMDN's, teacher forced. Put
it at a site in any model and draw that site in the guide all at once: here a hand-written
state-space model of binary frames, with

- model: z_1:T ~ FRMDN (no actions), x_t | z_t ~ Bernoulli(MLP decoder(z_t)), one site each;
- guide: a user-written encoder, a bidirectional GRU over the flattened frames giving a diagonal
  Normal q(z_t | x_1:T) per step (a smoothing guide; the WorldModel's own guide is per frame).

The frames are a bouncing ball made in this file (16×16, action-free; no extra package). Training
is plain Pyro SVI; the FRMDN is registered with ``pyro.module`` like any network. The script
prints the held-out ELBO per frame before and after training and saves a dream: the encoder's
codes of 4 frames prime the FRMDN, which samples the next 12 latents, decoded beside the truth.

    python examples/world_model_custom_guide.py --steps 1500
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyro
import pyro.distributions as dist
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import Tensor, nn
from tqdm.auto import trange

import pyro_frmdn as pf
from pyro_frmdn.plots import save_dream

SIDE, D = 16, 4


def bouncing_balls(n: int, steps: int, seed: int) -> Tensor:
    """Binary frames (n, steps, 1, 16, 16) of a 3×3 ball bouncing off the walls."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 2, generator=g) * (SIDE - 3)
    vel = (torch.rand(n, 2, generator=g) - 0.5) * 3
    frames = torch.zeros(n, steps, 1, SIDE, SIDE)
    grid = torch.arange(SIDE).float()
    for t in range(steps):
        rows = (grid[None] >= pos[:, :1].round()) & (grid[None] < pos[:, :1].round() + 3)
        cols = (grid[None] >= pos[:, 1:].round()) & (grid[None] < pos[:, 1:].round() + 3)
        frames[:, t, 0] = (rows[:, :, None] & cols[:, None, :]).float()
        pos = pos + vel
        out = (pos < 0) | (pos > SIDE - 3)
        vel = torch.where(out, -vel, vel)
        pos = pos.clamp(0, SIDE - 3)
    return frames


class Encoder(nn.Module):
    """q(z_t | x_1:T): a bidirectional GRU over flattened frames, a diagonal Normal per step."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.rnn = nn.GRU(SIDE * SIDE, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 2 * D)

    def forward(self, frames: Tensor):
        h = self.rnn(frames.flatten(2))[0]
        loc, raw = self.out(h).chunk(2, -1)
        return dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1)  # batch (B, T)


class StateSpaceModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.prior = pf.FRMDN(D, hidden_dim=64, num_components=3, rank=1, flow_layers=2)
        self.decoder = nn.Sequential(nn.Linear(D, 128), nn.ReLU(), nn.Linear(128, SIDE * SIDE))
        self.encoder = Encoder()

    def model(self, frames: Tensor) -> None:
        pyro.module("ssm", self)
        b, t = frames.shape[:2]
        with pyro.plate("sequences", b):
            z = pyro.sample("z", pf.SequenceDistribution(self.prior, batch_size=b, steps=t))
            logits = self.decoder(z).unflatten(-1, (1, SIDE, SIDE))  # (B, T, 1, H, W)
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(4), obs=frames)

    def guide(self, frames: Tensor) -> None:
        pyro.module("ssm", self)
        with pyro.plate("sequences", frames.shape[0]):
            pyro.sample("z", self.encoder(frames).to_event(1))  # all steps at once


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=1500, help="SVI steps")
    p.add_argument("--out", default="runs/custom_guide", help="folder of the dream files")
    args = p.parse_args()
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    train, test = bouncing_balls(256, 16, seed=0), bouncing_balls(64, 16, seed=1)
    ssm = StateSpaceModel()
    elbo = Trace_ELBO(num_particles=4)
    frames_count = test.shape[0] * test.shape[1]

    def held_out() -> float:
        with torch.no_grad():
            return -elbo.loss(ssm.model, ssm.guide, test) / frames_count

    print(f"held-out ELBO before: {held_out():.1f} nats/frame")
    svi = SVI(ssm.model, ssm.guide, pyro.optim.ClippedAdam({"lr": 3e-3}), Trace_ELBO())
    bar = trange(args.steps, desc="svi")
    for step in bar:
        batch = train[torch.randint(0, len(train), (32,))]
        loss = svi.step(batch) / (32 * 16)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss:.2f}")
    print(f"held-out ELBO after:  {held_out():.1f} nats/frame")

    # a dream: prime the FRMDN with the codes (posterior means) of 4 frames, sample 12 more
    with torch.no_grad():
        codes = ssm.encoder(test[:4, :4]).mean  # the encoder sees the 4 context frames only
        z = ssm.prior.sample(4, 12, prime=codes, scale_temperature=0.5)
        dreamed = torch.sigmoid(ssm.decoder(z)).unflatten(-1, (1, SIDE, SIDE))
    gif, png = save_dream(Path(args.out) / "dream", dreamed, test[:4, 4:])
    print(f"dream beside the real future: {gif}, {png}")


if __name__ == "__main__":
    main()
