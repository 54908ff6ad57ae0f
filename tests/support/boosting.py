"""Tiny boosted flows, two-blob data, the weight checks and the Adam-step counter shared by the
boosting tests."""

import math

import torch

from pyro_frmdn.distributions import RHO_MAX
from pyro_frmdn.models import BoostedFlow, BoostedMixture


def flow(dim=2, components=0, rho=(), kind="affine", seed=0, **kwargs):
    torch.manual_seed(seed)
    m = BoostedFlow(dim, flow_layers=2, flow=kind, hidden_dims=[8], **kwargs).double()
    for _ in range(components):
        m.add_component()
    if rho:
        m.set_rho(torch.tensor(rho, dtype=torch.float64))
    return m


def blobs(n=128, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([[2.0, 0.0]]) * (2 * torch.randint(0, 2, (n, 1), generator=g) - 1)
    return (centre + 0.4 * torch.randn(n, 2, generator=g) + shift).double()


def assert_valid(m: BoostedMixture):
    w = m.weights()
    assert float(m.rho[0]) == 1.0
    assert bool(((m.rho[1:] >= 0) & (m.rho[1:] <= RHO_MAX)).all())
    assert bool(((w >= 0) & (w <= 1)).all()) and float(w[0]) > 0
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-12)


def count_steps(run) -> list[list[float]]:
    """The learning rate of every Adam step taken by ``run()``, one list per optimizer."""
    calls = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        calls.append((self, self.param_groups[0]["lr"]))
        return original(self, *args, **kwargs)

    torch.optim.Adam.step = spy
    try:
        run()
    finally:
        torch.optim.Adam.step = original
    optimizers = list(dict.fromkeys(opt for opt, _ in calls))
    return [[lr for o, lr in calls if o is opt] for opt in optimizers]
