"""The cache folder of derived data arrays, and the lookup of the optional data packages."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType

import numpy as np

from ..files import atomic_write

__all__ = [
    "CACHE_ENV",
    "INSTALL_HINT",
    "cache_folder",
    "cached_arrays",
    "check_array",
    "package_file",
    "package_version",
    "require",
]

CACHE_ENV = "PYRO_FRMDN_CACHE"
INSTALL_HINT = "pip install 'pyro-frmdn[data]'"
FORMAT = 1  # bump when the layout of cached arrays changes: old files are then ignored

Arrays = dict[str, np.ndarray]


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    """The folder of cached arrays.

    In order: ``cache_dir`` if given, else the environment variable ``PYRO_FRMDN_CACHE``, else
    the user cache folder of ``platformdirs`` (``~/.cache/pyro-frmdn`` on Linux), else
    ``~/.cache/pyro-frmdn``. The folder is created when the first file is written.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    try:
        import platformdirs
    except ImportError:
        return Path.home() / ".cache" / "pyro-frmdn"
    return Path(platformdirs.user_cache_dir("pyro-frmdn", appauthor=False))


def _missing(package: str, purpose: str, err: Exception | None = None) -> ImportError:
    return ImportError(
        f"loading {purpose} needs the package {package!r}, which is not installed: "
        f"{INSTALL_HINT} (or pip install {package})"
        + ("" if err is None else f" [{type(err).__name__}: {err}]")
    )


def require(module: str, package: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise an ImportError that says which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise _missing(package, purpose, err) from err


def package_file(package: str, relative: str, purpose: str) -> Path:
    """A data file or folder shipped in the installed distribution ``package``.

    Found through the distribution's metadata, so the package is never imported (sktime's import
    alone takes seconds). ImportError when the distribution is absent; FileNotFoundError when it
    is installed but lacks the file.
    """
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError as err:
        raise _missing(package, purpose, err) from err
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise FileNotFoundError(
            f"{package} {dist.version} is installed but has no {relative} (looked for {path}); "
            f"{purpose} was written against versions that ship it"
        )
    return path


def package_version(package: str) -> str | None:
    """The installed version of a distribution, ``None`` when it is absent."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _read(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _write(path: Path, arrays: Arrays) -> None:
    """Write ``arrays`` to ``path`` atomically, readable by everyone (a shared cache folder)."""
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)


def cached_arrays(
    name: str,
    params: dict,
    build: Callable[[], Arrays],
    validate: Callable[[Arrays], None],
    cache_dir: str | Path | None = None,
) -> Arrays:
    """Arrays from the cache file of ``(name, params)``, or built, validated and cached.

    The file is ``<cache folder>/<name>-<hash of params>.npz``. A cached file is validated like a
    fresh build; one that cannot be read or fails validation is rebuilt and overwritten (with a
    warning). A cache folder that cannot be written only costs the caching (with a warning).
    ``validate`` raises ValueError on bad arrays.
    """
    key = json.dumps({"format": FORMAT, **params}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_folder(cache_dir) / f"{name}-{digest}.npz"
    if path.exists():
        try:
            arrays = _read(path)
            validate(arrays)
            return arrays
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            warnings.warn(f"rebuilding the cache file {path}: {err}", stacklevel=3)
    arrays = build()
    validate(arrays)
    try:
        _write(path, arrays)
    except OSError as err:
        warnings.warn(f"could not write the cache file {path}: {err}", stacklevel=3)
    return arrays


def check_array(
    name: str,
    a: np.ndarray,
    shape: tuple[int | None, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
    dtype: str | None = None,
) -> None:
    """Raise a ValueError unless ``a`` has ``shape`` (None: any size), is finite and in range."""
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise ValueError(f"{name} has dtype {a.dtype}; expected {np.dtype(dtype)}")
    if shape is not None and (
        a.ndim != len(shape)
        or any(s is not None and s != n for s, n in zip(shape, a.shape, strict=True))
    ):
        want = tuple("any" if s is None else s for s in shape)
        raise ValueError(f"{name} has shape {a.shape}; expected {want}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        pos = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{name} has a NaN or Inf at position {pos}")
    if low is not None and a.min() < low:
        raise ValueError(f"{name} has values down to {a.min()}; expected >= {low}")
    if high is not None and a.max() > high:
        raise ValueError(f"{name} has values up to {a.max()}; expected <= {high}")
    if integer and a.dtype.kind == "f" and not (a == np.round(a)).all():
        raise ValueError(f"{name} should hold whole numbers (pixel levels, labels)")
