"""Figures: dreams saved as an animated GIF and a strip."""

import numpy as np
import pytest
import torch

from pyro_frmdn.plots import plot_history, plot_paths, save_dream


def test_save_dream_writes_an_animated_gif_and_a_strip(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    dreamed = torch.randint(0, 2, (3, 4, 3, 8, 8), generator=g).float()  # 8 colours: exact in a GIF
    real = torch.randint(0, 2, (3, 4, 3, 8, 8), generator=g).float()
    gif, png = save_dream(tmp_path / "d", dreamed, real, num=2)
    with Image.open(gif) as im:
        assert im.n_frames == 4
        assert im.size == (2 * 10 * 3, 2 * 10 * 3)  # 2 sequences, real and dream rows, scale 3
        im.seek(0)
        top_left = np.asarray(im.convert("RGB"))[3:27, 3:27]
    expected = (real[0, 0].permute(1, 2, 0) * 255).round().byte().numpy()
    assert np.array_equal(top_left[::3, ::3], expected)
    assert png.exists() and png.stat().st_size > 0
    with pytest.raises(ValueError, match="differ"):
        save_dream(tmp_path / "e", dreamed, real[:, :2])


def test_plot_history_draws_the_columns_that_have_values():
    history = {"epoch": [1, 2, 3], "train_nll": [1.0, 0.5, 0.2], "val_nll": [None] * 3}
    (ax,) = plot_history(history).axes
    assert [line.get_label() for line in ax.get_lines()] == ["train"]
    assert ax.get_lines()[0].get_ydata().tolist() == [1.0, 0.5, 0.2]
    history["val_nll"] = [1.1, 0.6, 0.4]
    assert len(plot_history(history).axes[0].get_lines()) == 2


def test_plot_paths_draws_offsets_as_positions_and_the_primes_in_grey():
    generated = torch.ones(2, 4, 2)
    real = torch.zeros(3, 4, 2)
    left, right = plot_paths(generated, real, prime_steps=2, offsets=True, name="branching").axes
    assert left.get_title() == "generated (branching)" and right.get_title() == "real (branching)"
    assert left.get_lines()[0].get_xdata().tolist() == [1.0, 2.0, 3.0, 4.0]  # cumulative sums
    assert len(left.get_lines()) == 4 and left.get_lines()[1].get_color() == "0.5"  # 2 + primes
    assert len(right.get_lines()) == 3 and left.get_xlabel() == "x = Σ dx"
    (plain, _) = plot_paths(generated, real).axes
    assert plain.get_title() == "generated" and plain.get_lines()[0].get_xdata().tolist() == [1] * 4


def test_plot_series_draws_each_feature_of_generated_and_real_sequences():
    import torch

    from pyro_frmdn.plots import MAX_PLOTTED_FEATURES, plot_series

    generated, real = torch.randn(3, 5, 6), torch.randn(2, 7, 6)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    fig = plot_series(generated, real, mask, [f"f{d}" for d in range(6)], prime_steps=2)
    axes = fig.axes
    assert len(axes) == 2 * MAX_PLOTTED_FEATURES  # six features, four rows of (generated, real)
    left, right = axes[0], axes[1]
    assert left.get_ylabel() == "f0" and left.get_title() == "generated"
    assert len(left.get_lines()) == 6  # three sequences, each with its grey prime
    assert [len(line.get_xdata()) for line in right.get_lines()] == [7, 4]  # cut at the mask
