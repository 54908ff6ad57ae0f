"""A tiny FRMDN and a short banana task, shared by the training and checkpoint tests."""

import torch

import pyro_frmdn as pf
from pyro_frmdn.data import make_task


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"hidden_dim": 8, "num_components": 2, "rank": 1, "flow_layers": 1, **kw}
    return pf.FRMDN(2, **kw)


def banana(n=48, steps=6, seed=0):
    return make_task("banana", n=n, steps=steps, seed=seed)
