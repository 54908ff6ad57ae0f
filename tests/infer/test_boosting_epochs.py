"""fit_boosted's default training length: epochs chosen from the data's size for a number of
optimizer steps (known answers), an explicit number of epochs used as given, mixtures saved
before rebuilt and continued, and errors."""

import math

import pytest
import torch
from support.boosting import blobs, count_steps, flow

from pyro_frmdn.files import read_torch_file
from pyro_frmdn.infer import (
    component_epochs,
    fit_boosted,
    load_boosted,
    save_boosted,
)
from pyro_frmdn.infer.boosting_options import BEST_OF
from pyro_frmdn.infer.components import EPOCH_RANGE, MIN_STEPS


@pytest.mark.parametrize(
    "n, batch, min_steps, epochs",
    [
        (4000, 128, 5000, 157),  # 32 steps an epoch: ceil(5000 / 32)
        (4097, 128, 5000, 152),  # 33 steps an epoch (the last batch is short): ceil(5000 / 33)
        (2000, 128, 2500, 157),  # 16 steps an epoch: ceil(2500 / 16)
        (2000, 128, 5000, 200),  # 16 steps an epoch: 313 epochs would do, 200 is the ceiling
        (100_000, 128, 5000, 20),  # 782 steps an epoch: 7 epochs would do, 20 is the floor
        (270, 128, 5000, 200),  # 3 steps an epoch: 1667 epochs would do, 200 is the ceiling
        (16, 8, 50, 25),
    ],
)
def test_component_epochs_known_answers(n, batch, min_steps, epochs):
    assert component_epochs(n, batch, min_steps) == epochs
    if min_steps == MIN_STEPS:
        assert component_epochs(n, batch) == epochs


def test_component_epochs_give_at_least_the_steps_within_the_range():
    low, high = EPOCH_RANGE
    for n in [1, 7, 128, 129, 999, 2000, 4000, 12_345, 60_000]:
        for batch in [1, 32, 128, 256]:
            epochs = component_epochs(n, batch)
            steps_per_epoch = math.ceil(n / batch)
            assert low <= epochs <= high
            if epochs < high:
                assert epochs * steps_per_epoch >= MIN_STEPS
            if epochs > low:  # one epoch fewer would not have been enough
                assert (epochs - 1) * steps_per_epoch < MIN_STEPS


@pytest.mark.parametrize(
    "n, batch, min_steps, epochs",
    [(16, 8, 50, 25), (16, 8, 10, 20), (16, 16, 1000, 200)],  # the rule, the floor, the ceiling
)
def test_fit_boosted_trains_each_component_for_the_default_epochs(n, batch, min_steps, epochs):
    m, y, lr = flow(), blobs(n), 1e-2
    opts = dict(batch_size=batch, lr=lr, min_steps=min_steps, progress=False)
    steps = count_steps(lambda: fit_boosted(m, y, num_components=2, **opts))
    per_epoch = math.ceil(n / batch)
    # one optimizer for component 0, one per fit of component 1 (the default "best" tries two)
    assert [len(s) for s in steps] == [epochs * per_epoch] * (1 + len(BEST_OF))
    for s in steps:  # the cosine schedule spans the chosen epochs: lr first, lr / 100 last
        assert s[0] == pytest.approx(lr) and s[-1] == pytest.approx(lr / 100)


def test_an_explicit_number_of_epochs_is_used_as_given():
    m, y = flow(), blobs(16)
    opts = dict(batch_size=8, min_steps=1000, epochs_per_component=3, progress=False)
    history = fit_boosted(m, y, num_components=1, **opts)
    assert history["epochs"] == [3] and len(history["loss"][0]) == 3


def test_bad_training_lengths_raise_clear_errors():
    y = blobs(16)
    for value in [0, 2.5, True, None]:
        with pytest.raises(ValueError, match="min_steps must be an integer >= 1"):
            fit_boosted(flow(), y, num_components=1, min_steps=value, progress=False)
    with pytest.raises(ValueError, match="epochs_per_component must be an integer >= 1"):
        fit_boosted(flow(), y, num_components=1, epochs_per_component=0, progress=False)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        component_epochs(100, 0)
    with pytest.raises(ValueError, match="num_examples must be an integer >= 1"):
        component_epochs(0, 128)


def test_a_mixture_saved_before_is_rebuilt_and_continued_with_the_default_length(tmp_path):
    old = flow()
    fit_boosted(old, blobs(16), num_components=1, epochs_per_component=2, progress=False)
    save_boosted(old, tmp_path / "old.pt")
    payload = read_torch_file(tmp_path / "old.pt", "model")
    assert not {"epochs_per_component", "min_steps"} & set(payload["config"])  # not a model's
    loaded, y = load_boosted(tmp_path / "old.pt"), blobs(16, seed=1)
    assert torch.equal(loaded.log_prob(y), old.log_prob(y))
    opts = dict(batch_size=8, min_steps=50, progress=False)
    steps = count_steps(lambda: fit_boosted(loaded, blobs(16), num_components=2, **opts))
    # only the new component's fits: 25 epochs of 2 steps each
    assert [len(s) for s in steps] == [25 * 2] * len(BEST_OF)
    assert torch.equal(loaded.component_log_probs(y)[:, 0], old.component_log_probs(y)[:, 0])
