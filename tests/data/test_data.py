from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from carkit.codecs.jpeg import jpeg_roundtrip
from carkit.data.degrade import JpegDegradation
from carkit.data.folders import as_mode, list_images, load_images
from carkit.data.patches import JpegPatchBatches, StepSampler, random_patch


def _images(seed=0, n=3):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.integers(0, 255, (12, 15, 3)).astype(np.uint8)
        out.append(np.kron(base, np.ones((9, 9, 1), dtype=np.uint8)))  # smooth-ish 108x135
    return out


def test_batches_are_a_function_of_seed_and_step():
    ds = JpegPatchBatches(_images(), JpegDegradation(quality_range=(10, 40)), 32, 4, seed=3)
    a, b = ds[17], ds[17]
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert not torch.equal(ds[18]["gt"], a["gt"])
    other_rank = JpegPatchBatches(_images(), JpegDegradation(quality_range=(10, 40)), 32, 4, seed=3, rank=1)
    assert not torch.equal(other_rank[17]["gt"], a["gt"])
    assert a["lq"].shape == (4, 3, 32, 32) and a["lq"].dtype == torch.float32
    assert ((a["quality"] >= 10) & (a["quality"] <= 40)).all()


def test_lq_is_the_real_jpeg_of_gt():
    ds = JpegPatchBatches(_images(), JpegDegradation(qualities=(20,)), 32, 2, seed=0)
    batch = ds[0]
    gt = (batch["gt"][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    lq = (batch["lq"][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(lq, jpeg_roundtrip(gt, 20))


def test_gray_mode_uses_matlab_y():
    rgb = np.full((4, 4, 3), 255, np.uint8)
    assert (as_mode(rgb, gray=True) == 235).all()
    ds = JpegPatchBatches([as_mode(im, True) for im in _images()], JpegDegradation(qualities=(10,)), 24, 2)
    assert ds[0]["gt"].shape == (2, 1, 24, 24)


def test_aligned_crops_sit_on_the_8x8_grid():
    img = np.zeros((100, 120), np.uint8)
    img[::8, ::8] = 1  # marks the grid
    rng = np.random.default_rng(0)
    for _ in range(50):
        patch = random_patch(img, 32, rng, aligned=True)
        assert patch[0, 0] == 1


def test_workers_give_the_same_batches_as_the_main_process():
    ds = JpegPatchBatches(_images(), JpegDegradation(quality_range=(10, 40)), 32, 2, seed=5)
    main = [b["gt"] for b in DataLoader(ds, batch_size=None, sampler=StepSampler(3, 7))]
    multi = [b["gt"] for b in DataLoader(ds, batch_size=None, sampler=StepSampler(3, 7), num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(main, multi)) and len(main) == 4


def test_degradation_needs_a_quality():
    with pytest.raises(ValueError):
        JpegDegradation()


def test_folders_load_shared_training_data(shared_data):
    files = list_images(shared_data / "train" / "t91")
    assert len(files) == 91
    imgs = load_images(shared_data / "train" / "t91", gray=True, min_size=64)
    assert all(im.ndim == 2 and im.dtype == np.uint8 and min(im.shape) >= 64 for im in imgs)
