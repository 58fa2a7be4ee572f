"""One interface for every image codec, learned or standard.

A codec maps uint8 images (H, W) or (H, W, 3) to bytes and back. Rates are
always measured from the real bytes (PROTOCOL.md: bpp = 8 * bytes / (H * W)).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class RoundTrip:
    """Result of encoding then decoding one image."""

    decoded: np.ndarray
    data: bytes
    encode_s: float
    decode_s: float

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        h, w = self.decoded.shape[:2]
        return 8.0 * self.nbytes / (h * w)


class Codec:
    """Base class: subclasses set ``name`` and implement encode/decode.

    ``quality`` is the codec's own rate knob, an int 1..100 (higher = better),
    so every codec can be swept the same way in RD benchmarks.
    """

    name: str = "codec"
    extension: str = ".bin"

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def roundtrip(self, image: np.ndarray, quality: int) -> RoundTrip:
        t0 = time.perf_counter()
        data = self.encode(image, quality)
        t1 = time.perf_counter()
        decoded = self.decode(data)
        t2 = time.perf_counter()
        return RoundTrip(decoded=decoded, data=data, encode_s=t1 - t0, decode_s=t2 - t1)


def check_quality(quality: int) -> int:
    q = int(quality)
    if q != quality or not 1 <= q <= 100:
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}")
    return q
