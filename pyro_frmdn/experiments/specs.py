"""The suite's data sets and models: the spec of each data set and its budget, the five variants."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..models import FRMDN, RMDN

__all__ = [
    "DATASETS",
    "FRMDNS",
    "PIT_PER_DIM",
    "RMDNS",
    "VARIANTS",
    "DatasetSpec",
    "quick_spec",
    "scaled_spec",
]

VARIANTS = {  # name -> (label, model class, keywords beside the spec's K, r and flow)
    "gaussian": ("Gaussian (K=1, diagonal)", RMDN, {"num_components": 1, "rank": 0}),
    "rmdn_diag": ("RMDN diagonal", RMDN, {"rank": 0}),
    "rmdn_lowrank": ("RMDN low-rank", RMDN, {}),
    "frmdn_cov": ("FRMDN covariance", FRMDN, {"parameterization": "covariance"}),
    "frmdn_prec": ("FRMDN precision", FRMDN, {"parameterization": "precision"}),
}
RMDNS, FRMDNS = ("rmdn_diag", "rmdn_lowrank"), ("frmdn_cov", "frmdn_prec")
PIT_PER_DIM = ("rmdn_lowrank", "frmdn_prec")  # also get a calibration plot per dimension


@dataclass(frozen=True)
class DatasetSpec:
    """One data set of the suite and its budget.

    ``kind`` is ``"frames"`` (video frames flattened per step), ``"rows"`` (an image as a sequence
    of rows), ``"speech"`` or ``"strokes"``. Images are dequantised with ``levels`` and, if
    ``logit_lambda`` is set, logit-transformed. ``hidden_dim`` is the FRMDN's: its parameter count
    is the target every variant is matched to. Sizes are numbers of sequences. The FRMDNs' flow
    is ``flow_layers`` couplings of kind ``flow`` (``"affine"`` or ``"spline"``), conditioned on
    the RNN's state if ``conditional_flow``. The sample plots draw at ``sample_temperature``
    (both the mixture weights' and the spread's, :func:`~pyro_frmdn.distributions.temper`).
    Strokes with a ``grid`` have their points rounded to that many canvas units and their
    offsets dequantised (:func:`~pyro_frmdn.data.dequantize_grid`); see
    :func:`~pyro_frmdn.data.kanji_strokes` for why.
    """

    name: str
    kind: str
    description: str
    train: int
    val: int
    test: int
    epochs: int
    batch_size: int
    lr: float
    hidden_dim: int
    num_components: int
    rank: int
    flow_layers: int
    flow_hidden: int
    levels: int = 256
    logit_lambda: float | None = None
    frame_size: int = 16
    num_frames: int = 20
    flow: str = "affine"
    conditional_flow: bool = False
    sample_temperature: float = 1.0
    grid: float | None = None


DATASETS = {
    s.name: s
    for s in (
        DatasetSpec(
            "moving_mnist", "frames", "Moving MNIST, two digits bouncing in square frames",
            train=1200, val=50, test=200, epochs=20, batch_size=25, lr=2e-3, hidden_dim=96,
            num_components=5, rank=2, flow_layers=4, flow_hidden=128, logit_lambda=0.05,
            sample_temperature=0.5,
        ),
        DatasetSpec(
            "mnist_rows", "rows", "MNIST digits as 28 rows of 28 pixels",
            train=3000, val=250, test=500, epochs=20, batch_size=32, lr=1.5e-3, hidden_dim=96,
            num_components=5, rank=2, flow_layers=4, flow_hidden=16, logit_lambda=0.05,
            flow="spline", sample_temperature=0.7,
        ),
        DatasetSpec(
            "digits8", "rows", "scikit-learn 8x8 digits as 8 rows of 8 pixels (17 levels)",
            train=1438, val=180, test=179, epochs=100, batch_size=32, lr=3e-3, hidden_dim=64,
            num_components=5, rank=2, flow_layers=4, flow_hidden=32, levels=17,
            logit_lambda=0.05,
        ),
        DatasetSpec(
            "vowels", "speech", "JapaneseVowels, 12 LPC cepstra per frame, standardised",
            train=240, val=30, test=370, epochs=200, batch_size=16, lr=3e-3, hidden_dim=48,
            num_components=5, rank=2, flow_layers=4, flow_hidden=32, conditional_flow=True,
        ),
        DatasetSpec(
            "kanji", "strokes", "KanjiVG strokes (dx, dy, pen_up), first characters by code point",
            train=1500, val=60, test=150, epochs=25, batch_size=16, lr=2e-3, hidden_dim=96,
            num_components=5, rank=1, flow_layers=4, flow_hidden=32, conditional_flow=True,
            sample_temperature=0.5, grid=0.5,
        ),
    )
}  # fmt: skip


def quick_spec(spec: DatasetSpec) -> DatasetSpec:
    """The ``--quick`` budget: a few minutes for the whole suite.

    Example:
        >>> quick_spec(DATASETS["vowels"]).epochs
        2
    """
    return replace(
        spec,
        train=min(spec.train, 64),
        val=min(spec.val, 16),
        test=min(spec.test, 32),
        epochs=2,
        hidden_dim=max(16, spec.hidden_dim // 2),
        num_frames=min(spec.num_frames, 10),
    )


def scaled_spec(spec: DatasetSpec, scale: float) -> DatasetSpec:
    """``scale`` times the training sequences and about ``scale`` times the parameters."""
    return replace(
        spec,
        train=max(1, round(spec.train * scale)),
        hidden_dim=max(1, round(spec.hidden_dim * math.sqrt(scale))),
    )
