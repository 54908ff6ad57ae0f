"""atomic_write: the file appears whole or not at all, readable by everyone."""

import os
import stat

import pytest

from pyro_frmdn.files import atomic_write


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_text_mode_writes_utf8(tmp_path):
    path = tmp_path / "note.txt"
    with atomic_write(path, "w") as f:
        f.write("héllo\n")
    assert path.read_bytes() == "héllo\n".encode()
    assert leftovers(tmp_path) == []


def test_bytes_mode_is_the_default(tmp_path):
    path = tmp_path / "blob.bin"
    data = bytes(range(256))
    with atomic_write(path) as f:
        f.write(data)
    assert path.read_bytes() == data
    with pytest.raises(TypeError), atomic_write(tmp_path / "other.bin") as f:
        f.write("text")  # a bytes file refuses str
    assert leftovers(tmp_path) == []


def test_accepts_str_paths_and_replaces_previous_content(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old old old")
    with atomic_write(str(path), "wb") as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"


def test_content_appears_only_when_the_block_ends(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with atomic_write(path, "w") as f:
        f.write("new")
        f.flush()
        assert path.read_text() == "old"
        assert len(leftovers(tmp_path)) == 1
    assert path.read_text() == "new"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_file_mode_is_0644(tmp_path, umask):
    fresh, existing = tmp_path / "fresh.bin", tmp_path / "existing.bin"
    existing.write_bytes(b"x")
    existing.chmod(0o600)
    old = os.umask(umask)
    try:
        for path in (fresh, existing):
            with atomic_write(path) as f:
                f.write(b"data")
    finally:
        os.umask(old)
    for path in (fresh, existing):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_exception_leaves_previous_content_and_no_temporary_file(tmp_path, mode):
    path = tmp_path / "a.dat"
    path.write_bytes(b"previous")
    payload = "partial" if mode == "w" else b"partial"
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path, mode) as f:
        f.write(payload)
        raise RuntimeError("boom")
    assert path.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dat"]


def test_exception_on_a_new_file_leaves_nothing(tmp_path):
    path = tmp_path / "new.dat"
    with pytest.raises(KeyError), atomic_write(path) as f:
        f.write(b"partial")
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_folder_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "c.txt"
    with atomic_write(path, "w") as f:
        f.write("deep")
    assert path.read_text() == "deep"
    assert leftovers(path.parent) == []


@pytest.mark.parametrize("mode", ["a", "r", "ab", "w+", "wt", "x", ""])
def test_bad_mode_is_refused(tmp_path, mode):
    path = tmp_path / "a.txt"
    with pytest.raises(ValueError, match="mode"), atomic_write(path, mode):
        pass
    assert list(tmp_path.iterdir()) == []


def test_temporary_files_left_by_a_killed_write_are_removed_at_the_next_write(tmp_path):
    path = tmp_path / "last.pt"
    orphan = tmp_path / "last.pt.k1x9q2.tmp"  # as mkstemp names them
    orphan.write_bytes(b"half a checkpoint")
    other = tmp_path / "best.pt.k1x9q2.tmp"  # another file's: left alone
    other.write_bytes(b"x")
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and not orphan.exists() and other.exists()


def test_a_verified_file_round_trips_and_a_plain_torch_file_still_reads(tmp_path):
    import torch

    from pyro_frmdn.files import MAGIC, read_torch_file, save_verified

    obj = {"w": torch.arange(5.0), "n": 3}
    path = save_verified(obj, tmp_path / "v.pt")
    assert path.read_bytes().startswith(MAGIC)
    back = read_torch_file(path, "model file")
    assert torch.equal(back["w"], obj["w"]) and back["n"] == 3
    torch.save(obj, tmp_path / "plain.pt")  # as files were written before version 0.2
    assert read_torch_file(tmp_path / "plain.pt", "model file")["n"] == 3
    with pytest.raises(FileNotFoundError, match="no model file at"):
        read_torch_file(tmp_path / "missing.pt", "model file")
