"""IAM-OnDB pen strokes (its ``lineStrokes`` XML files) as ``(dx, dy, pen_up)`` sequences."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .handwriting import HandwritingData
from .kanji import strokes_to_offsets

__all__ = ["read_iam_folder", "read_iam_strokes", "read_iam_transcription"]

LINE_FILE = re.compile(r"(?P<form>.+)-(?P<line>\d+)\.xml")  # a01-000u-01.xml: form a01-000u


def read_iam_strokes(path: str | Path) -> Tensor:
    """The pen strokes of one IAM-OnDB line file as ``(T, 3)`` rows ``(dx, dy, pen_up)``.

    The file is a ``<WhiteboardCaptureSession>`` holding a ``<StrokeSet>`` of ``<Stroke>``
    elements, each a list of ``<Point x=".." y=".." time=".."/>`` in the order written.
    Coordinates stay in the file's units (whiteboard sensor units), with y flipped to point up;
    the first row is the first point relative to itself, ``(0, 0, pen_up)``, and every later
    row the move from the point before. ``pen_up = 1`` on the last point of each stroke, the
    convention of :func:`~pyro_frmdn.data.render_text` and of Graves (2013). Times are not
    read. A stroke without points is left out.

    Raises:
        ValueError: naming the file, when it is not XML, has no stroke with points, or has a
            point whose x or y is missing or not a finite number.

    Example:
        >>> import tempfile
        >>> xml = ('<WhiteboardCaptureSession><StrokeSet><Stroke><Point x="10" y="5" '
        ...        'time="0.1"/><Point x="12" y="9" time="0.2"/></Stroke></StrokeSet>'
        ...        '</WhiteboardCaptureSession>')
        >>> with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        ...     _ = f.write(xml)
        >>> read_iam_strokes(f.name).tolist()
        [[0.0, 0.0, 0.0], [2.0, -4.0, 1.0]]
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path} is not a valid IAM-OnDB stroke file (XML): {err}") from err
    except OSError as err:
        raise ValueError(f"cannot read the IAM-OnDB stroke file {path}: {err}") from err
    strokes = []
    for i, stroke in enumerate(root.iter("Stroke")):
        points = []
        for point in stroke.iter("Point"):
            try:
                x, y = float(point.attrib["x"]), float(point.attrib["y"])
            except (KeyError, ValueError) as err:
                raise ValueError(
                    f"{path}: stroke {i} has a point without numbers x and y: {point.attrib}"
                ) from err
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"{path}: stroke {i} has a point that is not finite: {x}, {y}")
            points.append((x, -y))
        if points:
            strokes.append(np.array(points))
    if not strokes:
        raise ValueError(f"{path} has no <Stroke> with <Point>s: not an IAM-OnDB stroke file")
    offsets = strokes_to_offsets(strokes, origin=strokes[0][0])
    return torch.from_numpy(offsets).float()


def read_iam_transcription(path: str | Path) -> list[str]:
    """The text lines of one IAM-OnDB transcription file (``ascii/.../a01-000u.txt``): the
    lines after its ``CSR:`` header, blank lines left out; line ``k`` (from 1) is written in
    the stroke file ``a01-000u-0k.xml``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as err:
        raise ValueError(f"cannot read the IAM-OnDB transcription {path}: {err}") from err
    _, csr, lines = text.partition("CSR:")
    if not csr:
        raise ValueError(f"{path} has no 'CSR:' section: not an IAM-OnDB transcription")
    return [line.strip() for line in lines.splitlines() if line.strip()]


def read_iam_folder(
    root: str | Path, limit: int | None = None, progress: bool = True
) -> HandwritingData:
    """Every line of an IAM-OnDB download, with its transcription where present.

    The layout is that of the archives ``lineStrokes-all.tar.gz`` and ``ascii-all.tar.gz`` of
    IAM-OnDB (Liwicki & Bunke 2005; free for research after registration at the FKI of the
    University of Bern, so it cannot be downloaded here), unpacked side by side in ``root``::

        root/lineStrokes/a01/a01-000/a01-000u-01.xml   one file a line: form a01-000u, line 1
        root/ascii/a01/a01-000/a01-000u.txt            the form's text: "OCR:" then "CSR:" lines

    Stroke files are found anywhere under ``root/lineStrokes`` (or ``root`` itself when that
    folder is absent), in sorted order. The text of ``<form>-<k>.xml`` is line ``k`` of
    ``<form>.txt`` (:func:`read_iam_transcription`), looked for under ``root/ascii`` at the
    same relative folder; ``""`` when there is none.

    Returns:
        :class:`~pyro_frmdn.data.HandwritingData` with ``strokes`` (:func:`read_iam_strokes`,
        in sensor units), ``texts``, ``writers`` (the index of each line's form, in sorted
        order: a form is written by one writer, but a writer may have written several forms;
        IAM-OnDB's writer ids are in its ``original`` files, not read here) and ``alphabet``
        (the characters of the texts, sorted).

    Raises:
        ValueError: when no stroke file is found, or a file is corrupt (naming it), or a text
            line is missing from a transcription that is present.
    """
    root = Path(root)
    strokes_dir = root / "lineStrokes" if (root / "lineStrokes").is_dir() else root
    files = sorted(strokes_dir.rglob("*.xml"))
    if not root.is_dir() or not files:
        raise ValueError(f"no IAM-OnDB stroke files (*.xml) under {strokes_dir}")
    if limit is not None:
        files = files[:limit]
    data, forms, transcriptions = HandwritingData([], [], [], ""), {}, {}
    for path in tqdm(files, disable=not progress, desc="IAM-OnDB", unit="line"):
        match = LINE_FILE.fullmatch(path.name)
        form = match["form"] if match else path.stem
        text_file = root / "ascii" / path.parent.relative_to(strokes_dir) / f"{form}.txt"
        text = ""
        if match and text_file.is_file():
            if text_file not in transcriptions:
                transcriptions[text_file] = read_iam_transcription(text_file)
            lines, k = transcriptions[text_file], int(match["line"])
            if not 1 <= k <= len(lines):
                raise ValueError(f"{text_file} has {len(lines)} lines; {path.name} is line {k}")
            text = lines[k - 1]
        data.strokes.append(read_iam_strokes(path))
        data.texts.append(text)
        data.writers.append(forms.setdefault(form, len(forms)))
    data.alphabet = "".join(sorted(set("".join(data.texts))))
    return data
