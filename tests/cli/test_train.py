"""pyro-frmdn train: the run folder it writes, and resuming."""

import json


def test_train_writes_the_run_folder(runs):
    run = runs / "resumed"
    for name in ("config.json", "history.json", "history.csv", "learning_curve.png"):
        assert (run / name).is_file(), name
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.pt", "last.pt"}
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["epochs"] == 2  # raised by --resume --epochs 2
    assert config["model"]["hidden_dim"] == 8 and config["model"]["mixing"] == "permute"
    assert (run / "history.csv").read_text().startswith("epoch,train_nll,val_nll,time")


def test_resume_equals_an_uninterrupted_run(runs):
    resumed, straight = (
        json.loads((runs / r / "history.json").read_text()) for r in ("resumed", "straight")
    )
    assert len(resumed) == len(straight) == 2
    for a, b in zip(resumed, straight, strict=True):
        assert (a["epoch"], a["train_nll"], a["val_nll"]) == (
            b["epoch"],
            b["train_nll"],
            b["val_nll"],
        )
