"""On-the-fly degradation through the real codec (PROTOCOL.md: Pillow's
libjpeg-turbo, baseline, 4:2:0 for color, gray as a 1-component JPEG)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codecs.jpeg import jpeg_roundtrip


@dataclass(frozen=True)
class JpegDegradation:
    """JPEG at a fixed quality (``qualities=(q,)``) or a quality drawn uniformly
    from an inclusive range (``quality_range=(lo, hi)``)."""

    qualities: tuple[int, ...] = ()
    quality_range: tuple[int, int] | None = None
    subsampling: str = "4:2:0"

    def __post_init__(self):
        if not self.qualities and self.quality_range is None:
            raise ValueError("give qualities or quality_range")

    def sample_quality(self, rng: np.random.Generator) -> int:
        if self.quality_range is not None:
            lo, hi = self.quality_range
            return int(rng.integers(lo, hi + 1))
        return int(self.qualities[rng.integers(len(self.qualities))])

    def __call__(self, gt: np.ndarray, quality: int) -> np.ndarray:
        return jpeg_roundtrip(gt, quality, self.subsampling)
