"""The documentation site builds with no warning, as ``sphinx-build -W -b html docs OUT`` does."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MISSING = "the docs extra is not installed: pip install -e '.[docs]'"


@pytest.mark.slow
def test_the_docs_build_with_warnings_as_errors(tmp_path):
    pytest.importorskip("sphinx", reason=MISSING)
    pytest.importorskip("myst_parser", reason=MISSING)
    out = tmp_path / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, f"the docs build failed:\n{build.stdout}\n{build.stderr}"
    for page in ["index", "models", "api/index", "api/models", "api/distributions"]:
        assert (out / f"{page}.html").is_file(), page
    assert 'id="pyro_frmdn.models.FRMDN"' in (out / "api" / "models.html").read_text()
