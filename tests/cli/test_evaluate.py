"""pyro-frmdn evaluate: the held-out NLL of a run's checkpoint, as a sentence and a JSON line."""

import math

import pytest


def test_evaluate(runs, cli, last_json):
    assert cli("evaluate", "--run-dir", runs / "resumed", "--bits-per-dim") == 0
    record = last_json()
    assert record["split"] == "test" and record["checkpoint"] == "best"
    assert math.isfinite(record["nll_per_step"])
    assert record["bits_per_dim"] == pytest.approx(record["nll_per_step"] / (2 * math.log(2)))
    assert (
        cli("evaluate", "--run-dir", runs / "resumed", "--checkpoint", "last", "--split", "val")
        == 0
    )
    assert last_json()["epoch"] == 2
