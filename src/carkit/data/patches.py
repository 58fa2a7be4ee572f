"""Seeded, resumable patch batches of (degraded, original) pairs.

Batch number ``step`` is a pure function of (seed, rank, step): a resumed run
sees exactly the batches it would have seen, and DataLoader workers can build
any batch independently (map-style dataset indexed by step).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .degrade import Degradation


def random_patch(img: np.ndarray, size: int, rng: np.random.Generator, aligned: bool) -> np.ndarray:
    """A size x size crop; ``aligned`` puts its corner on the 8x8 JPEG grid of the
    source (matters only when the source itself was JPEG-coded)."""
    h, w = img.shape[:2]
    if aligned:
        y = 8 * int(rng.integers(0, (h - size) // 8 + 1))
        x = 8 * int(rng.integers(0, (w - size) // 8 + 1))
    else:
        y = int(rng.integers(0, h - size + 1))
        x = int(rng.integers(0, w - size + 1))
    return img[y:y + size, x:x + size]


def augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 flips/rotations of the square."""
    k = int(rng.integers(8))
    patch = np.rot90(patch, k % 4)
    if k >= 4:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)


def _to_chw(batch: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack(batch)
    if arr.ndim == 3:
        arr = arr[:, None]
    else:
        arr = arr.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)


class JpegPatchBatches(Dataset):
    """Map-style dataset: item ``step`` is one whole batch
    ``{"lq": (B,C,P,P), "gt": (B,C,P,P), "quality": (B,)}``.

    The patch is cut first and then JPEG-coded (as FBCNN/DnCNN train), so the
    8x8 grid of the degradation always starts at the patch corner; ``aligned``
    only controls the crop's position in the source image.
    """

    def __init__(self, images: list[np.ndarray], degradation: Degradation, patch_size: int,
                 batch_size: int, seed: int = 0, rank: int = 0, aligned: bool = False,
                 length: int = 10**9):
        self.images = [im for im in images if min(im.shape[:2]) >= patch_size]
        if not self.images:
            raise ValueError(f"no image is at least {patch_size}px on each side")
        self.degradation = degradation
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.aligned = aligned
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, int(step)])
        gts, lqs, qs = [], [], []
        for _ in range(self.batch_size):
            img = self.images[int(rng.integers(len(self.images)))]
            gt = augment(random_patch(img, self.patch_size, rng, self.aligned), rng)
            q = self.degradation.sample_quality(rng)
            gt, lq = self.degradation.pair(gt, q)
            gts.append(gt)
            lqs.append(lq)
            qs.append(q)
        return {"lq": _to_chw(lqs), "gt": _to_chw(gts), "quality": torch.tensor(qs)}


class StepSampler(torch.utils.data.Sampler):
    """Yields the batch numbers start..stop-1 (the resume point onward)."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
