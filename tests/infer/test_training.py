"""fit / evaluate: learning, early stopping, checkpoints, exact resume, errors."""

import json
import math

import pyro
import pytest
import torch
from pyro.distributions.util import is_validation_enabled
from support.training import banana, tiny

import pyro_frmdn as pf
from pyro_frmdn.data import inverse_sine, make_task
from pyro_frmdn.infer import load_checkpoint


def fit_task(task, model, epochs=15):
    y, y_val = make_task(task, n=256, steps=12, seed=0), make_task(task, n=128, steps=12, seed=1)
    pf.fit(model, y, y_val, epochs=epochs, batch_size=32, lr=1e-2, progress=False)
    return pf.evaluate(model, y_val)


def test_rmdn_and_frmdn_fit_the_branching_task_far_better_than_one_gaussian():
    torch.manual_seed(0)
    single = fit_task("branching", pf.RMDN(2, hidden_dim=32, num_components=1))
    torch.manual_seed(0)
    rmdn = fit_task("branching", pf.RMDN(2, hidden_dim=32, num_components=3, rank=1))
    torch.manual_seed(0)
    frmdn = fit_task(
        "branching", pf.FRMDN(2, hidden_dim=32, num_components=3, rank=1, flow_layers=2)
    )
    # measured: single -1.46, RMDN -2.17, FRMDN -2.06 nats per step
    assert rmdn < single - 0.4
    assert frmdn < single - 0.4


def test_frmdn_beats_rmdn_where_each_step_is_a_banana():
    torch.manual_seed(0)
    rmdn = fit_task("banana", pf.RMDN(2, hidden_dim=32, num_components=3, rank=1))
    torch.manual_seed(0)
    frmdn = fit_task("banana", pf.FRMDN(2, hidden_dim=32, num_components=3, rank=1, flow_layers=2))
    # measured: RMDN 0.73, FRMDN -0.19 nats per step (a single Gaussian: 2.11)
    assert frmdn < rmdn - 0.4


def test_mdn_fits_the_inverse_sine_where_least_squares_fails():
    x, y = inverse_sine(1500, seed=0)
    xt, yt = inverse_sine(1000, seed=1)
    torch.manual_seed(0)
    mdn = pf.MDN(1, 1, num_components=5, hidden_dims=[32])
    # at this learning rate the training NLL swings by 0.5 nats from epoch to epoch, and where the
    # 50th epoch lands depends on float rounding: keep the best validation epoch, as users do
    val = inverse_sine(500, seed=2)
    pf.fit(mdn, (x, y), val, epochs=50, batch_size=300, lr=2e-2, progress=False)
    mdn_nll = pf.evaluate(mdn, (xt, yt))
    net = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(1500):
        opt.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        var = (net(x) - y).square().mean()
        mse_nll = (0.5 * (net(xt) - yt).square() / var + 0.5 * torch.log(2 * math.pi * var)).mean()
    # converged (150 epochs): MDN -0.49 nats, the Gaussian around the least-squares fit -0.08
    assert mdn_nll < float(mse_nll) - 0.3
    # x = 0.5 has three inverses, y = 0.21, 0.5, 0.79, with weights 1/|dx/dy| = 0.27, 0.45, 0.27:
    # the MDN puts mass on the outer branches; least squares predicts the middle
    draws = mdn.sample(2000, torch.full((1, 1), 0.5))[:, 0, 0]
    assert (draws < 0.35).float().mean() > 0.15 and (draws > 0.65).float().mean() > 0.15
    assert 0.3 < float(net(torch.full((1, 1), 0.5))) < 0.7


def test_history_records_and_files(tmp_path):
    m = tiny()
    h = pf.fit(m, banana(), banana(16, seed=1), epochs=2, batch_size=16, progress=False)
    assert h["epoch"] == [1, 2] and all(math.isfinite(v) for v in h["val_nll"])
    h.to_json(tmp_path / "h.json")
    h.to_csv(tmp_path / "h.csv")
    assert json.loads((tmp_path / "h.json").read_text())[1]["epoch"] == 2
    assert (tmp_path / "h.csv").read_text().splitlines()[0].startswith("epoch,train_nll,val_nll")


def test_resume_continues_exactly(tmp_path):
    y, y_val = banana(), banana(16, seed=1)
    kw = dict(batch_size=16, lr=1e-2, progress=False, seed=3)
    straight = tiny()
    h_straight = pf.fit(straight, y, y_val, epochs=3, checkpoint=tmp_path / "a", **kw)
    first = tiny()
    pf.fit(first, y, y_val, epochs=2, checkpoint=tmp_path / "b", **kw)
    resumed = tiny(seed=99)  # different init: everything must come from the checkpoint
    h_resumed = pf.fit(resumed, y, y_val, epochs=3, checkpoint=tmp_path / "b", resume=True, **kw)
    for key in ("train_nll", "val_nll"):
        assert h_resumed[key] == h_straight[key]
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), n


def test_early_stopping_restores_the_best_parameters(tmp_path):
    m = tiny()
    h = pf.fit(
        m,
        banana(),
        banana(16, seed=1),
        epochs=50,
        batch_size=16,
        lr=0.3,
        patience=2,
        checkpoint=tmp_path,
        progress=False,
    )
    best_epoch = min(range(len(h)), key=lambda i: h["val_nll"][i])
    assert len(h) == best_epoch + 3  # stopped two epochs after the best
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == best_epoch + 1
    assert pf.evaluate(m, banana(16, seed=1)) == pytest.approx(h["val_nll"][best_epoch], rel=1e-5)


def test_data_forms_masks_and_dataloaders_agree():
    y, mask = pf.pad_sequences([torch.randn(n, 2) for n in (6, 4, 5, 6)])
    m = tiny()
    a = pf.evaluate(m, {"y": y, "mask": mask})
    b = pf.evaluate(m, (y, None, mask))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(y), batch_size=3)
    c = pf.evaluate(m, loader)
    assert a == pytest.approx(b)
    assert c == pytest.approx(pf.evaluate(m, y))
    assert float(-m.log_prob(y, mask=mask).sum() / mask.sum()) == pytest.approx(a, rel=1e-6)
    assert pf.evaluate(m, y, bits_per_dim=True) == pytest.approx(
        pf.evaluate(m, y) / (2 * math.log(2))
    )


def test_fit_rejects_bad_data_and_options():
    m = tiny()
    y = banana()
    with pytest.raises(ValueError, match="unknown data keys"):
        pf.fit(m, {"y": y, "z": y}, epochs=1, progress=False)
    with pytest.raises(ValueError, match="different lengths"):
        pf.fit(m, {"y": y, "mask": torch.ones(3, 6, dtype=torch.bool)}, epochs=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        pf.fit(m, y[:0], epochs=1, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        pf.fit(m, y.index_fill(0, torch.tensor([5]), math.nan), epochs=1, progress=False)
    with pytest.raises(ValueError, match="resume"):
        pf.fit(m, y, epochs=1, resume=True, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pf.fit(m, y, epochs=1, device="cuda", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_and_sample_on_cuda():
    m = tiny()
    pf.fit(m, banana(), epochs=1, batch_size=16, device="cuda", progress=False)
    assert m.start.device.type == "cuda"
    assert m.sample(3, 4).device.type == "cuda"


def test_clip_value_none_is_plain_adam_clip_norm_scales_the_global_norm_and_a_clamp_changes_steps():
    import copy

    y = banana(n=32)
    start = tiny(seed=3)

    def by_hand(clip_norm=None):  # Adam as ClippedAdam writes it (eps added to the root of v)
        m = copy.deepcopy(start)
        params = list(m.parameters())
        avg = [torch.zeros_like(p) for p in params]
        avg_sq = [torch.zeros_like(p) for p in params]
        for step in (1, 2):  # two epochs of one full batch: the order does not change the sum
            grads = torch.autograd.grad(-m.log_prob(y).sum(), params)
            if clip_norm is not None:  # all gradients scaled together to a global norm <= c
                norm = torch.cat([g.flatten() for g in grads]).norm()
                grads = [g * min(1.0, clip_norm / (float(norm) + 1e-6)) for g in grads]
            size = 0.05 * math.sqrt(1 - 0.999**step) / (1 - 0.9**step)
            with torch.no_grad():
                for p, g, a, v in zip(params, grads, avg, avg_sq, strict=True):
                    a.mul_(0.9).add_(0.1 * g)
                    v.mul_(0.999).add_(0.001 * g * g)
                    p.sub_(size * a / (v.sqrt() + 1e-8))
        return torch.cat([p.detach().flatten() for p in params])

    def fitted(**clip):
        m = copy.deepcopy(start)
        pf.fit(m, y, epochs=2, batch_size=32, lr=0.05, progress=False, **clip)
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    expected = by_hand()
    assert torch.allclose(fitted(clip_value=None), expected, atol=1e-5)
    assert not torch.allclose(fitted(clip_value=1e-3), expected, atol=1e-3)
    # the gradient's global norm here is about 40: a bound of 0.5 rescales every step
    clipped = by_hand(clip_norm=0.5)
    assert not torch.allclose(clipped, expected, atol=1e-3)
    assert torch.allclose(fitted(clip_value=None, clip_norm=0.5), clipped, atol=1e-5)


def test_clip_norm_none_warns_that_the_clamp_is_now_clip_value_and_bad_clips_are_refused():
    y = banana(n=8)
    with pytest.warns(FutureWarning, match="clip_value"):
        pf.fit(tiny(), y, epochs=1, clip_norm=None, progress=False)
    for bad in ({"clip_norm": 0.0}, {"clip_value": -1.0}, {"lr": math.nan}, {"lr": -1e-3}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            pf.fit(tiny(), y, epochs=1, progress=False, **bad)


@pytest.mark.parametrize(
    "options",
    [
        dict(patience=0),
        dict(patience=-2),
        dict(lr=-1.0),
        dict(lr=0.0),
        dict(lr=math.nan),
        dict(lr=math.inf),
        dict(lr_decay=0.0),
        dict(lr_decay=-0.5),
        dict(batch_size=0),
        dict(batch_size=2.5),
        dict(epochs=-1),
        dict(checkpoint_every=0),
        dict(clip_norm=0.0),
        dict(clip_value=-1.0),
        dict(patience=True),
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_options_that_would_do_nothing_or_harm_are_refused_with_the_rule(options):
    name = next(iter(options))
    m = tiny()
    before = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(ValueError, match=f"fit: {name} must be"):
        pf.fit(m, banana(8), progress=False, **{"epochs": 1, **options})
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))


def test_evaluate_refuses_a_zero_batch_size_and_data_with_nothing_to_score():
    m, y = tiny(), banana(8)
    with pytest.raises(ValueError, match="evaluate: batch_size must be an integer >= 1"):
        pf.evaluate(m, y, batch_size=0)
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(y[:0]), batch_size=4)
    with pytest.raises(ValueError, match="no scored steps"):
        pf.evaluate(m, empty)
    with pytest.raises(ValueError, match="no batches"):
        pf.fit(m, empty, epochs=1, progress=False)


def test_resume_refuses_what_would_silently_change_the_run(tmp_path):
    y = banana(16)
    kw = dict(batch_size=8, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist: nothing to resume"):
        pf.fit(tiny(), y, epochs=2, checkpoint=tmp_path / "nowhere", resume=True, **kw)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no last\.pt"):
        pf.fit(tiny(), y, epochs=2, checkpoint=tmp_path / "empty", resume=True, **kw)
    pf.fit(tiny(), y, epochs=2, lr=1e-2, checkpoint=tmp_path / "run", **kw)
    saved = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(ValueError, match=r"trained with lr=0.01; resuming with lr=0.001"):
        pf.fit(tiny(), y, epochs=3, lr=1e-3, checkpoint=tmp_path / "run", resume=True, **kw)
    with pytest.raises(ValueError, match=r"trained with optimizer='ClippedAdam'"):
        other = pyro.optim.Adam({"lr": 1e-2})
        pf.fit(tiny(), y, epochs=3, lr=1e-2, optimizer=other, checkpoint=tmp_path / "run",
               resume=True, **kw)  # fmt: skip
    with pytest.raises(ValueError, match="already trained 2 epochs; epochs=1 is the total"):
        pf.fit(tiny(), y, epochs=1, lr=1e-2, checkpoint=tmp_path / "run", resume=True, **kw)
    assert (tmp_path / "run" / "last.pt").read_bytes() == saved  # nothing was written
    h = pf.fit(tiny(), y, epochs=3, lr=1e-2, checkpoint=tmp_path / "run", resume=True, **kw)
    assert h["epoch"] == [1, 2, 3]


def _ruin_from(step_number, monkeypatch, loss=math.nan):
    """Make fit's SVI step ruin the parameters (NaN) from its ``step_number``-th call on."""
    import pyro_frmdn.infer.training as training

    step, calls = training.svi_step, []

    def ruined(elbo, model, *args, **kwargs):
        calls.append(1)
        out = step(elbo, model, *args, **kwargs)
        if len(calls) < step_number:
            return out
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(math.nan)
        return loss

    monkeypatch.setattr(training, "svi_step", ruined)


def test_a_diverged_run_restores_its_best_epoch_without_a_checkpoint_and_says_how_to_go_on(
    monkeypatch,
):
    y = banana(16)
    kw = dict(batch_size=8, lr=1e-2, progress=False)  # two steps an epoch
    clean = tiny()
    h = pf.fit(clean, y, epochs=2, **kw)
    assert h["train_nll"][1] < h["train_nll"][0]  # epoch 2 is the best so far
    _ruin_from(5, monkeypatch)  # the first step of epoch 3
    m = tiny()
    with pytest.raises(FloatingPointError, match="epoch 3, step 1") as e:
        pf.fit(m, y, epochs=4, **kw)
    assert "the parameters of epoch 2" in str(e.value) and "smaller lr" in str(e.value)
    for a, b in zip(m.parameters(), clean.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_divergence_in_the_first_epoch_returns_to_the_starting_parameters(monkeypatch):
    _ruin_from(1, monkeypatch)
    m = tiny()
    start = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(FloatingPointError, match="the parameters it started from are restored"):
        pf.fit(m, banana(16), epochs=2, batch_size=8, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(start, m.parameters(), strict=True))


def test_with_pyro_validation_a_diverged_step_is_the_package_error(monkeypatch):
    # the ruined step itself reports a finite loss: the next one meets NaN weights, which Pyro's
    # validation of the distribution refuses ("Expected parameter ..."); fit says what happened
    _ruin_from(2, monkeypatch, loss=1.0)
    assert is_validation_enabled()
    with pytest.raises(FloatingPointError, match="training diverged"):
        pf.fit(tiny(), banana(16), epochs=2, batch_size=8, progress=False)


def _rates(scheduler) -> list[float]:
    return [g["lr"] for s in scheduler.optim_objs.values() for g in s.optimizer.param_groups]


def test_a_pyro_learning_rate_scheduler_is_stepped_every_epoch():
    y = banana(16)
    decaying = pyro.optim.ExponentialLR(
        {"optimizer": torch.optim.Adam, "optim_args": {"lr": 0.1}, "gamma": 0.5}
    )
    pf.fit(tiny(), y, epochs=3, batch_size=8, optimizer=decaying, progress=False)
    rates = _rates(decaying)  # one optimizer per parameter in Pyro
    assert rates and rates == pytest.approx([0.1 * 0.5**3] * len(rates))
    plateau = pyro.optim.ReduceLROnPlateau(
        {"optimizer": torch.optim.Adam, "optim_args": {"lr": 0.1}, "patience": 0, "factor": 0.5}
    )
    # a learning rate of 0.1 overshoots: once the validation NLL stops falling, the rate halves
    h = pf.fit(tiny(), y, banana(8, seed=1), epochs=6, batch_size=8, optimizer=plateau,
               progress=False)  # fmt: skip
    best, worse = math.inf, 0
    for v in h["val_nll"]:  # torch's rule: no gain of 1e-4 (relative) on the best is a plateau
        if v < best * (1 - 1e-4):
            best = v
        else:
            worse += 1
    rates = _rates(plateau)
    assert worse >= 1 and rates == pytest.approx([0.1 * 0.5**worse] * len(rates))


def test_a_learning_rate_that_overflows_the_weights_is_a_divergence_not_a_pyro_error():
    m = tiny()
    start = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(FloatingPointError, match=r"training diverged.*smaller lr"):
        pf.fit(m, banana(32), epochs=3, batch_size=8, lr=1e30, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(start, m.parameters(), strict=True))


def test_an_explicit_negative_clip_norm_is_refused():
    with pytest.raises(ValueError, match="clip_norm must be None or a finite number > 0"):
        pf.fit(tiny(), banana(8), epochs=1, clip_norm=-1.0, progress=False)


def test_fit_takes_numpy_float64_and_integer_data_with_one_note():
    import warnings

    import numpy as np

    y32 = banana(16)
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        a = tiny()
        pf.fit(a, y32.double().numpy(), y32[:4].double().numpy(), epochs=2, batch_size=8,
               progress=False)  # fmt: skip
    assert [str(n.message) for n in notes] == [
        "fit: y from torch.float64 to torch.float32, the model's dtype (converted once)"
    ]
    b = tiny()
    pf.fit(b, y32, y32[:4], epochs=2, batch_size=8, progress=False)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)  # float32 values survive the float64 round trip exactly
    counts = np.arange(16 * 6 * 2).reshape(16, 6, 2) % 5  # integer data, a list of lists
    with pytest.warns(UserWarning, match=r"y from torch.int64 to torch.float32"):
        pf.fit(tiny(), {"y": counts.tolist()}, epochs=1, batch_size=8, progress=False)
    with pytest.raises(TypeError, match="y must be a tensor or an array of numbers"):
        pf.fit(tiny(), {"y": [["a", "b"]]}, epochs=1, progress=False)


def test_fit_leaves_uint8_frames_to_the_world_model():
    torch.manual_seed(0)
    w = pf.WorldModel((3, 8, 8), latent_dim=2, action_dim=1, channels=(4,), features=4,
                      hidden_dim=4)  # fmt: skip
    frames = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)  # as rollouts are stored
    h = pf.fit(w, {"frames": frames, "actions": torch.randn(2, 3, 1)}, epochs=1,
               clip_value=None, progress=False)  # fmt: skip
    assert math.isfinite(h["train_nll"][0])
