"""The cache folder of derived data arrays, and the lookup of the optional data packages."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
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
    "read_arrays",
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
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(
                f"cache_dir must be a path (str or os.PathLike) or None, "
                f"got {type(cache_dir).__name__} {cache_dir!r}"
            )
        if not str(cache_dir).strip():  # Path("") is the working folder: never meant
            raise ValueError(f"cache_dir must name a folder, got {str(cache_dir)!r}")
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


def read_arrays(path: str | Path) -> Arrays:
    """The arrays of the ``.npz`` file ``path``, read in full.

    A file that opens but is not an intact ``.npz`` archive of plain arrays (empty, truncated,
    a changed byte, one ``.npy`` array, a pickle, text, object arrays) raises a ValueError
    that names the file and says what is wrong; only errors of opening it (missing, no
    permission, a folder) stay OSErrors.
    """
    with open(path, "rb") as file:  # OSError: the file cannot be opened at all
        if not file.read(1):
            raise ValueError(f"{path} is empty (0 bytes)")
        file.seek(0)
        try:
            loaded = np.load(file, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("it holds one .npy array, not an .npz archive")
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        except Exception as err:  # zip, zlib, npy-header and pickle refusals alike: damage
            raise ValueError(
                f"{path} is not a readable .npz archive of arrays ({type(err).__name__}: {err})"
            ) from err


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
            arrays = read_arrays(path)
            validate(arrays)
            return arrays
        except Exception as err:  # any damage; a fresh build is validated below, uncaught
            reason = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
            warnings.warn(f"rebuilding the cache file {path}: {reason}", stacklevel=3)
    arrays = build()
    validate(arrays)
    try:
        _write(path, arrays)
    except OSError as err:
        warnings.warn(f"could not write the cache file {path}: {err}", stacklevel=3)
    return arrays


def _unfit(a: np.ndarray, dtype: str) -> str:
    """`` with values such as 0.5``: the first value of ``a`` that ``dtype`` cannot hold."""
    if a.dtype.kind not in "biuf" or a.size == 0:
        return ""
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~(a.astype(dtype).astype(a.dtype) == a)  # NaN is never equal: always unfit
    return f" with values such as {a[bad].flat[0]!s}" if bad.any() else ""  # !s: 0.1, not 0.100…


def check_array(
    name: str,
    a: np.ndarray,
    shape: tuple[int | None, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
    dtype: str | None = None,
) -> None:
    """Raise a ValueError unless ``a`` has ``dtype``, ``shape`` (None: any size), is finite and
    in range; the message names ``a`` and says what was expected and what came."""
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise ValueError(
            f"{name} has dtype {a.dtype}{_unfit(a, dtype)}; expected {np.dtype(dtype)}"
        )
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} holds {a.dtype} values; expected numbers")
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
