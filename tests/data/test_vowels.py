"""JapaneseVowels (sktime's data files): the official split, padding, standardisation."""

import torch
from support.real_data import needs_distribution

from pyro_frmdn.data.vowels import japanese_vowels, japanese_vowels_statistics


def test_japanese_vowels_official_split_padded_and_standardised_by_training_data(cache):
    needs_distribution("sktime")
    train, speakers = japanese_vowels("train", return_labels=True, cache_dir=cache)
    test = japanese_vowels("test", cache_dir=cache)
    assert train["y"].shape == (270, 26, 12) and test["y"].shape == (370, 29, 12)
    lengths = torch.cat([train["mask"].sum(1), test["mask"].sum(1)])
    assert int(lengths.min()) == 7 and int(lengths.max()) == 29
    assert torch.bincount(speakers).tolist() == [0] + [30] * 9
    assert (train["y"][~train["mask"]] == 0).all()
    frames = train["y"][train["mask"]]
    assert torch.allclose(frames.mean(0), torch.zeros(12), atol=1e-6)
    assert torch.allclose(frames.std(0, unbiased=False), torch.ones(12), atol=1e-5)
    raw_train = japanese_vowels("train", standardize=False, cache_dir=cache)
    raw_test = japanese_vowels("test", standardize=False, cache_dir=cache)
    mean, std = japanese_vowels_statistics(cache_dir=cache)
    assert torch.allclose(mean, raw_train["y"][raw_train["mask"]].mean(0), atol=1e-6)
    m = test["mask"]
    assert torch.allclose(test["y"][m], (raw_test["y"][m] - mean) / std, atol=1e-5)
    assert not torch.allclose(test["y"][m].mean(0), torch.zeros(12), atol=0.05)
