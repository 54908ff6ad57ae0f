"""Stroke-5: conversion to and from (dx, dy, pen_up), sketch-rnn's .npz files, KanjiVG."""

import numpy as np
import pytest
import torch
from support.real_data import needs

from pyro_frmdn.data.kanji import kanji_strokes
from pyro_frmdn.data.stroke5 import from_stroke5, kanji_stroke5, quickdraw_npz, to_stroke5


def random_strokes(n=6, t=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    lengths[0] = t
    mask = torch.arange(t) < lengths[:, None]
    y = torch.randn(n, t, 3, generator=g, dtype=torch.float64)
    y[..., 2] = (torch.rand(n, t, generator=g) < 0.3).double()
    return y * mask[..., None], mask


def test_stroke5_rows_are_the_pen_one_hot_then_end_rows():
    y = torch.tensor([[[1.0, 2.0, 0.0], [3.0, 4.0, 1.0]], [[5.0, 6.0, 1.0], [0.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    s = to_stroke5(y, mask, max_len=4)
    expected = torch.tensor([
        [[1.0, 2, 1, 0, 0], [3, 4, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]],
        [[5.0, 6, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]],
    ])  # fmt: skip
    assert torch.equal(s, expected)


@pytest.mark.parametrize("max_len", [None, 9, 15])
def test_round_trip_is_exact(max_len):
    y, mask = random_strokes()
    s = to_stroke5(y, mask, max_len)
    assert s.shape == (6, max_len or 10, 5) and s.dtype == torch.float64
    back = from_stroke5(s)
    assert torch.equal(back["mask"], mask) and torch.equal(back["y"], y)
    assert torch.equal(to_stroke5(back["y"], back["mask"], s.shape[1]), s)


def test_conversion_refuses_bad_input():
    y, mask = random_strokes()
    with pytest.raises(ValueError, match="max_len must be an integer >= the longest"):
        to_stroke5(y, mask, max_len=8)
    with pytest.raises(ValueError, match=r"shape \(N, T, 3\)"):
        to_stroke5(y[..., :2], mask)
    with pytest.raises(ValueError, match="mask must be a bool"):
        to_stroke5(y, mask.float())
    bad = y.clone()
    bad[0, 0, 2] = 0.5
    with pytest.raises(ValueError, match="pen_up"):
        to_stroke5(bad, mask)
    bad = y.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        to_stroke5(bad, mask)
    s = to_stroke5(y, mask)
    s[0, 0, 2:] = torch.tensor([1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="one-hot"):
        from_stroke5(s)
    with pytest.raises(ValueError, match=r"\(N, L, 5\)"):
        from_stroke5(s[..., :4])


def write_npz(path, rng):
    def drawing(n):
        d = np.zeros((n, 3), dtype=np.int16)
        d[:, :2] = rng.integers(-40, 40, size=(n, 2))
        d[rng.random(n) < 0.3, 2] = 1
        d[-1, 2] = 1
        return d

    splits = {}
    for key, sizes in (("train", [5, 8, 3]), ("valid", [4, 6]), ("test", [7])):
        arr = np.empty(len(sizes), dtype=object)
        arr[:] = [drawing(n) for n in sizes]
        splits[key] = arr
    np.savez(path, **splits)
    return splits


def test_quickdraw_npz_reads_each_split_scaled_by_the_train_offsets(tmp_path):
    splits = write_npz(tmp_path / "cat.npz", np.random.default_rng(0))
    scale = np.concatenate([d[:, :2].ravel() for d in splits["train"]]).astype(float).std()
    for split, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        data, got = quickdraw_npz(tmp_path / "cat.npz", split)
        assert got == pytest.approx(scale, rel=1e-12)
        back = from_stroke5(data["y"])
        for i, d in enumerate(splits[key]):
            n = len(d)
            assert int(back["mask"][i].sum()) == n
            assert np.allclose(back["y"][i, :n, :2].numpy() * got, d[:, :2], atol=1e-4)
            assert np.array_equal(back["y"][i, :n, 2].numpy(), d[:, 2])
    data, _ = quickdraw_npz(tmp_path / "cat.npz", "train", scale=2.0, max_steps=5)
    assert data["y"].shape[0] == 2  # the drawing of 8 steps is left out
    with pytest.raises(ValueError, match="scale must be"):
        quickdraw_npz(tmp_path / "cat.npz", scale=-1.0)
    with pytest.raises(ValueError, match="split must be one of"):
        quickdraw_npz(tmp_path / "cat.npz", "valid")


class _Exploit:
    def __reduce__(self):
        return (print, ("ran code",))


def test_quickdraw_npz_refuses_corrupt_and_code_carrying_files(tmp_path, capsys):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"not a readable sketch-rnn \.npz"):
        quickdraw_npz(tmp_path / "junk.npz")
    arr = np.empty(1, dtype=object)
    arr[0] = _Exploit()
    np.savez(tmp_path / "evil.npz", train=arr)
    with pytest.raises(ValueError, match=r"refused to load builtins\.print"):
        quickdraw_npz(tmp_path / "evil.npz")
    assert "ran code" not in capsys.readouterr().out
    np.savez(tmp_path / "nosplit.npz", other=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="has no 'train' array"):
        quickdraw_npz(tmp_path / "nosplit.npz")
    bad = np.empty(1, dtype=object)
    bad[0] = np.zeros((4, 2), dtype=np.int16)
    np.savez(tmp_path / "bad.npz", train=bad)
    with pytest.raises(ValueError, match="not stroke-3 rows"):
        quickdraw_npz(tmp_path / "bad.npz")


def _svg(paths):
    body = "".join(f'<path id="s{i}" d="{d}"/>' for i, d in enumerate(paths))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="109" height="109" '
        f'viewBox="0 0 109 109"><g>{body}</g></svg>'
    )


def test_kanji_stroke5_is_kanji_strokes_in_stroke5_with_one_scale(tmp_path):
    needs("svgpathtools")
    (tmp_path / "04e8c.svg").write_text(_svg(["M10,20 L30,20", "M10,60 C20,60 30,60 40,60"]))
    (tmp_path / "04e00.svg").write_text(_svg(["M10,50 L90,50"]))
    common = dict(characters="二一", spacing=5.0, svg_dir=tmp_path, cache_dir=tmp_path)
    raw = kanji_strokes(scale=1.0, **common)
    data, scale = kanji_stroke5(scale=None, split=None, **common)
    train = kanji_strokes("train", scale=1.0, **common)
    offsets = train["y"][train["mask"]][:, :2].double().numpy()
    assert scale == pytest.approx(offsets.std(), rel=1e-6)
    back = from_stroke5(data["y"])
    assert torch.equal(back["mask"], raw["mask"])
    assert torch.allclose(back["y"][..., :2] * scale, raw["y"][..., :2], atol=1e-5)
    assert torch.equal(back["y"][..., 2], raw["y"][..., 2])
    data, _ = kanji_stroke5(scale=2.0, grid=1.0, **common)  # dequantised within the cells
    back = from_stroke5(data["y"])
    rounded = kanji_strokes(scale=1.0, grid=1.0, **common)
    spread = (back["y"][..., :2] * 2.0 - rounded["y"][..., :2]).abs()
    assert bool((spread <= 0.5 + 1e-5).all()) and bool((spread[back["mask"]] > 0).any())
    with pytest.raises(ValueError, match="scale must be"):
        kanji_stroke5(scale=0.0, **common)
