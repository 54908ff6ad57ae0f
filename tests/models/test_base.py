"""The model contract: every model class follows it, and save/load round-trips in a new process."""

import pickle
import subprocess
import sys
import textwrap

import pyro
import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.models.base import CONTRACT, PyroModel, check_contract

Y = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(1))
X = torch.randn(6, 1, generator=torch.Generator().manual_seed(2))
FRAMES = (torch.rand(2, 3, 1, 16, 16, generator=torch.Generator().manual_seed(3)) > 0.5).float()


def _boosted(m, rho=0.4):
    for _ in range(2):
        m.add_component()
    m.set_rho(torch.tensor([1.0, rho], dtype=m.rho.dtype))
    return m


# class name -> (builder, data for log_prob, the sample call's arguments)
MODELS = {
    "FRMDN": (
        lambda: pf.FRMDN(2, hidden_dim=8, num_components=2, rank=1, flow_layers=1),
        (Y,),
        (4, 3),
    ),
    "RMDN": (lambda: pf.RMDN(2, hidden_dim=8, num_components=2), (Y,), (4, 3)),
    "MDN": (
        lambda: pf.MDN(1, 2, num_components=2, hidden_dims=[8]),
        (X, Y[:, 0].repeat(2, 1)),
        (3, X),
    ),
    "BoostedFlow": (
        lambda: _boosted(pf.BoostedFlow(2, flow_layers=1, hidden_dims=[8])),
        (Y[:, 0],),
        (5,),
    ),
    "BoostedFRMDN": (
        lambda: _boosted(pf.BoostedFRMDN(2, hidden_dim=8, num_components=2, flow_layers=1)),
        (Y,),
        (4, 3),
    ),
    "WorldModel": (
        lambda: pf.WorldModel(
            (1, 16, 16), 3, likelihood="bernoulli", channels=(4, 8), features=8, hidden_dim=8
        ),
        (FRAMES,),
        (2, 3),
    ),
}


def _outputs(model, data, sample_args):
    pyro.set_rng_seed(7)
    lp = model.log_prob(*data)
    pyro.set_rng_seed(8)
    s = model.sample(*sample_args)
    return lp.detach(), s


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """Each model saved (``save`` and ``torch.save``), then loaded and run in a new process."""
    folder = tmp_path_factory.mktemp("models")
    here = {}
    for name, (build, data, sample_args) in MODELS.items():
        torch.manual_seed(0)
        m = build().eval()
        with torch.no_grad():  # weights away from their initialisation, as after training
            for p in m.parameters():
                p.add_(0.01 * torch.randn_like(p))
        m.save(folder / f"{name}.pt")
        torch.save(m, folder / f"{name}.pickle")
        torch.save({"data": data, "sample_args": sample_args}, folder / f"{name}.inputs")
        here[name] = _outputs(m, data, sample_args)
    script = textwrap.dedent(
        f"""
        import pyro, torch, pyro_frmdn as pf
        from pathlib import Path
        folder, out = Path({str(folder)!r}), {{}}
        for name in {list(MODELS)!r}:
            inputs = torch.load(folder / f"{{name}}.inputs", weights_only=False)
            for how, m in (
                ("load", pf.load(folder / f"{{name}}.pt")),
                ("pickle", torch.load(folder / f"{{name}}.pickle", weights_only=False).eval()),
            ):
                assert type(m).__name__ == name, type(m)
                pyro.set_rng_seed(7)
                lp = m.log_prob(*inputs["data"]).detach()
                pyro.set_rng_seed(8)
                out[name, how] = (lp, m.sample(*inputs["sample_args"]))
        torch.save(out, folder / "out.pt")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    return here, torch.load(folder / "out.pt", weights_only=False)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_class_follows_the_contract(name):
    m = MODELS[name][0]()
    assert isinstance(m, PyroModel)
    check_contract(m)
    assert type(m).from_config(m.config).config == m.config


@pytest.mark.parametrize("how", ["load", "pickle"])
@pytest.mark.parametrize("name", list(MODELS))
def test_save_and_load_in_a_new_process_give_the_same_log_prob_and_samples(round_trip, name, how):
    here, there = round_trip
    lp, s = here[name]
    lp2, s2 = there[name, how]
    assert torch.equal(lp, lp2)
    assert torch.equal(s, s2)


def test_a_deep_copy_scores_the_same_and_owns_its_weights():
    import copy

    m = pf.FRMDN(2, hidden_dim=8, num_components=2, rank=1, flow_layers=1)
    pf.fit(m, Y, epochs=1, progress=False)  # param store links, as after training
    m.log_prob(Y)  # with gradients on: the flow's caches hold tensors of this graph
    twin = copy.deepcopy(m)
    assert torch.equal(twin.log_prob(Y), m.log_prob(Y))
    with torch.no_grad():
        twin.rnn.weight_hh_l0.add_(1.0)  # its LSTM weights are its own, not views of m's
    assert not torch.equal(twin.log_prob(Y), m.log_prob(Y))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_deep_copies_after_scoring_with_gradients(name):
    import copy

    build, data, _ = MODELS[name]
    torch.manual_seed(0)
    m = build()
    pyro.set_rng_seed(3)
    before = m.log_prob(*data)  # gradients on: any cache now holds this graph's tensors
    twin = copy.deepcopy(m)
    pyro.set_rng_seed(3)
    assert torch.equal(twin.log_prob(*data).detach(), before.detach())


def test_a_fitted_model_pickles_despite_the_param_store_links():
    m = pf.FRMDN(2, hidden_dim=8, num_components=2, flow_layers=1)
    pf.fit(m, Y, epochs=1, progress=False)  # leaves weakrefs on the parameters
    with pytest.raises(TypeError, match="weakref"):
        pickle.dumps(m.rnn.weight_ih_l0)
    back = pickle.loads(pickle.dumps(m))
    assert torch.equal(back.log_prob(Y), m.log_prob(Y))


def test_load_reads_checkpoints_that_fit_wrote(tmp_path):
    m = pf.RMDN(2, hidden_dim=8, num_components=2)
    pf.fit(m, Y, Y, epochs=2, checkpoint=tmp_path, progress=False)
    for file in ("best.pt", "last.pt"):
        assert torch.allclose(pf.load(tmp_path / file).log_prob(Y), m.log_prob(Y))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_model_comes_back_in_the_dtype_it_was_saved_in(tmp_path, dtype):
    # seen on the first GPU run: a float64 model came back float32, its log_prob rounded
    m = pf.FRMDN(2, hidden_dim=8, num_components=2, rank=1, flow_layers=2).to(dtype)
    y = Y.to(dtype)
    back = pf.load(m.save(tmp_path / "m.pt"))
    assert {p.dtype for p in back.parameters()} == {dtype}
    assert torch.equal(back.log_prob(y), m.log_prob(y))
    assert torch.equal(pickle.loads(pickle.dumps(m)).log_prob(y), m.log_prob(y))


def test_load_keeps_the_transform_and_refuses_what_is_not_a_model(tmp_path):
    m = pf.RMDN(2, hidden_dim=8, num_components=2)
    transform = {"kind": "standardise", "mean": torch.tensor([1.0, 2.0])}
    m.save(tmp_path / "m.pt", transform=transform)
    back, t = pf.load(tmp_path / "m.pt", with_transform=True)
    assert isinstance(back, pf.RMDN) and not back.training
    assert t["kind"] == "standardise" and torch.equal(t["mean"], transform["mean"])
    with pytest.raises(FileNotFoundError, match="no model file"):
        pf.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"junk\.pt is corrupt"):
        pf.load(tmp_path / "junk.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a pyro-frmdn model file"):
        pf.load(tmp_path / "other.pt")
    torch.save({"format": "pyro-frmdn-model/1", "model_class": "Nope"}, tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="Nope, which is not a known model class"):
        pf.load(tmp_path / "nope.pt")


def test_fit_names_what_a_model_lacks():
    class NoGuide(torch.nn.Module):
        name = "x"

        def model(self, y):
            pass

        def log_prob(self, y):
            return y.sum(-1)

    with pytest.raises(TypeError, match="NoGuide lacks guide of the model contract"):
        pf.fit(NoGuide(), Y, epochs=1, progress=False)
    assert "save" in CONTRACT
