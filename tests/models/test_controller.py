"""The controller: shapes, bounds, discrete actions, the flat vector, populations, save/load."""

from pathlib import Path

import numpy as np
import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.models import Controller

D, H = 3, 5


def box():
    return Controller(D, H, low=[-1.0, 0.0, 0.0], high=[1.0, 1.0, 0.5]).double()


def test_continuous_actions_are_the_tanh_layer_mapped_into_the_bounds():
    c = box()
    z, h = torch.randn(7, D, dtype=torch.float64), torch.randn(7, H, dtype=torch.float64)
    u = torch.tanh(torch.cat([z, h], -1) @ c.weight.T + c.bias)  # the paper's formula
    low, high = torch.tensor([-1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.5])
    a = c.act(z, h)
    assert a.shape == (7, 3)
    torch.testing.assert_close(a, low + (u + 1) / 2 * (high - low))
    # extreme inputs saturate at, never beyond, the bounds
    big = c.act(1e4 * z, 1e4 * h)
    assert (big >= low).all() and (big <= high).all()
    assert c.num_parameters == 3 * (D + H) + 3


def test_paper_size_and_the_v_only_variant():
    c = Controller(32, 256, low=[-1, 0, 0], high=[1, 1, 1])
    assert c.num_parameters == 867  # World Models, CarRacing
    v = Controller(D, H, num_actions=4, use_hidden=False).double()
    z = torch.randn(6, D, dtype=torch.float64)
    torch.testing.assert_close(v(z), torch.tanh(z @ v.weight.T + v.bias))
    assert v.num_parameters == 4 * D + 4
    assert torch.equal(v.act(z), (z @ v.weight.T + v.bias).argmax(-1))


def test_two_discrete_actions_threshold_one_output_and_are_one_hot_for_m():
    c = Controller(D, H, num_actions=2).double()
    assert c.outputs == 1 and c.action_dim == 2
    z, h = torch.randn(50, D, dtype=torch.float64), torch.randn(50, H, dtype=torch.float64)
    pre = torch.cat([z, h], -1) @ c.weight[0] + c.bias[0]
    a = c.act(z, h)
    assert a.dtype == torch.long and torch.equal(a, (pre > 0).long())
    assert torch.equal(c.action_features(a), torch.eye(2, dtype=torch.float64)[a])


def test_standardised_inputs_reparameterise_w_and_b():
    c = box()
    z = 5.0 + 1e-3 * torch.randn(50, D, dtype=torch.float64)  # codes far from 0, barely varying
    h = torch.randn(50, H, dtype=torch.float64)
    c.fit_inputs(z, h)
    x = torch.cat([z, h], -1)
    m, s = x.mean(0), x.std(0)
    torch.testing.assert_close(c.input_loc, m)
    # the same policy as plain W' = W / s, b' = b - W' m: an affine reparameterisation
    plain = box()
    plain.weight.data, plain.bias.data = c.weight / s, c.bias - (c.weight / s) @ m
    torch.testing.assert_close(c.act(z, h), plain.act(z, h))
    standard = (x - m) / s
    torch.testing.assert_close(c(z, h), torch.tanh(standard @ c.weight.T + c.bias))
    back = Controller.from_config(c.config).double()
    back.load_state_dict(c.state_dict())  # the scaling is saved with C
    torch.testing.assert_close(back.act(z, h), c.act(z, h))
    with pytest.raises(ValueError, match="at least 2 rows"):
        c.fit_inputs(z[:1], h[:1])


def test_flat_vector_round_trip():
    c = box()
    v = torch.arange(c.num_parameters, dtype=torch.float64)
    c.set_flat(v)
    assert torch.equal(c.get_flat(), v)
    assert torch.equal(c.weight.flatten(), v[: 3 * (D + H)]) and torch.equal(c.bias, v[-3:])
    c.set_flat(v.numpy() * 2)
    assert torch.equal(c.get_flat(), 2 * v)
    with pytest.raises(ValueError, match=r"vector must have shape \(27,\)"):
        c.set_flat(v[:-1])
    with pytest.raises(ValueError, match="vector"):
        c.set_flat(torch.full((27,), float("nan")))


@pytest.mark.parametrize("kind", ["box", "two", "many", "v_only"])
def test_a_batched_population_equals_the_loop_over_its_members(kind):
    c = {
        "box": box,
        "two": lambda: Controller(D, H, num_actions=2).double(),
        "many": lambda: Controller(D, H, num_actions=5).double(),
        "v_only": lambda: Controller(D, H, num_actions=5, use_hidden=False).double(),
    }[kind]()
    pop = torch.randn(4, c.num_parameters, dtype=torch.float64)
    z, h = (
        torch.randn(4, 2, 3, D, dtype=torch.float64),
        torch.randn(4, 2, 3, H, dtype=torch.float64),
    )
    batched = c.act(z, h, pop)
    for i in range(4):
        c.set_flat(pop[i])
        assert torch.allclose(c(z[i], h[i]), c(z, h, pop)[i], atol=1e-12)
        if batched.is_floating_point():  # matmul and bmm may round differently
            torch.testing.assert_close(c.act(z[i], h[i]), batched[i], rtol=0, atol=1e-12)
        else:
            assert torch.equal(c.act(z[i], h[i]), batched[i])


def test_gymnasium_spaces_give_the_bounds():
    gym = pytest.importorskip("gymnasium")
    c = Controller(
        D, H, gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 3.0], np.float32))
    )
    assert c.config["low"] == [-2.0, 0.0] and c.config["high"] == [2.0, 3.0]
    assert Controller(D, H, gym.spaces.Discrete(3)).num_actions == 3


def test_save_and_load_rebuild_it(tmp_path):
    c = box()
    path = c.save(tmp_path / "c.pt")
    back = pf.load(path).double()  # loaded in the config's default dtype
    assert isinstance(back, Controller) and back.config == c.config
    z, h = torch.randn(2, D, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64)
    assert torch.equal(back.act(z, h), c.act(z, h))


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="need finite bounds with low < high"):
        Controller(D, H, low=[1.0], high=[0.0])
    with pytest.raises(ValueError, match="num_actions must be an integer >= 2"):
        Controller(D, H, num_actions=1)
    with pytest.raises(TypeError, match="needs action_space, low and high, or num_actions"):
        Controller(D, H)
    with pytest.raises(ValueError, match="use_hidden=True needs hidden_dim >= 1"):
        Controller(D, 0, num_actions=2)
    c = box()
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., 3\)"):
        c.act(torch.zeros(2, 4), torch.zeros(2, H))
    with pytest.raises(ValueError, match="pass h"):
        c.act(torch.zeros(2, D))
    with pytest.raises(ValueError, match=r"params must have shape \(P, 27\)"):
        c.act(torch.zeros(2, D), torch.zeros(2, H), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="z"):
        c.act(torch.full((2, D), float("inf")), torch.zeros(2, H))
    with pytest.raises(TypeError, match="Controller lacks model, guide, log_prob"):
        pf.fit(c, torch.zeros(2, 3, 1), epochs=1)


def test_more_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="low and high must be equally long"):
        Controller(D, H, low=[0.0, 0.0], high=[1.0])
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 0"):
        Controller(2.5, H, num_actions=2)
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        Controller(0, H, num_actions=2)
    with pytest.raises(TypeError, match="action_space must be a Box or a Discrete space"):
        Controller(D, H, action_space="left-right")
    with pytest.raises(TypeError, match="give action_space or low/high or num_actions, not both"):
        Controller(D, H, action_space=type("S", (), {"n": 2})(), num_actions=2)
    c = box()
    with pytest.raises(ValueError, match=r"h must have shape \(2, 5\), got \(2, 4\)"):
        c.act(torch.zeros(2, D), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="params"):  # a population holding NaN
        c.act(torch.zeros(2, 1, D), torch.zeros(2, 1, H), torch.full((2, 27), float("nan")))
    with pytest.raises(ValueError, match=r"with params of P=2, z must be \(P, \.\.\., D\)"):
        c.act(torch.zeros(3, 1, D), torch.zeros(3, 1, H), torch.zeros(2, 27))
    with pytest.raises(TypeError, match="z must hold real numbers"):
        c.act(torch.zeros(2, D, dtype=torch.complex64), torch.zeros(2, H))
    with pytest.raises(ValueError, match="h"):
        c.act(torch.zeros(2, D), torch.full((2, H), float("nan")))


def test_start_from_a_v_only_controller_acts_as_it_whatever_h():
    torch.manual_seed(0)
    v = Controller(D, 0, low=[-1.0, 0.0, 0.0], high=[1.0, 1.0, 0.5], use_hidden=False).double()
    v.set_flat(torch.randn(v.num_parameters, dtype=torch.float64))
    z = torch.randn(50, D, dtype=torch.float64) * 0.01 + 3.0  # codes of a small spread
    v.fit_inputs(z)
    vm = box()
    h = torch.randn(50, H, dtype=torch.float64) * 4.0 - 1.0
    vm.fit_inputs(z[:20], h[:20])  # standardised on other rows: start_from takes v's for z
    vm.start_from(v)
    assert torch.equal(vm.act(z, h), v.act(z))
    assert torch.equal(vm.act(z, torch.zeros_like(h)), v.act(z))
    assert torch.equal(vm.input_scale[D:], h[:20].std(0))  # h's standardisation kept
    pop = vm.get_flat()[None].repeat(4, 1)  # CMA-ES's mean is v's policy
    assert torch.equal(
        vm.act(z.expand(4, -1, -1), h.expand(4, -1, -1), pop), v.act(z).expand(4, -1, -1)
    )


def test_start_from_refuses_what_would_not_act_alike():
    vm = box()
    with pytest.raises(ValueError, match="must be a V-only controller"):
        vm.start_from(box())
    with pytest.raises(ValueError, match="must read z of 3 and give 3 outputs"):
        vm.start_from(Controller(D + 1, 0, low=[0.0] * 3, high=[1.0] * 3, use_hidden=False))
    with pytest.raises(ValueError, match="same action space"):
        vm.start_from(Controller(D, 0, low=[0.0] * 3, high=[1.0] * 3, use_hidden=False).double())
    with pytest.raises(TypeError, match="must be a Controller"):
        vm.start_from("v")


def test_one_sided_coordinates_rest_at_their_low_bound():
    c = Controller(3, 0, low=[-1.0, 0.0, 0.0], high=[1.0, 1.0, 2.0], one_sided=[False, False, True],
                   use_hidden=False)  # fmt: skip
    z = torch.randn(50, 3)
    u = torch.tanh(z @ c.weight.T + c.bias).detach()
    a = c.act(z).detach()
    torch.testing.assert_close(a[:, :2], torch.stack([u[:, 0], (u[:, 1] + 1) / 2], -1))
    torch.testing.assert_close(a[:, 2], 2 * u[:, 2].clamp(min=0))  # World Models' brake
    assert bool((a[u[:, 2] <= 0, 2] == 0).all()) and bool((u[:, 2] > 0).any())
    c.set_flat(torch.zeros(c.num_parameters))
    assert c.act(torch.randn(3)).tolist() == [0.0, 0.5, 0.0]  # zero weights: no brake
    pop, zs = torch.randn(4, c.num_parameters), torch.randn(4, 6, 3)
    batched = c.act(zs, params=pop)
    for i in range(4):  # the population path maps as the single controller does
        c.set_flat(pop[i])
        torch.testing.assert_close(batched[i], c.act(zs[i]))
    assert bool((batched[..., 2] == 0).any())


def test_one_sided_is_saved_and_old_controllers_load(tmp_path):
    c = Controller(2, 0, low=[0.0, 0.0], high=[1.0, 1.0], one_sided=[True, False],
                   use_hidden=False)  # fmt: skip
    c.save(tmp_path / "c.pt")
    back = pf.load(tmp_path / "c.pt")
    assert back.config["one_sided"] == [True, False]
    z = torch.randn(7, 2)
    torch.testing.assert_close(back.act(z), c.act(z))
    assert "one_sided" not in c.state_dict()  # the config rebuilds it: older files load
    root = Path(__file__).resolve().parents[2]  # a controller saved before one_sided existed
    old = pf.load(root / "benchmarks/results/agent_carracing/staged/run4_controller_z.pt")
    assert old.config.get("one_sided") is None and not old.one_sided.any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], one_sided=[True]), "one_sided must be 2 flags"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], one_sided=[1, 0]), "one_sided must be 2 flags"),
        (dict(num_actions=3, one_sided=[True]), "one_sided applies to a Box"),
    ],
)
def test_bad_one_sided_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Controller(2, 0, use_hidden=False, **kwargs)


def test_start_from_needs_the_same_one_sided_coordinates():
    bounds = dict(low=[0.0, 0.0], high=[1.0, 1.0])
    v = Controller(2, 0, **bounds, use_hidden=False)
    c = Controller(2, 3, **bounds, one_sided=[False, True])
    with pytest.raises(ValueError, match="same action space"):
        c.start_from(v)
