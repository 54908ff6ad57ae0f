"""The training engine: batches, gradient clipping, the epoch loop with early stopping."""

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pyro_frmdn.infer.engine import Batches, EpochLoop, History, as_kwargs, clip_gradients


def test_batches_cover_every_row_once_per_pass_in_a_seeded_order():
    y, mask = torch.arange(10.0)[:, None], torch.arange(10) % 2 == 0
    g = torch.Generator().manual_seed(3)
    batches = Batches({"y": y, "mask": mask}, ["y", "x", "mask"], 4, True, g)
    assert len(batches) == 3
    first = [b["y"].flatten().tolist() for b in batches]
    assert sorted(v for b in first for v in b) == list(range(10))
    assert [len(b) for b in first] == [4, 4, 2]
    second = [b["y"].flatten().tolist() for b in batches]
    assert first != second  # a new order every pass
    for b in batches:  # rows stay together
        assert torch.equal(b["mask"], b["y"].flatten().long() % 2 == 0)
    g.manual_seed(3)
    assert [b["y"].flatten().tolist() for b in batches] == first  # the generator is the state
    ordered = Batches(y, ["y"], 4, False)
    assert torch.equal(torch.cat([b["y"] for b in ordered]), y)


def test_batches_take_a_dataloader_and_refuse_bad_data():
    loader = DataLoader(TensorDataset(torch.ones(6, 2)), batch_size=4)
    assert [b["y"].shape[0] for b in Batches(loader, ["y"], 99, True)] == [4, 2]
    with pytest.raises(ValueError, match="different lengths"):
        Batches({"y": torch.ones(3, 2), "mask": torch.ones(4)}, ["y", "mask"], 2, False)
    with pytest.raises(ValueError, match="empty"):
        Batches(torch.ones(0, 2), ["y"], 2, False)
    with pytest.raises(ValueError, match=r"unknown data keys \['z'\]"):
        as_kwargs({"z": torch.ones(1)}, ["y"])
    with pytest.raises(ValueError, match="got 3 data tensors"):
        as_kwargs((torch.ones(1),) * 3, ["y", "mask"])


def test_clip_value_clamps_elements_and_clip_norm_scales_the_global_norm():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    a.grad, b.grad = torch.tensor([3.0, -40.0]), torch.tensor([4.0])
    assert clip_gradients([a, b]) is None  # nothing asked: nothing touched, no norm computed
    assert torch.equal(a.grad, torch.tensor([3.0, -40.0]))
    norm = clip_gradients([a, b], clip_value=10.0)
    assert norm is None and torch.equal(a.grad, torch.tensor([3.0, -10.0]))
    norm = clip_gradients([a, b], clip_norm=1.0)  # the norm after the clamp: sqrt(9+100+16)
    assert math.isclose(float(norm), math.sqrt(125.0), rel_tol=1e-6)
    scaled = torch.cat([a.grad, b.grad])
    assert math.isclose(float(scaled.norm()), 1.0, rel_tol=1e-5)
    assert torch.allclose(scaled / scaled.norm(), torch.tensor([3.0, -10.0, 4.0]) / 125**0.5)
    c = torch.zeros(1, requires_grad=True)  # no gradient: left out
    assert math.isclose(float(clip_gradients([a, c], clip_norm=math.inf)), float(a.grad.norm()))


def _module():
    return torch.nn.Linear(1, 1)


def test_the_loop_keeps_the_best_epoch_stops_early_and_restores():
    m = _module()
    scores = iter([3.0, 2.0, 2.5, 2.4, 2.6, 1.0])
    weights = iter(range(100))

    def train_epoch(epoch):
        with torch.no_grad():
            m.weight.fill_(next(weights))  # the parameters after each epoch: 0, 1, 2, ...
        return 10.0 - epoch

    calls = []
    loop = EpochLoop(m, epochs=6, patience=3)
    history = loop.run(train_epoch, lambda: next(scores), lambda lp, imp, last: calls.append(imp))
    assert history["epoch"] == [1, 2, 3, 4, 5] and loop.stopped  # 3 epochs without a better 2.0
    assert history["val_nll"] == [3.0, 2.0, 2.5, 2.4, 2.6]
    assert calls == [True, True, False, False, False]
    assert loop.best["epoch"] == 2 and loop.best["nll"] == 2.0
    assert loop.restore() and float(m.weight.detach()) == 1.0  # epoch 2's parameters
    assert loop.run(train_epoch, lambda: 0.0)["epoch"] == [1, 2, 3, 4, 5]  # stopped stays stopped


def test_a_nan_score_is_never_the_best_and_without_validation_the_train_loss_is_scored():
    m = _module()
    loop = EpochLoop(m, epochs=3, keep_best="val")
    scores = iter([math.nan, 5.0, 6.0])
    loop.run(lambda e: 1.0, lambda: next(scores))
    assert loop.best["epoch"] == 2 and loop.bad_epochs == 1
    plain = EpochLoop(m, epochs=3, keep_best="val")
    plain.run(lambda e: [4.0, 3.0, 3.5][e - 1])
    assert plain.best["epoch"] == 2 and plain.best["model"] is None  # scored, not kept
    assert not plain.restore()


def test_a_loop_resumes_from_its_plain_state():
    m = _module()
    whole = EpochLoop(m, epochs=4, patience=2)
    losses = [5.0, 4.0, 4.5, 3.0]
    whole.run(lambda e: losses[e - 1])
    half = EpochLoop(m, epochs=2, patience=2)
    half.run(lambda e: losses[e - 1])
    state = {"history": History(list(half.history.records)), "best": half.best, "bad_epochs": 0}
    rest = EpochLoop(m, 4, 2, history=state["history"], best=state["best"])
    rest.run(lambda e: losses[e - 1])
    assert rest.history["train_nll"] == whole.history["train_nll"]
    assert rest.best["epoch"] == whole.best["epoch"] == 4


def test_history_writes_json_and_csv(tmp_path):
    h = History([{"epoch": 1, "train_nll": 2.5, "val_nll": 3.0}])
    h.to_json(tmp_path / "h.json")
    h.to_csv(tmp_path / "h.csv")
    assert (tmp_path / "h.json").read_text().count('"train_nll": 2.5') == 1
    assert (tmp_path / "h.csv").read_text().splitlines() == ["epoch,train_nll,val_nll", "1,2.5,3.0"]
    assert not list(tmp_path.glob("*.tmp"))


def test_the_step_count_falls_back_to_the_first_tensor():
    from pyro_frmdn.infer.engine import count_steps as _count

    frames = torch.zeros(3, 5, 1, 4, 4)
    assert _count({"frames": frames, "actions": None}) == 15
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[0, 3:] = False
    assert _count({"frames": frames, "mask": mask}) == 13
    assert _count({"x": torch.zeros(7, 2)}) == 7
    with pytest.raises(ValueError, match="observations"):
        _count({"actions": None})
