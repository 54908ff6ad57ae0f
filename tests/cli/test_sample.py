"""pyro-frmdn sample: samples saved with their settings, and their plot."""

import numpy as np
import torch


def test_sample(runs, cli, tmp_path):
    run = runs / "straight"
    assert cli("sample", "--run-dir", run, "--num", 3, "--steps", 5) == 0
    saved = torch.load(run / "samples.pt", weights_only=True)
    assert saved["samples"].shape == (3, 5, 2) and saved["prime"] is None
    assert (run / "samples.png").is_file()
    assert (np.load(run / "samples.npy") == saved["samples"].numpy()).all()  # no transform
    assert (run / "samples.csv").read_text().startswith("sequence,step,y0,y1\n0,0,")
    out = tmp_path / "greedy.pt"
    args = ("--num", 2, "--steps", 4, "--prime-steps", 3, "--greedy", "--out", out)
    assert cli("sample", "--run-dir", run, *args) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["samples"].shape == (2, 4, 2) and saved["prime"].shape == (2, 3, 2)
    assert torch.isfinite(saved["samples"]).all() and out.with_suffix(".png").is_file()
