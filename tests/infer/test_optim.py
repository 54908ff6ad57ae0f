"""JointClippedAdam: Pyro's ClippedAdam, bit for bit, in one batched update per step."""

import math

import pyro
import pyro.optim
import pytest
import torch
from pyro.infer import Trace_ELBO

import pyro_frmdn as pf
from pyro_frmdn.infer.optim import JointClippedAdam
from pyro_frmdn.infer.training import svi_step

Y = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(0))


def trained(make_optimizer, steps=6, state=None, model=None):
    """A small FRMDN after ``steps`` SVI steps and the optimizer's state (read while its
    parameters are in the param store: the state is keyed by their names)."""
    pyro.clear_param_store()
    if model is None:
        torch.manual_seed(0)
        model = pf.FRMDN(3, hidden_dim=8, num_components=2, rank=1, flow_layers=2)
    optimizer = make_optimizer()
    if state is not None:
        optimizer.set_state(state)
    elbo = Trace_ELBO()
    for i in range(steps):
        svi_step(elbo, model, optimizer, {"y": Y[i % 3 :: 2]})
    return model, optimizer.get_state()


ARGS = [
    {"lr": 0.01, "clip_norm": math.inf, "lrd": 1.0},
    {"lr": 0.05, "clip_norm": 0.5, "lrd": 0.97, "betas": (0.8, 0.99), "eps": 1e-6},
]


@pytest.mark.parametrize("args", ARGS)
def test_the_same_parameters_and_state_as_pyros_clipped_adam_bit_for_bit(args):
    ours, mine = trained(lambda: JointClippedAdam(dict(args)))
    theirs, pyros = trained(lambda: pyro.optim.ClippedAdam(dict(args)))
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    assert mine.keys() == pyros.keys() and len(mine) == len(list(ours.parameters()))
    for name in mine:
        s, t = mine[name]["state"][0], pyros[name]["state"][0]
        assert s["step"] == t["step"] == 6
        assert torch.equal(s["exp_avg"], t["exp_avg"])
        assert torch.equal(s["exp_avg_sq"], t["exp_avg_sq"])
        assert mine[name]["param_groups"][0]["lr"] == pyros[name]["param_groups"][0]["lr"]


def test_state_moves_between_it_and_pyros_optimizer_so_runs_resume_exactly():
    args = ARGS[1]
    whole, _ = trained(lambda: JointClippedAdam(dict(args)), steps=6)
    # three steps by Pyro's optimizer, its state handed to ours for the last three
    half, ref = trained(lambda: pyro.optim.ClippedAdam(dict(args)), steps=3)
    torch.manual_seed(0)
    fresh = pf.FRMDN(3, hidden_dim=8, num_components=2, rank=1, flow_layers=2)
    fresh.load_state_dict(half.state_dict())
    pyro.clear_param_store()
    optimizer = JointClippedAdam(dict(args))
    optimizer.set_state(ref)
    elbo = Trace_ELBO()
    for i in range(3, 6):
        svi_step(elbo, fresh, optimizer, {"y": Y[i % 3 :: 2]})
    for a, b in zip(fresh.parameters(), whole.parameters(), strict=True):
        assert torch.equal(a, b)


def test_options_it_cannot_batch_are_stepped_by_pyros_loop():
    args = {"lr": 0.01, "weight_decay": 0.1}
    ours, _ = trained(lambda: JointClippedAdam(dict(args)), steps=3)
    theirs, _ = trained(lambda: pyro.optim.ClippedAdam(dict(args)), steps=3)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_parameter_without_a_gradient_keeps_its_state_and_still_decays():
    p = pyro.param("unused_test_param", torch.zeros(3))
    q = pyro.param("used_test_param", torch.ones(3)).unconstrained()
    opt = JointClippedAdam({"lr": 0.1, "lrd": 0.5, "clip_norm": math.inf})
    q.grad = torch.ones(3)
    opt([p.unconstrained(), q])
    assert len(opt.optim_objs[p.unconstrained()].state) == 0
    assert opt.optim_objs[p.unconstrained()].param_groups[0]["lr"] == 0.05
    assert torch.allclose(q, torch.full((3,), 0.95))  # Adam's first step: lr·sign(g), lr decayed
    pyro.clear_param_store()


def test_fit_steps_with_it_and_gives_pyros_numbers():
    runs = []
    for optimizer in (None, "pyro"):
        pyro.clear_param_store()
        torch.manual_seed(0)
        m = pf.FRMDN(3, hidden_dim=8, num_components=2, rank=1, flow_layers=1)
        steps = 3  # batches per epoch: 6 sequences in batches of 2
        opt = None
        if optimizer:  # what fit built before, by hand: the per-epoch decay spread over steps
            opt = pyro.optim.ClippedAdam(
                {"lr": 0.02, "clip_norm": math.inf, "lrd": 0.9 ** (1 / steps)}
            )
        history = pf.fit(m, Y, epochs=3, batch_size=2, lr=0.02, lr_decay=0.9, optimizer=opt,
                         progress=False)  # fmt: skip
        runs.append((m, history["train_nll"]))
    assert runs[0][1] == runs[1][1]
    for a, b in zip(runs[0][0].parameters(), runs[1][0].parameters(), strict=True):
        assert torch.equal(a, b)
