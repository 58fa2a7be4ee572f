"""Lossy WebP (VP8 intra) through Pillow's libwebp.

``quality`` is libwebp's 0..100 quality (we use 1..100), ``method`` (effort)
is fixed, 4 by default (libwebp's default), so the rate depends on quality only.
Lossy WebP is always YUV 4:2:0 and has no gray mode: a gray image is coded as
RGB with equal channels; ``decode`` returns RGB, and ``roundtrip`` of a gray
image returns the G channel (the three decoded channels agree within +-1).
Use ``decode(data, gray=True)`` for the same outside ``roundtrip``.
"""

from __future__ import annotations

import numpy as np

from .base import Codec, check_image, check_quality
from ._pillow import pil_decode, pil_encode, pillow_feature


class WebPCodec(Codec):
    name = "webp"
    extension = ".webp"
    plain_image = True

    @staticmethod
    def sniff(data: bytes) -> bool:
        """A RIFF container of form WEBP."""
        return bytes(data[:4]) == b"RIFF" and bytes(data[8:12]) == b"WEBP"
    supports_gray = False

    def __init__(self, method: int = 4, sharp_yuv: bool = False):
        if not 0 <= int(method) <= 6:
            raise ValueError(f"WebP method must be 0..6, got {method!r}")
        self.method = int(method)
        self.sharp_yuv = bool(sharp_yuv)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return pillow_feature("webp", cls.name)

    @classmethod
    def library(cls) -> str | None:
        from PIL import features

        return f"libwebp {features.version('webp')}"

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        q = check_quality(quality)
        arr = check_image(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        kwargs = dict(quality=q, method=self.method, lossless=False, exact=False)
        if self.sharp_yuv:
            kwargs["use_sharp_yuv"] = True
        return pil_encode(arr, "WEBP", self.name, **kwargs)

    def decode(self, data: bytes, gray: bool = False) -> np.ndarray:
        out = pil_decode(data, "WEBP", self.name)
        if gray and out.ndim == 3:
            out = np.ascontiguousarray(out[:, :, 1])
        return out
