"""The markdown report."""

import torch

from pyro_frmdn.experiments.machine import machine
from pyro_frmdn.experiments.report import write_report


def test_the_report_keeps_a_hand_written_commentary(tmp_path):
    path = tmp_path / "results.md"
    results = {
        "machine": machine(torch.device("cpu")),
        "settings": {"quick": True, "scale": 1.0, "seeds": 1, "workers": 1, "total_time": 1.0},
        "datasets": {},
    }
    write_report(results, path)
    assert "## Commentary" in path.read_text() and results["machine"]["cpu"] in path.read_text()
    path.write_text(path.read_text().split("## Commentary")[0] + "## Commentary\n\nFlows help.\n")
    write_report(results, path)
    text = path.read_text()
    assert text.count("## Commentary") == 1 and text.rstrip().endswith("Flows help.")
    assert f"torch {torch.__version__}" in text
