"""Shared set-up of the real-data loaders' tests."""

import pytest


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One cache folder for the real-data tests: each source is read once."""
    return tmp_path_factory.mktemp("cache")
