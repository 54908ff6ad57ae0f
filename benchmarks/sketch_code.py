"""What a SketchVAE's decoder takes from its code: measurements used by ``benchmarks/sketch.py``.

- ``code_gain``: teacher forced, how much more likely each row of a drawing is under its own
  code than under the codes of other drawings, by position along the drawing (tenths of its
  length), and at the drawing's end row: where in a drawing the code is read.
- ``decoded_lengths``: rows before the end state, of decodings against their inputs.
- ``pairwise_rate``: from the ranks of the own input among N, the chance that a decoding is
  nearer to its own input than to another drawing picked at random, (N - rank) / (N - 1)
  (chance 0.5); the nearest-of-all rate is the strict form of the same question.
"""

from __future__ import annotations

import numpy as np
import torch

from pyro_frmdn.models.sketch_inputs import END, stroke5_lengths


def row_log_probs(model, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(S_t | S_<t, z) of every row, teacher forced: drawings (N, L, 5), codes (N, Z) ->
    (N, L)."""
    return model.step_distribution(model.features(y, z)).log_prob(y)


@torch.no_grad()
def code_gain(model, y: torch.Tensor, codes: torch.Tensor, shuffles: int = 4, bins: int = 10):
    """Nats each drawing gains from its own code over another's, by position.

    For every drawing, each row's log-probability under its own code minus its mean under
    ``shuffles`` other drawings' codes (cyclic shifts of the batch, so no drawing gets its own),
    summed over the rows in each tenth of the drawing's length (its rows before the end row),
    and separately at the first row (where the pen starts, measured from the origin) and the end
    row (where the decoder must say "the drawing ends here").
    Returns per-bin means over drawings (nats per drawing), the end row's gain, the whole
    drawing's gain, and the own code's probability of the end state at the end row.
    """
    n = y.shape[0]
    lengths = stroke5_lengths(y, None)
    own = row_log_probs(model, y, codes)
    others = torch.stack(
        [row_log_probs(model, y, codes.roll(1 + k * max(1, n // (shuffles + 1)), 0)) for k in
         range(shuffles)]
    ).mean(0)  # fmt: skip
    gain = (own - others).double()
    steps = torch.arange(y.shape[1])
    live = steps[None] < lengths[:, None]  # rows before the end row
    where = (steps[None].double() / lengths[:, None].double() * bins).floor().clamp(max=bins - 1)
    per_bin = [float((gain * (live & (where == b))).sum(1).mean()) for b in range(bins)]
    end_rows = lengths.clamp(max=y.shape[1] - 1)
    at_end = gain[torch.arange(n), end_rows]
    h = model.features(y, codes)
    p_end = model.pen(h).softmax(-1)[torch.arange(n), end_rows, END]
    return {
        "code_gain_by_tenth": per_bin,
        "code_gain_end_row": float(at_end.mean()),
        "code_gain_first_row": float(gain[:, 0].mean()),  # where the pen starts
        "code_gain_total": float((gain * live).sum(1).mean() + at_end.mean()),
        "p_end_at_end_row": float(p_end.mean()),
    }


def decoded_lengths(inputs: torch.Tensor, decoded: torch.Tensor) -> dict:
    """Rows before the end state of decodings against their inputs: the median ratio, and the
    fraction of decodings that never end within the rows they were given."""
    a = stroke5_lengths(inputs, None).double()
    b = stroke5_lengths(decoded, None).double()
    never = (decoded[..., 2 + END] == 0).all(1)
    return {
        "length_ratio_median": float((b / a).median()),
        "never_ended": float(never.double().mean()),
    }


def pairwise_rate(ranks: list[int], n: int) -> float:
    """The chance that a decoding is nearer to its own input than to a random other of the n
    drawings, from the ranks of its own input (1 = nearest)."""
    return float(np.mean([(n - r) / (n - 1) for r in ranks]))
