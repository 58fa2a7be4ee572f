"""JPEG 2000 through Pillow's OpenJPEG, rate-controlled ("by rate").

Quality 1..100 maps to an OpenJPEG compression ratio (raw size / coded size,
raw = H * W * components * 8 bits), one quality layer, irreversible 9/7
wavelet, and the irreversible colour transform (ICT) for RGB::

    ratio(q) = 4 * 2 ** ((100 - q) / 20)

so every 20 quality points halve the rate: q=100 -> 4:1 (6 bpp RGB, 2 bpp gray),
q=50 -> 22.6:1 (1.06 bpp RGB), q=10 -> 90.5:1 (0.27 bpp RGB), q=1 -> 124:1.
The map is strictly monotone, so higher quality always asks for more bytes;
OpenJPEG's rate control lands close below the target, and the headers (about
100-200 bytes) come on top, which matters only for tiny images. Quality 100 is
NOT lossless. Output is a raw J2K codestream (``.j2k``) unless ``jp2=True``.
Gray images are coded as 1-component images and decode as gray.
"""

from __future__ import annotations

import numpy as np

from .base import Codec, check_image, check_quality
from ._pillow import pil_decode, pil_encode, pillow_feature


def j2k_ratio(quality: int) -> float:
    """The compression ratio that ``quality`` asks OpenJPEG for (see module doc)."""
    q = check_quality(quality)
    return 4.0 * 2.0 ** ((100 - q) / 20.0)


class Jpeg2000Codec(Codec):
    name = "jpeg2000"
    extension = ".j2k"
    plain_image = True

    @staticmethod
    def sniff(data: bytes) -> bool:
        """A raw J2K codestream (SOC, SIZ) or a JP2 file (its signature box)."""
        head = bytes(data[:12])
        return head[:4] == b"\xff\x4f\xff\x51" or head == b"\x00\x00\x00\x0cjP  \r\n\x87\n"

    def __init__(self, jp2: bool = False, mct: bool = True, progression: str = "LRCP",
                 num_resolutions: int | None = None):
        self.jp2 = bool(jp2)
        self.mct = bool(mct)
        self.progression = progression
        self.num_resolutions = num_resolutions
        if jp2:
            self.extension = ".jp2"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return pillow_feature("jpg_2000", cls.name)

    @classmethod
    def library(cls) -> str | None:
        from PIL import features

        return f"OpenJPEG {features.version('jpg_2000')}"

    def settings(self) -> dict:
        out = super().settings()
        out["rate_map"] = "ratio = 4 * 2 ** ((100 - q) / 20), irreversible 9/7, 1 layer"
        return out

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        arr = check_image(image)
        kwargs = dict(irreversible=True, quality_mode="rates", quality_layers=[j2k_ratio(quality)],
                      no_jp2=not self.jp2, mct=1 if (self.mct and arr.ndim == 3) else 0,
                      progression=self.progression)
        if self.num_resolutions is not None:
            kwargs["num_resolutions"] = int(self.num_resolutions)
        return pil_encode(arr, "JPEG2000", self.name, **kwargs)

    def decode(self, data: bytes) -> np.ndarray:
        return pil_decode(data, "JPEG2000", self.name)
