"""M refitted alone on V's codes: only M changes, and it learns how actions move the codes."""

import copy
import math

import pyro
import pytest
import torch
from support.worlds import SHAPE, world

import pyro_frmdn as pf
from pyro_frmdn.infer.dynamics import refit_dynamics
from pyro_frmdn.models import shift_actions


def pushed(b=16, t=8, seed=0):
    """Episodes whose frame at step t shows the action taken after step t - 1: bright when it
    was action 1, dark when action 0 (the first frame dark)."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(2, (b, t), generator=g)
    actions = torch.nn.functional.one_hot(index, 2).double()
    frames = torch.zeros(b, t, *SHAPE, dtype=torch.float64)
    frames[:, 1:] = index[:, :-1, None, None, None].double()
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, 5:] = False
    return frames, actions, mask


def test_m_learns_how_the_action_moves_the_code_and_nothing_else_changes():
    # an untrained V: its codes of bright and dark frames differ by 0.05, around means of 0.3
    wm = world(reward=True, done=True).eval()
    frames, actions, mask = pushed()
    others = {k: v.clone() for k, v in wm.state_dict().items() if not k.startswith("prior.")}
    raw = world(reward=True, done=True).eval()  # the same V and M, M fitted on raw codes
    raw_out = refit_dynamics(raw, frames, actions, mask, epochs=150, lr=1e-2, standardize=False,
                             progress=False)  # fmt: skip
    out = refit_dynamics(wm, frames, actions, mask, epochs=150, lr=1e-2, progress=False)
    assert all(torch.equal(v, wm.state_dict()[k]) for k, v in others.items())  # V, heads as were
    # the reported likelihoods are M's on the codes, per unmasked step
    z = wm.encode(frames, mask)
    with torch.no_grad():
        nll = -float(wm.prior.log_prob(z, shift_actions(actions), mask).sum()) / int(mask.sum())
    assert out["steps"] == int(mask.sum()) and out["nll_after"] == pytest.approx(nll)
    assert out["nll_before"] == raw_out["nll_before"]
    assert out["nll_after"] < raw_out["nll_after"] - 5 < out["nll_before"] - 10
    # the known answer: after action a the next code is V's code of a bright (a = 1) or dark
    # (a = 0) frame, whatever came before; M must give each code far more density after its
    # own action than after the other (M fitted on the raw codes cannot tell them apart)
    dark, bright = (wm.encode(torch.full((1, 1, *SHAPE), v, dtype=torch.float64))[0, 0]
                    for v in (0.0, 1.0))  # fmt: skip

    def gaps(m):
        state = m.initial_state(2)
        with torch.no_grad():
            _, state = m.step(state, None, torch.zeros(2, 2, dtype=torch.float64))
            d, _ = m.step(state, dark.expand(2, -1), torch.eye(2, dtype=torch.float64))
            after_0, after_1 = d.log_prob(dark.expand(2, -1)), d.log_prob(bright.expand(2, -1))
        return float(after_0[0] - after_0[1]), float(after_1[1] - after_1[0])

    assert min(gaps(wm.prior)) > 5
    assert max(abs(g) for g in gaps(raw.prior)) < 1


def test_m_fitted_alone_and_inside_copies_of_the_world_model_in_turn():
    # World Models' iterations: copy the world model, fit it whole, then M alone. M's parameters
    # enter Pyro's param store under two names ("world$$$prior...." and "prior$$$..."), those
    # of earlier copies too; forgetting them in turn must not trip over one another
    wm = world(reward=True, done=True)
    frames, actions, mask = pushed(b=4, t=5)
    data = {"frames": frames, "actions": actions, "mask": mask}
    for _ in range(3):
        wm = copy.deepcopy(wm)
        pf.fit(wm, data, epochs=1, batch_size=4, progress=False)
        out = refit_dynamics(wm, frames, actions, mask, epochs=2, progress=False)
        assert math.isfinite(out["nll_after"])
    store = pyro.get_param_store()
    assert store["prior$$$start"] is wm.prior.start  # the newest copy's
    assert store["world$$$prior.start"] is wm.prior.start


def test_bad_input_is_refused_with_the_argument_named():
    frames, actions, mask = pushed(b=2, t=3)
    with pytest.raises(TypeError, match="world_model must be a WorldModel"):
        refit_dynamics(object(), frames, actions, mask)
    with pytest.raises(ValueError, match="no dynamics to fit"):
        refit_dynamics(world(prior="normal"), frames, actions, mask)
    wm = world()
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 3, 2\)"):
        refit_dynamics(wm, frames, actions[..., :1], mask)
    with pytest.raises(ValueError, match="epochs must be"):
        refit_dynamics(wm, frames, actions, mask, epochs=0)
