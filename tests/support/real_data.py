"""Skips for the optional data packages and hiding an installed one, for the real-data tests."""

import sys

import pytest

from pyro_frmdn.data import _cache

INSTALL = "pip install 'pyro-frmdn[data]'"


def needs(module: str, package: str | None = None):
    """Skip unless the package that provides ``module`` is installed."""
    reason = f"{package or module} is not installed ({INSTALL})"
    return pytest.importorskip(module, reason=reason)


def needs_distribution(package: str):
    """Skip unless a distribution is installed; for data-only packages, found without import."""
    if _cache.package_version(package) is None:
        pytest.skip(f"{package} is not installed ({INSTALL})")


def hide_module(monkeypatch, *names):
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ModuleNotFoundError
