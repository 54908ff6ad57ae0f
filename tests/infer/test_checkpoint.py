"""Checkpoint files: atomic saves, and corrupt, foreign or mismatched files refused."""

import pytest
import torch
from support.training import banana, tiny

import pyro_frmdn as pf
from pyro_frmdn.infer import load_checkpoint, save_checkpoint


def test_corrupt_or_mismatched_checkpoints_are_refused_and_never_overwritten(tmp_path):
    y = banana()
    pf.fit(tiny(), y, epochs=1, batch_size=16, checkpoint=tmp_path, progress=False)
    good = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(ValueError, match="config"):
        pf.fit(tiny(hidden_dim=6), y, epochs=2, checkpoint=tmp_path, resume=True, progress=False)
    assert (tmp_path / "last.pt").read_bytes() == good
    (tmp_path / "last.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        pf.fit(tiny(), y, epochs=2, checkpoint=tmp_path, resume=True, progress=False)
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a pyro-frmdn checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"x": torch.ones(1)})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(tmp_path / "c.pt", {"x": Unpicklable()})
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["x"], torch.ones(1))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
