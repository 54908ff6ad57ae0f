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


def test_flipping_any_byte_of_a_checkpoint_is_refused(tmp_path):
    import random

    from pyro_frmdn.infer import save_checkpoint

    m = pf.RMDN(2, hidden_dim=4, num_components=2)
    path = save_checkpoint(tmp_path / "c.pt", {"model": m.state_dict(), "epoch": 3})
    raw = path.read_bytes()
    rng = random.Random(0)
    positions = sorted(rng.sample(range(len(raw)), 300)) + [0, len(raw) - 1]
    damaged = tmp_path / "d.pt"
    for i in positions:  # a flipped bit anywhere: header, digest, pickle, tensors, zip records
        b = bytearray(raw)
        b[i] ^= 1 << rng.randrange(8)
        damaged.write_bytes(bytes(b))
        with pytest.raises(ValueError, match="is corrupt"):
            load_checkpoint(damaged)
    for n in (0, 1, 40, len(raw) // 2, len(raw) - 1):  # and every truncation
        damaged.write_bytes(raw[:n])
        with pytest.raises(ValueError, match="is corrupt"):
            load_checkpoint(damaged)
    assert load_checkpoint(path)["epoch"] == 3


@pytest.mark.slow
def test_killing_fit_at_random_moments_never_leaves_an_unloadable_checkpoint(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent(
        f"""
        import torch, pyro_frmdn as pf
        y = pf.data.make_task("banana", n=64, steps=8, seed=0)
        m = pf.FRMDN(2, hidden_dim=16, num_components=2, flow_layers=1)
        print("start", flush=True)
        pf.fit(m, y, epochs=10_000, batch_size=64, checkpoint={str(tmp_path)!r}, progress=False)
        """
    )
    rng = random.Random(1)
    seen = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"start"
        deadline = time.monotonic() + 120
        while not (tmp_path / "last.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))  # many checkpoint writes a second: kill mid-write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for name in ("last.pt", "best.pt"):
            if (tmp_path / name).exists():
                state = load_checkpoint(tmp_path / name)
                assert state["epoch"] >= 1
                seen += 1
    assert seen  # the runs got far enough to write checkpoints that were then checked
