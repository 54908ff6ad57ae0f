"""IAM-OnDB stroke XML and transcriptions, on tiny files written here: offsets, layout, errors."""

import pytest
import torch

from pyro_frmdn.data import read_iam_folder, read_iam_strokes
from pyro_frmdn.data.iam import read_iam_transcription

HEADER = """<?xml version="1.0" encoding="ISO-8859-1"?>
<WhiteboardCaptureSession>
  <WhiteboardDescription>
    <SensorLocation corner="top_left"/>
    <DiagonallyOppositeCoords x="6512" y="1376"/>
  </WhiteboardDescription>
  <StrokeSet>
"""
FOOTER = "  </StrokeSet>\n</WhiteboardCaptureSession>\n"


def _xml(strokes) -> str:
    body = ""
    for stroke in strokes:
        points = "".join(
            f'      <Point x="{x}" y="{y}" time="{0.01 * i:.2f}"/>\n'
            for i, (x, y) in enumerate(stroke)
        )
        body += f'    <Stroke colour="black" start_time="0" end_time="1">\n{points}    </Stroke>\n'
    return HEADER + body + FOOTER


def test_points_become_offsets_with_y_up_and_pen_up_on_each_stroke_end(tmp_path):
    path = tmp_path / "a01-000u-01.xml"
    path.write_text(_xml([[(1073, 1058), (1075, 1050), (1080, 1049)], [], [(1100, 1060)]]))
    y = read_iam_strokes(path)
    expected = torch.tensor(
        [[0.0, 0.0, 0.0], [2.0, 8.0, 0.0], [5.0, 1.0, 1.0], [20.0, -11.0, 1.0]]
    )  # the empty stroke is left out; y grows upwards
    assert y.dtype == torch.float32 and torch.equal(y, expected)


@pytest.mark.parametrize(
    "content, match",
    [
        ("<WhiteboardCaptureSession><StrokeSet>", "is not a valid IAM-OnDB stroke file"),
        (HEADER + FOOTER, "has no <Stroke> with <Point>s"),
        (_xml([[(1, 2)]]).replace(' y="2"', ""), "stroke 0 has a point without numbers"),
        (_xml([[(1, 2), ("abc", 3)]]), "stroke 0 has a point without numbers"),
        (_xml([[(1, 2)], [(1, "nan")]]), "stroke 1 has a point that is not finite"),
    ],
)
def test_corrupt_stroke_files_are_named(tmp_path, content, match):
    path = tmp_path / "bad-01.xml"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        read_iam_strokes(path)
    assert "bad-01.xml" in str(info.value)


def _transcription(lines) -> str:
    return "OCR:\n\nA MOVE to stop\nsomething else\n\nCSR:\n\n" + "\n".join(lines) + "\n"


def _download(root):
    """Two forms with a transcription, one without, in IAM-OnDB's layout."""
    files = {
        "a01/a01-000/a01-000u-01.xml": [[(0, 0), (3, -4)]],
        "a01/a01-000/a01-000u-02.xml": [[(5, 5), (6, 5)], [(7, 7), (7, 9)]],
        "a01/a01-000/a01-000x-01.xml": [[(1, 1), (1, 2)]],
        "b02/b02-001/b02-001z-01.xml": [[(2, 2), (4, 2), (4, 1)]],
    }
    for name, strokes in files.items():
        path = root / "lineStrokes" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_xml(strokes))
    ascii_dir = root / "ascii" / "a01" / "a01-000"
    ascii_dir.mkdir(parents=True)
    (ascii_dir / "a01-000u.txt").write_text(_transcription(["A MOVE to stop Mr.", "Gaitskell"]))
    (ascii_dir / "a01-000x.txt").write_text(_transcription(["nominating any"]))
    return files


def test_a_download_folder_gives_lines_texts_and_forms(tmp_path):
    files = _download(tmp_path)
    data = read_iam_folder(tmp_path, progress=False)
    assert data.texts == ["A MOVE to stop Mr.", "Gaitskell", "nominating any", ""]
    assert data.writers == [0, 0, 1, 2]  # forms a01-000u, a01-000x, b02-001z
    assert data.alphabet == "".join(sorted(set("A MOVE to stop Mr.Gaitskellnominating any")))
    for strokes, name in zip(data.strokes, sorted(files), strict=True):
        assert torch.equal(strokes, read_iam_strokes(tmp_path / "lineStrokes" / name))
    assert [int(s[:, 2].sum()) for s in data.strokes] == [1, 2, 1, 1]
    only_strokes = read_iam_folder(tmp_path / "lineStrokes", limit=2, progress=False)
    assert only_strokes.texts == ["", ""] and len(only_strokes.strokes) == 2


def test_transcriptions_are_read_after_csr(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text(_transcription(["one line", "", "two line"]))
    assert read_iam_transcription(path) == ["one line", "two line"]
    path.write_text("OCR:\n\nno csr here\n")
    with pytest.raises(ValueError, match=r"f\.txt has no 'CSR:' section"):
        read_iam_transcription(path)


def test_a_missing_text_line_or_an_empty_folder_is_named(tmp_path):
    _download(tmp_path)
    (tmp_path / "ascii" / "a01" / "a01-000" / "a01-000u.txt").write_text(_transcription(["x"]))
    with pytest.raises(ValueError, match=r"a01-000u\.txt has 1 lines; a01-000u-02\.xml is line 2"):
        read_iam_folder(tmp_path, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no IAM-OnDB stroke files"):
        read_iam_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="no IAM-OnDB stroke files"):
        read_iam_folder(tmp_path / "does-not-exist")
