"""AVIF (AV1 intra) through Pillow's own AVIF plugin (libavif; encoder aom,
decoder dav1d on the standard wheels).

``quality`` is libavif's 0..100 quality (we use 1..100; 100 is near-lossless,
not lossless). ``speed`` (0 slowest .. 10 fastest) is fixed, 6 by default
(Pillow's default); ``threads`` defaults to 1 so timings compare with the
single-threaded JPEG/WebP/J2K coders. Chroma is 4:2:0 by default
(``subsampling`` applies to RGB). Gray images are coded as monochrome
(YUV 4:0:0) AVIF and decode as gray.
"""

from __future__ import annotations

import numpy as np

from .base import Codec, check_image, check_quality
from .markers import isobmff_brands
from ._pillow import pil_decode, pil_encode, pillow_feature

_SUBSAMPLING = ("4:2:0", "4:2:2", "4:4:4")


class AvifCodec(Codec):
    name = "avif"
    extension = ".avif"
    plain_image = True

    @staticmethod
    def sniff(data: bytes) -> bool:
        """An ISO-BMFF file with an AVIF brand."""
        return bool(isobmff_brands(data) & {b"avif", b"avis"})

    def __init__(self, speed: int = 6, subsampling: str = "4:2:0", threads: int = 1):
        if not 0 <= int(speed) <= 10:
            raise ValueError(f"AVIF speed must be 0..10, got {speed!r}")
        if subsampling not in _SUBSAMPLING:
            raise ValueError(f"AVIF subsampling must be one of {_SUBSAMPLING}")
        self.speed = int(speed)
        self.subsampling = subsampling
        self.threads = int(threads)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        reason = pillow_feature("avif", cls.name)
        if reason is None:
            from PIL import AvifImagePlugin

            versions = AvifImagePlugin._avif.codec_versions()
            if "[enc]" not in versions:
                return f"{cls.name}: libavif in this Pillow has no AV1 encoder ({versions})"
        return reason

    @classmethod
    def library(cls) -> str | None:
        from PIL import AvifImagePlugin, features

        return f"libavif {features.version('avif')} ({AvifImagePlugin._avif.codec_versions()})"

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        q = check_quality(quality)
        arr = check_image(image)
        subsampling = self.subsampling if arr.ndim == 3 else "4:0:0"  # monochrome AV1
        return pil_encode(arr, "AVIF", self.name, quality=q, speed=self.speed,
                          subsampling=subsampling, max_threads=self.threads)

    def decode(self, data: bytes) -> np.ndarray:
        return pil_decode(data, "AVIF", self.name)
