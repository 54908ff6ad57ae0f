"""sketch-rnn's augmentation: stretched axes, points left out where the others stay."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import pyro_frmdn as pf
from pyro_frmdn.data import StrokeAugmentation, augment_stroke5, from_stroke5, to_stroke5


def drawings(n=6, seed=0):
    """Random drawings of 1-4 strokes of 1-9 points, padded to one length with end rows."""
    rng = np.random.default_rng(seed)
    ys = []
    for _ in range(n):
        rows = []
        for _ in range(rng.integers(1, 5)):
            k = int(rng.integers(1, 10))
            stroke = np.c_[rng.normal(size=(k, 2)), np.zeros(k)]
            stroke[-1, 2] = 1
            rows.append(stroke)
        ys.append(torch.tensor(np.concatenate(rows)))
    y, mask = pf.models.pad_sequences(ys)
    return to_stroke5(y, mask, max_len=y.shape[1] + 3).float()


def positions(s):
    """Each drawing's points (absolute positions) and pen-ups, before its first end row."""
    d = from_stroke5(s)
    out = []
    for y, m in zip(d["y"], d["mask"], strict=True):
        y = y[m].double()
        out.append((torch.cumsum(y[:, :2], 0), y[:, 2]))
    return out


def test_nothing_to_do_is_the_identity():
    s = drawings()
    assert torch.equal(augment_stroke5(s, scale=0.0, drop=0.0), s)


def test_the_points_that_stay_are_drawn_where_they_were():
    s = drawings(n=40).double()  # float64: the merged moves add exactly enough
    out = augment_stroke5(s, scale=0.0, drop=0.5, generator=torch.Generator().manual_seed(1))
    assert out.shape == s.shape
    dropped = 0
    for (p, up), (q, up_out) in zip(positions(s), positions(out), strict=True):
        # every kept point is one of the originals, in order; the lifts and the end all stay
        match = [int(torch.cdist(qi[None], p).argmin()) for qi in q]
        assert match == sorted(set(match))
        torch.testing.assert_close(q, p[match], rtol=0, atol=1e-12)
        assert torch.equal(up_out, up[match]) and up_out.sum() == up.sum()
        assert match[-1] == len(p) - 1
        dropped += len(p) - len(q)
        # the first two points of every stroke stay
        starts = [0] + [i + 1 for i in range(len(up) - 1) if up[i] == 1]
        for i in starts:
            assert i in match and (i + 1 >= len(p) or i + 1 in match)
    assert dropped > 0
    assert bool((out[..., 4] == 1).cumsum(1).ge(1).eq(out[..., 4] == 1).all())  # end rows last


def test_a_known_drawing_loses_its_inner_points():
    y = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1],
                       [0, 2, 0], [0, 1, 0], [0, 1, 1]]])  # fmt: skip
    out = augment_stroke5(to_stroke5(y), scale=0.0, drop=1.0)
    # stroke 1 keeps its move, first line and lift (points 0, 1, 4); stroke 2 all three
    expected = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [3, 0, 1], [0, 2, 0], [0, 1, 0],
                              [0, 1, 1]]])  # fmt: skip
    assert torch.equal(from_stroke5(out)["y"], expected)


def test_each_drawing_is_stretched_by_one_factor_per_axis():
    s = drawings(n=200, seed=3)
    out = augment_stroke5(s, scale=0.15, drop=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[..., 2:], s[..., 2:])
    ratio = out[..., :2] / s[..., :2]
    moved = s[..., :2] != 0
    per_drawing = [
        r[m.expand_as(r)].view(-1) for r, m in zip(ratio[..., 0], moved[..., 0], strict=True)
    ]
    factors = torch.stack([f[0] for f in per_drawing if len(f)])
    for f in per_drawing:
        torch.testing.assert_close(f, f[:1].expand_as(f))
    assert float(factors.min()) >= 0.85 and float(factors.max()) <= 1.15
    assert float(factors.std()) > 0.05  # spread over the interval (uniform: sd 0.087)
    fx, fy = ratio[:, 1, 0], ratio[:, 1, 1]
    both = moved[:, 1].all(-1)
    assert not torch.allclose(fx[both], fy[both])  # independent per axis


def test_the_draws_repeat_with_a_seed():
    s = drawings()
    a = augment_stroke5(s, generator=torch.Generator().manual_seed(5))
    b = augment_stroke5(s, generator=torch.Generator().manual_seed(5))
    c = augment_stroke5(s, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale=1.0), r"scale must be a number in \[0, 1\.0\)"),
        (dict(scale=-0.1), "scale"),
        (dict(drop=1.5), r"drop must be a number in \[0, 1\.0\]"),
        (dict(drop=float("nan")), "drop"),
    ],
)
def test_bad_rates_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augment_stroke5(drawings(), **kwargs)
    with pytest.raises(ValueError, match=match):
        StrokeAugmentation(**kwargs)


def test_bad_drawings_are_refused():
    s = drawings()
    with pytest.raises(ValueError, match=r"strokes must have shape \(N, L, 5\)"):
        augment_stroke5(s[..., :4])
    bad = s.clone()
    bad[0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="strokes has NaN"):
        augment_stroke5(bad)
    bad = s.clone()
    bad[0, 0, 2:] = 1
    with pytest.raises(ValueError, match="one-hot"):
        augment_stroke5(bad)


def test_a_loader_feeds_fit_augmented_batches():
    s = drawings(n=8)
    collate = StrokeAugmentation(seed=0)
    loader = DataLoader(list(s), batch_size=4, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["y"].shape == (4, *s.shape[1:]) and not torch.equal(batch["y"], s[:4])
    with pytest.raises(ValueError, match="one shape"):
        collate([s[0], s[1, :-1]])
    vae = pf.SketchVAE(latent_dim=2, encoder_dim=4, hidden_dim=8, num_components=2)
    history = pf.fit(vae, loader, epochs=2, lr=1e-2, progress=False)
    assert len(history) == 2 and all(np.isfinite(history["train_nll"]))
