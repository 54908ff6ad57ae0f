"""fit_boosted(component_start=...) and sample_weighting="best": each new component fitted once
per (objective, start) pair of BEST_OF, the fit whose mixture scores better kept, the choice
recorded."""

import copy

import pytest
import torch
from support.boosting import assert_valid, blobs, count_steps, flow

from pyro_frmdn.distributions import RHO_MAX, log_weights_from_rho
from pyro_frmdn.infer import boosting, fit_boosted, line_search_rho
from pyro_frmdn.infer.boosting_options import BEST_OF, COMPONENT_STARTS, SAMPLE_WEIGHTINGS
from pyro_frmdn.infer.rho import mixture_nll

FIT = dict(epochs_per_component=6, batch_size=32, lr=1e-2, progress=False)


def score(m, data, c: int) -> float:
    """The NLL of the mixture component ``c`` makes with the ones before it, its ρ searched on
    ``data`` as "best" judges a fit, computed here from the components' own densities."""
    log_w = log_weights_from_rho(m.rho[:c].double())
    with torch.no_grad():
        before = torch.stack([m.components[k].log_prob(data) for k in range(c)], -1)
        rest, new = torch.logsumexp(before + log_w, -1), m.components[c].log_prob(data)
    return mixture_nll(line_search_rho(rest, new, 0.0, RHO_MAX), rest, new)


def test_best_is_offered_with_valid_pairs():
    assert "best" in SAMPLE_WEIGHTINGS and COMPONENT_STARTS == ("fresh", "copy")
    assert BEST_OF == (("weighted", "copy"), ("mixture", "fresh"))


def test_an_unknown_start_is_refused_by_name():
    with pytest.raises(ValueError, match="component_start must be one of"):
        fit_boosted(flow(), blobs(64), num_components=2, component_start="warm", **FIT)


@pytest.mark.parametrize("order", [BEST_OF, BEST_OF[::-1]])
@pytest.mark.parametrize("with_val", [True, False])
def test_best_keeps_the_fit_whose_mixture_scores_better(with_val, order, monkeypatch):
    """Whichever fit is tried first, the one kept is the one with the lower NLL."""
    monkeypatch.setattr(boosting, "BEST_OF", order)
    train, val = blobs(128, seed=0), blobs(96, seed=1)
    judge = val if with_val else train
    key = "val_nll_of" if with_val else "train_nll_of"
    m = flow()
    h = fit_boosted(m, train, val if with_val else None, num_components=3,
                    sample_weighting="best", **FIT)  # fmt: skip
    assert_valid(m)
    assert "fit" not in h.records[0]  # the first is a maximum-likelihood fit
    for c in (1, 2):
        record = h.records[c]
        scores = record[key]
        assert set(scores) == {"weighted, copy", "mixture, fresh"}
        assert len(set(scores.values())) == 2
        assert record["fit"] == min(scores, key=scores.get)
        assert score(m, judge, c) == pytest.approx(min(scores.values()), rel=1e-10)


def test_the_first_candidate_is_the_weighted_fit_from_a_copy():
    """From the same start and the same random stream, the first candidate of "best" is the
    component that ``sample_weighting="weighted", component_start="copy"`` fits: their
    mixtures score the same."""
    train, val = blobs(128, seed=0), blobs(96, seed=1)
    best, weighted = flow(), flow()
    h = fit_boosted(best, train, val, num_components=2, sample_weighting="best", **FIT)
    fit_boosted(weighted, train, val, num_components=2, component_start="copy", **FIT)
    assert h.records[1]["val_nll_of"]["weighted, copy"] == pytest.approx(
        score(weighted, val, 1), rel=1e-12
    )


def test_best_trains_each_later_component_once_per_objective():
    """Every fit its full epochs (4 batches each): component 0 once, the later ones twice."""
    m = flow()
    steps = count_steps(
        lambda: fit_boosted(m, blobs(128), num_components=3, sample_weighting="best", **FIT)
    )
    assert [len(s) for s in steps] == [6 * 4] * (1 + (3 - 1) * len(BEST_OF))


def test_best_refits_on_the_boosting_weights():
    """The second pass refits each component once (on the weighted likelihood), and keeps the
    weights valid and the training NLL from rising."""
    m = flow()
    run = lambda: fit_boosted(  # noqa: E731
        m, blobs(128), num_components=2, sample_weighting="best", second_pass=True, **FIT
    )
    steps = count_steps(run)
    assert len(steps) == 1 + len(BEST_OF) + 2
    assert_valid(m)


def entries(monkeypatch) -> list:
    """(component, objective, its state) at the start of every fit of a component."""
    from pyro_frmdn.infer.components import ComponentTrainer

    starts, call = [], ComponentTrainer.__call__

    def spy(self, c, *args, **kwargs):
        state = copy.deepcopy(self.model.components[c].state_dict())
        starts.append((c, self.sample_weighting, state))
        return call(self, c, *args, **kwargs)

    monkeypatch.setattr(ComponentTrainer, "__call__", spy)
    return starts


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("weighting", ["weighted", "mixture"])
def test_a_copy_starts_where_the_component_before_ended(weighting, monkeypatch):
    starts = entries(monkeypatch)
    m = flow()
    fit_boosted(
        m, blobs(128), num_components=3, component_start="copy", sample_weighting=weighting, **FIT
    )
    assert [c for c, *_ in starts] == [0, 1, 2]
    assert not same(starts[1][2], starts[0][2])  # component 0 learned: the copy is not fresh
    assert same(starts[1][2], m.components[0].state_dict())
    assert same(starts[2][2], m.components[1].state_dict())


def test_each_fit_of_best_starts_as_its_pair_says(monkeypatch):
    """The weighted fit from a copy of the component before; the mixture's from the fresh
    start, the one a plain run of ``component_start="fresh"`` begins with."""
    starts = entries(monkeypatch)
    best = flow()
    fit_boosted(best, blobs(128), num_components=2, sample_weighting="best", **FIT)
    fit_boosted(flow(), blobs(128), num_components=2, sample_weighting="mixture", **FIT)
    assert [(c, w) for c, w, _ in starts] == [
        (0, "best"), (1, "weighted"), (1, "mixture"), (0, "mixture"), (1, "mixture")
    ]  # fmt: skip
    assert same(starts[1][2], best.components[0].state_dict())
    assert same(starts[2][2], starts[4][2]) and not same(starts[2][2], starts[1][2])
