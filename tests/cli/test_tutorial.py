"""docs/your_data.md, "Your data in 5 minutes": its CSV and its commands run as written."""

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

PAGE = Path(__file__).resolve().parents[2] / "docs" / "your_data.md"


def _blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the page's "Your data in 5 minutes" section."""
    section = PAGE.read_text().split("## Your data in 5 minutes")[1].split("\n## ")[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def test_the_tutorial_runs_as_written(cli, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (make_csv,) = _blocks("python")
    exec(compile(make_csv, "make_walks.py", "exec"), {})
    (commands,) = _blocks("bash")
    for line in commands.replace("\\\n", " ").strip().splitlines():
        program, *args = shlex.split(line)
        assert program == "pyro-frmdn" and cli(*args) == 0, line
    out = capsys.readouterr().out
    assert "in the data's units" in out  # train and evaluate report both NLLs
    samples = pd.read_csv(tmp_path / "runs/walks/samples.csv")
    assert list(samples.columns) == ["sequence", "step", "x", "y"] and len(samples) == 8 * 12
    walks = pd.read_csv(tmp_path / "walks.csv")
    assert np.allclose(samples[["x", "y"]].mean(), walks[["x", "y"]].mean(), atol=25)  # metres
    assert (tmp_path / "runs/walks/samples.png").is_file()
