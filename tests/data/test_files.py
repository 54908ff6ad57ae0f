"""The user's files in every format give the padded form an independent reference builds."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.data.files import from_arrays, from_csv, from_dataframe, read_sequences

LENGTHS = [4, 1, 6, 3]
D = 2


def sequences(lengths=LENGTHS, d=D, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, d)) * 10 for n in lengths]


def reference(seqs):
    """The padded form written out by hand: zeros after each sequence, float32."""
    t = max(len(s) for s in seqs)
    y = np.zeros((len(seqs), t, seqs[0].shape[1]), np.float32)
    mask = np.zeros((len(seqs), t), bool)
    for i, s in enumerate(seqs):
        y[i, : len(s)], mask[i, : len(s)] = s, True
    return torch.from_numpy(y), torch.from_numpy(mask)


def long_table(seqs, splits=None, seed=1):
    """One row per step, rows shuffled; ids not in sorted order; time not starting at 0."""
    ids = ["walk-z", "walk-a", "walk-m", "walk-b"][: len(seqs)]
    rows = [
        {"id": ids[i], "t": 10.0 * step - 5, "f0": s[step, 0], "f1": s[step, 1]}
        | ({} if splits is None else {"split": splits[i]})
        for i, s in enumerate(seqs)
        for step in range(len(s))
    ]
    first = pd.DataFrame(rows).drop_duplicates("id")  # keep the ids' first appearance order
    rest = pd.DataFrame(rows).drop(first.index).sample(frac=1.0, random_state=seed)
    return pd.concat([first, rest], ignore_index=True)


def check(data, seqs):
    y, mask = reference(seqs)
    assert data["y"].dtype == torch.float32 and torch.equal(data["y"], y)
    if len({len(s) for s in seqs}) == 1:
        assert data["mask"] is None
    else:
        assert data["mask"].dtype == torch.bool and torch.equal(data["mask"], mask)


def write(frame, path):
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path)


# -- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int16])
def test_npy_of_any_number_type_is_float32_and_unmasked(tmp_path, dtype):
    y = (np.arange(5 * 7 * 3).reshape(5, 7, 3) - 50).astype(dtype)
    np.save(tmp_path / "y.npy", y)
    check(read_sequences(tmp_path / "y.npy"), list(y.astype(np.float64)))
    np.save(tmp_path / "flat.npy", y[..., 0])  # (N, T): D = 1
    check(read_sequences(tmp_path / "flat.npy"), list(y[..., :1].astype(np.float64)))


@pytest.mark.parametrize("how", ["lengths", "mask", "only array"])
def test_npz_with_lengths_or_mask(tmp_path, how):
    seqs = sequences()
    y, mask = reference(seqs)
    padded = np.where(mask.numpy()[..., None], y.numpy(), np.nan).astype(np.float64)  # NaN pads
    arrays = {
        "lengths": {"y": padded, "lengths": np.array(LENGTHS)},
        "mask": {"y": padded, "mask": mask.numpy().astype(np.uint8)},
        "only array": {"anything": y.numpy()},
    }[how]
    np.savez(tmp_path / "d.npz", **arrays)
    data = read_sequences(tmp_path / "d.npz")
    if how == "only array":
        check(data, list(y.numpy().astype(np.float64)))
    else:
        check(data, [s.astype(np.float32) for s in seqs])


def test_npz_split_is_passed_through(tmp_path):
    np.savez(tmp_path / "d.npz", y=np.ones((3, 2, 1)), split=np.array(["train", "test", "val"]))
    assert read_sequences(tmp_path / "d.npz")["split"].tolist() == ["train", "test", "val"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_table_with_ids_times_and_split(tmp_path, suffix):
    seqs = [s.astype(np.float32) for s in sequences()]
    splits = ["train", "val", "train", "test"]
    path = tmp_path / f"walks{suffix}"
    write(long_table(seqs, splits), path)
    data = read_sequences(path, id_column="id", time_column="t", split_column="split")
    check(data, seqs)
    assert list(data["split"]) == splits
    reordered = read_sequences(path, id_column="id", time_column="t", columns=["f1", "f0"])
    check(reordered, [s[:, ::-1] for s in seqs])
    assert "split" not in reordered
    if suffix == ".csv":
        check(from_csv(path, id_column="id", time_column="t", columns=["f0", "f1"]), seqs)


def test_without_a_time_column_rows_keep_the_file_order(tmp_path):
    frame = pd.DataFrame({"id": [7, 3, 7, 3, 7], "x": [1, 2, 3, 4, 5]})  # integers: float32
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = from_csv(tmp_path / "t.csv", id_column="id")
    check(data, [np.array([[1.0], [3.0], [5.0]]), np.array([[2.0], [4.0]])])
    one = from_csv(tmp_path / "t.csv")  # no id column: the table is one sequence
    check(one, [frame.to_numpy(np.float64)])


def test_from_dataframe_equals_from_csv(tmp_path):
    frame = long_table([s.astype(np.float32) for s in sequences()])
    frame.to_csv(tmp_path / "t.csv", index=False)
    a = from_dataframe(frame, id_column="id", time_column="t")
    b = from_csv(tmp_path / "t.csv", id_column="id", time_column="t")
    assert torch.equal(a["y"], b["y"]) and torch.equal(a["mask"], b["mask"])


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_folder_of_sequences_sorted_by_name(tmp_path, suffix):
    seqs = [s.astype(np.float32) for s in sequences()]
    names = ["c", "a", "d", "b"]  # written in this order, read in sorted order
    for name, s in zip(names, seqs, strict=True):
        if suffix == ".npy":
            np.save(tmp_path / f"{name}.npy", s)
        else:
            frame = pd.DataFrame(s, columns=["f0", "f1"])
            frame["split"] = "val" if name == "a" else "train"
            frame.to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / ".hidden").write_text("ignored")
    options = {"split_column": "split"} if suffix == ".csv" else {}
    data = read_sequences(tmp_path, **options)
    check(data, [seqs[names.index(n)] for n in sorted(names)])
    if suffix == ".csv":
        assert list(data["split"]) == ["val", "train", "train", "train"]


def test_from_arrays_takes_lists_tensors_and_bools():
    check(from_arrays([[1, 2], [3, 4]]), [np.array([[1.0], [2.0]]), np.array([[3.0], [4.0]])])
    y = torch.randn(3, 5, 2, dtype=torch.float64)
    data = from_arrays(y, mask=torch.arange(5) < torch.tensor([[2], [5], [3]]))
    check(data, [y[0, :2].numpy(), y[1].numpy(), y[2, :3].numpy()])
    assert from_arrays(np.ones((2, 3, 1), bool))["y"].sum() == 6


def test_the_padded_form_is_what_models_take(tmp_path):
    write(long_table([s.astype(np.float32) for s in sequences()]), tmp_path / "w.csv")
    data = read_sequences(tmp_path / "w.csv", id_column="id", time_column="t")
    model = pf.RMDN(obs_dim=D, hidden_dim=4, num_components=2)
    assert torch.isfinite(model.log_prob(**data)).all()


# -- bad inputs -------------------------------------------------------------------------------


def csv(text):
    return lambda folder: (folder / "y.csv").write_text(text)


def npy(array, **kwargs):
    return lambda folder: np.save(folder / "y.npy", array, **kwargs)


def npz(**arrays):
    return lambda folder: np.savez(folder / "y.npz", **arrays)


def raw(name, content):
    return lambda folder: (folder / name).write_bytes(content)


def folder_of(**arrays):
    return lambda folder: [np.save(folder / f"{k}.npy", a) for k, a in arrays.items()]


ID = {"id_column": "id"}
NAN, RAGGED = np.array([[[0.0], [np.nan]]]), np.array([np.zeros(2), np.zeros(3)], dtype=object)
BAD = {  # name: (write the file(s) in a folder, options, error, message)
    "nan": (npy(NAN), {}, ValueError, "y.npy: y has NaN at sequence 0, step 1"),
    "inf in csv": (csv("id,x\n1,0\n1,inf\n"), ID, ValueError, "column 'x', row 1 is Inf"),
    "float32 overflow": (npy(np.full((1, 1, 1), 1e300)), {}, ValueError, "Inf"),
    "empty cell": (csv("id,x,z\n1,0,1\n1,,2\n"), ID, ValueError, "'x', row 1 is NaN"),
    "missing column": (csv("id,x\n1,0\n"), {"id_column": "seq"}, ValueError, "no column 'seq'"),
    "missing feature": (
        csv("id,x\n1,0\n"),
        {"id_column": "id", "columns": ["x", "w"]},
        ValueError,
        "no column 'w' \\(columns\\)",
    ),
    "text feature": (csv("id,x\n1,a\n"), ID, ValueError, "y.csv: feature column 'x' holds"),
    "missing id": (csv("id,x\n1,0\n,1\n"), ID, ValueError, "'id' has a missing value in row 1"),
    "repeated time": (
        csv("id,t,x\n1,0,0\n1,0,1\n"),
        {"id_column": "id", "time_column": "t"},
        ValueError,
        "row 1 repeats a time of sequence 1",
    ),
    "bad split": (
        csv("id,s,x\n1,train,0\n2,dev,1\n"),
        {"id_column": "id", "split_column": "s"},
        ValueError,
        "y.csv: split must be one of .* got \\['dev'\\]",
    ),
    "mixed split": (
        csv("id,s,x\n1,train,0\n1,test,1\n"),
        {"id_column": "id", "split_column": "s"},
        ValueError,
        "sequence 1 has several 's'",
    ),
    "ragged npy": (npy(RAGGED, allow_pickle=True), {}, ValueError, "y.npy is ragged"),
    "mask shape": (
        npz(y=np.ones((2, 3)), mask=np.ones((2, 2), bool)),
        {},
        ValueError,
        "y.npz: mask .* shape \\(2, 2\\); expected \\(2, 3\\)",
    ),
    "mask values": (npz(y=np.ones((1, 2)), mask=np.array([[1, 2]])), {}, ValueError, "mask"),
    "empty sequence": (
        npz(y=np.ones((2, 2)), mask=np.array([[1, 1], [0, 0]])),
        {},
        ValueError,
        "sequence 1 is empty",
    ),
    "length 0": (
        npz(y=np.ones((2, 3)), lengths=[0, 3]),
        {},
        ValueError,
        "down to 0; expected >= 1",
    ),
    "length > T": (
        npz(y=np.ones((2, 3)), lengths=[4, 3]),
        {},
        ValueError,
        "up to 4; expected <= 3",
    ),
    "lengths count": (npz(y=np.ones((2, 3)), lengths=[3]), {}, ValueError, "lengths has shape"),
    "mask and lengths": (
        npz(y=np.ones((1, 3)), lengths=[3], mask=np.ones((1, 3))),
        {},
        ValueError,
        "not both",
    ),
    "npz keys": (npz(a=np.ones((1, 3)), b=np.ones(3)), {}, ValueError, "arrays \\['a', 'b'\\]"),
    "text y": (npy(np.array([["a"]])), {}, TypeError, "must hold numbers"),
    "4-d y": (npy(np.ones((1, 2, 3, 4))), {}, ValueError, "\\(N, T, D\\) or \\(N, T\\)"),
    "empty npy": (raw("y.npy", b""), {}, ValueError, "y.npy is empty"),
    "empty csv": (raw("y.csv", b""), {}, ValueError, "y.csv is empty"),
    "header only": (csv("id,x\n"), {}, ValueError, "y.csv holds no rows"),
    "no rows npy": (npy(np.ones((0, 3, 1))), {}, ValueError, "non-empty"),
    "corrupt npy": (raw("y.npy", b"\x93NUMPY\x01\x00junk"), {}, ValueError, "y.npy is not a"),
    "corrupt npz": (raw("y.npz", b"PK\x03\x04junk"), {}, ValueError, "y.npz is not a"),
    "corrupt csv": (raw("y.csv", bytes(range(256)) * 3), {}, ValueError, "y.csv is not a"),
    "corrupt parquet": (raw("y.parquet", b"PAR1 junk"), {}, ValueError, "y.parquet is not a"),
    "unknown suffix": (raw("y.json", b"[]"), {}, ValueError, "unknown suffix '.json'"),
    "options on arrays": (npy(np.ones((1, 2))), ID, ValueError, "id_column apply to .csv"),
    "mixed folder": (
        lambda p: [np.save(p / "a.npy", np.ones((2, 1))), (p / "b.csv").write_text("x\n1\n")],
        {},
        ValueError,
        "must hold .npy files or .csv files",
    ),
    "empty folder": (lambda p: None, {}, ValueError, "must hold .npy files"),
    "folder dims": (
        folder_of(a=np.ones((2, 1)), b=np.ones((2, 3))),
        {},
        ValueError,
        "b.npy has 3 features, not 1",
    ),
    "folder nan": (folder_of(a=np.ones((2, 1)), b=NAN[0]), {}, ValueError, "b.npy: y has NaN"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inputs_are_refused_with_a_message_naming_them(tmp_path, case):
    make, options, error, match = BAD[case]
    folder = tmp_path / "data"
    folder.mkdir()
    make(folder)
    files = list(folder.iterdir())
    path = files[0] if len(files) == 1 and "folder" not in case else folder
    with pytest.raises(error, match=match):
        read_sequences(path, **options)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        (([[1.0, 2.0], [3.0]],), ValueError, "y is ragged"),
        ((np.array([np.zeros(2), np.zeros(3)], dtype=object),), ValueError, "y is ragged"),
        ((np.ones((2, 3)) * 1j,), TypeError, "y must hold numbers"),
        ((np.ones((2, 3)), None, [1, 2.5]), ValueError, "lengths should hold whole numbers"),
        ((np.ones((2, 3)), np.ones((3, 2))), ValueError, "mask .* shape \\(3, 2\\)"),
    ],
)
def test_from_arrays_refuses_bad_arguments(arguments, error, match):
    with pytest.raises(error, match=match):
        from_arrays(*arguments)


def test_missing_files_and_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data file"):
        read_sequences(tmp_path / "nothing.csv")
    with pytest.raises(TypeError, match="path must be"):
        read_sequences(3)
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        from_dataframe({"x": [1]})


@pytest.mark.parametrize(("module", "suffix"), [("pandas", ".csv"), ("pyarrow", ".parquet")])
def test_a_missing_optional_package_names_the_extra(tmp_path, monkeypatch, module, suffix):
    path = tmp_path / f"y{suffix}"
    write(pd.DataFrame({"x": [1.0, 2.0]}), path)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError
    with pytest.raises(ImportError, match=f"'{module}'.*pip install 'pyro-frmdn\\[data\\]'"):
        read_sequences(path)
