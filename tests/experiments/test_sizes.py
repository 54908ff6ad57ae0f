"""Matched sizes: parameter counts, the five variants, their flows, the hidden-size match."""

from dataclasses import replace

import pytest

from pyro_frmdn.experiments.sizes import (
    TOLERANCE,
    build_variant,
    count_parameters,
    matched_sizes,
)
from pyro_frmdn.experiments.specs import DATASETS, FRMDNS, RMDNS, VARIANTS, quick_spec

OBS_DIMS = {"moving_mnist": 256, "mnist_rows": 28, "digits8": 8, "vowels": 12, "kanji": 3}


def _binary(name: str) -> int:
    return 1 if name == "kanji" else 0  # the pen-up bit has a Bernoulli head


def _lstm_rmdn_count(d: int, h: int, k: int) -> int:
    """An independent count of a diagonal RMDN: LSTM (two bias vectors), y_0, a linear head."""
    lstm = 4 * h * (d + h) + 2 * 4 * h
    head = (h + 1) * (k + 2 * k * d)  # logits, means, diagonals
    return lstm + d + head


@pytest.mark.parametrize("d,h,k", [(3, 7, 1), (12, 20, 5), (256, 9, 2)])
def test_count_parameters_matches_a_count_by_hand(d, h, k):
    spec = replace(DATASETS["vowels"], num_components=k)
    model = build_variant("rmdn_diag", spec, d, h)
    assert count_parameters(model) == _lstm_rmdn_count(d, h, k)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_variant_is_matched_to_the_frmdn_within_tolerance(name):
    spec = quick_spec(DATASETS[name])  # smaller hidden sizes: faster, and a harder match
    d, binary = OBS_DIMS[name], _binary(name)
    sizes = matched_sizes(spec, d, list(VARIANTS), binary)
    target = count_parameters(build_variant("frmdn_cov", spec, d, spec.hidden_dim, binary))
    assert sizes["frmdn_cov"]["hidden_dim"] == spec.hidden_dim
    for v, s in sizes.items():
        model = build_variant(v, spec, d, s["hidden_dim"], binary)
        count = sum(p.numel() for p in model.parameters())
        assert count == s["params"] and s["target"] == target
        assert abs(count - target) <= TOLERANCE * target, (v, count, target)
        for other in (s["hidden_dim"] - 1, s["hidden_dim"] + 1):  # no neighbour is nearer
            n = count_parameters(build_variant(v, spec, d, other, binary))
            assert abs(n - target) >= abs(count - target)


def test_the_variants_are_the_five_models_asked_for():
    spec = DATASETS["vowels"]
    models = {v: build_variant(v, spec, 12, 8) for v in VARIANTS}
    assert models["gaussian"].head.num_components == 1 and models["gaussian"].head.rank == 0
    assert models["rmdn_diag"].head.rank == 0 and len(models["rmdn_diag"].flow) == 0
    assert models["rmdn_lowrank"].head.rank == spec.rank and len(models["rmdn_lowrank"].flow) == 0
    for v, form in (("frmdn_cov", "covariance"), ("frmdn_prec", "precision")):
        assert models[v].head.parameterization == form
        couplings = [t for t in models[v].flow if "Coupling" in type(t).__name__]
        assert models[v].head.rank == spec.rank and len(couplings) == spec.flow_layers


@pytest.mark.parametrize("flow", ["affine", "spline"])
@pytest.mark.parametrize("conditional", [False, True])
def test_the_frmdns_flow_follows_the_spec(flow, conditional):
    spec = replace(DATASETS["vowels"], flow=flow, conditional_flow=conditional)
    for v in FRMDNS:
        model = build_variant(v, spec, 12, 8)
        couplings = [t for t in model.flow if "Coupling" in type(t).__name__]
        assert len(couplings) == spec.flow_layers and model.conditional_flow == conditional
        kinds = {"Spline" in type(t).__name__ for t in couplings}
        assert kinds == {flow == "spline"}
    for v in RMDNS:  # the spec's flow does not touch the models without one
        assert len(build_variant(v, spec, 12, 8).flow) == 0


def test_an_unknown_model_is_an_error():
    with pytest.raises(ValueError, match=r"unknown model 'mdn'.*gaussian"):
        build_variant("mdn", DATASETS["vowels"], 12, 8)
