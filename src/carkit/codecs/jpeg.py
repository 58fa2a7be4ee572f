"""JPEG through Pillow's libjpeg-turbo, with PROTOCOL.md's settings by default:
baseline, standard IJG tables scaled by quality, 4:2:0 for RGB, no optimize."""

from __future__ import annotations

import numpy as np

from ._pillow import pil_decode, pil_encode
from .base import Codec, check_quality

_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


class JpegCodec(Codec):
    name = "jpeg"
    extension = ".jpg"
    plain_image = True

    @staticmethod
    def sniff(data: bytes) -> bool:
        """A JPEG: SOI followed by a marker."""
        return bytes(data[:3]) == b"\xff\xd8\xff"

    def __init__(self, subsampling: str = "4:2:0", optimize: bool = False):
        if subsampling not in _SUBSAMPLING:
            raise ValueError(f"subsampling must be one of {sorted(_SUBSAMPLING)}")
        self.subsampling = subsampling
        self.optimize = optimize

    @classmethod
    def library(cls) -> str | None:
        from PIL import features

        turbo = features.version("libjpeg_turbo")
        return f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        return pil_encode(image, "JPEG", self.name, quality=check_quality(quality),
                          subsampling=_SUBSAMPLING[self.subsampling], optimize=self.optimize)

    def encode_with_tables(self, image: np.ndarray, tables) -> bytes:
        """``image`` coded with the given (8, 8) quantization tables (natural
        order; one for a gray image, luma and chroma for a color one) instead
        of IJG's at a quality: tables as cameras and editors write them."""
        return pil_encode(image, "JPEG", self.name, qtables=[np.asarray(t).reshape(64).tolist() for t in tables],
                          subsampling=_SUBSAMPLING[self.subsampling], optimize=self.optimize)

    def decode(self, data: bytes) -> np.ndarray:
        return pil_decode(data, "JPEG", self.name)


def jpeg_roundtrip(image: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """The PROTOCOL.md degradation: encode with Pillow at ``quality``, decode."""
    codec = JpegCodec(subsampling=subsampling)
    return codec.decode(codec.encode(image, quality))
