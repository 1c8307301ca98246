"""Training batches: BatchNorm needs two samples, so a last training batch of one sample is dropped."""

from __future__ import annotations

import pytest

from mer_fastai.training.loaders import load_dataloaders


@pytest.mark.parametrize(("cache", "balanced"), [(True, False), (True, True), (False, False)])
def test_no_training_batch_holds_a_single_sample(tiny_data, cache, balanced):
    first = load_dataloaders(tiny_data, size=32, bs=2, cache=cache, balanced=balanced, num_workers=0)
    n_train = len(first.train.dataset)
    bs = next(b for b in range(2, n_train) if n_train % b == 1)  # the split leaves one sample over
    dls = load_dataloaders(tiny_data, size=32, bs=bs, cache=cache, balanced=balanced, num_workers=0)
    sizes = [len(batch[1]) for batch in dls.train]
    assert sizes and min(sizes) >= 2 and sum(sizes) >= n_train - 1, (n_train, bs, sizes)
    assert sum(len(batch[1]) for batch in dls.valid) == len(dls.valid.dataset)  # validation keeps every sample
