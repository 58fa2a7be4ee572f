"""JPEG by Google's jpegli encoder, through the ``ajpegli`` bindings.

jpegli writes standard JPEG files that every decoder opens, in fewer bits
than libjpeg-turbo for the same PSNR (adaptive quantization, better tables,
progressive coding with optimized Huffman codes). It is the strongest
standard-file encoder a user can pick instead of carkit's learned methods, so
the benches compare against it (PROTOCOL.md: ajpegli, 4:2:0, default
settings). ``decoder``: files are decoded by Pillow/libjpeg-turbo by default,
as an ordinary viewer shows them; ``"jpegli"`` uses jpegli's own decoder.

A core dependency (the default carrier of residual hiding); where the
bindings are missing anyway the codec is listed as
unavailable with the reason.
"""

from __future__ import annotations

import numpy as np

from ..errors import CodecError
from ._pillow import pil_decode
from .base import Codec, check_image, check_quality
from .jpeg import JpegCodec

_SUBSAMPLING = {"4:4:4": "444", "4:2:2": "422", "4:2:0": "420"}


def _ajpegli():
    try:
        import ajpegli
    except ImportError as exc:
        raise CodecError("jpegli needs the ajpegli package: pip install ajpegli") from exc
    return ajpegli


class JpegliCodec(Codec):
    """jpegli encoder (``quality`` is its libjpeg-compatible quality 1..100)."""

    name = "jpegli"
    extension = ".jpg"
    plain_image = True
    #: its files are JPEGs (the jpeg codec, registered first, is the one dispatch names)
    sniff = staticmethod(JpegCodec.sniff)

    def __init__(self, subsampling: str = "4:2:0", adaptive_quantization: bool = True,
                 progressive: bool = True, decoder: str = "pillow"):
        if subsampling not in _SUBSAMPLING:
            raise ValueError(f"subsampling must be one of {sorted(_SUBSAMPLING)}")
        if decoder not in ("pillow", "jpegli"):
            raise ValueError("decoder must be 'pillow' (libjpeg-turbo, as a viewer) or 'jpegli'")
        self.subsampling = subsampling
        self.adaptive_quantization = bool(adaptive_quantization)
        self.progressive = bool(progressive)
        self.decoder = decoder

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            _ajpegli()
        except CodecError as exc:
            return str(exc)
        return None

    @classmethod
    def library(cls) -> str | None:
        try:
            from importlib.metadata import version

            ajpegli = _ajpegli()
            return f"jpegli {ajpegli.jpegli_commit()[:12]} (ajpegli {version('ajpegli')})"
        except Exception:
            return None

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        ajpegli = _ajpegli()
        image = check_image(image)
        try:
            return ajpegli.encode(image, quality=check_quality(quality), subsampling=_SUBSAMPLING[self.subsampling],
                                  adaptive_quantization=self.adaptive_quantization,
                                  progressive=2 if self.progressive else 0)
        except ajpegli.AjpegliError as exc:
            raise CodecError(f"jpegli: encoding failed ({exc})") from exc

    def decode(self, data: bytes) -> np.ndarray:
        if self.decoder == "pillow":
            return pil_decode(data, "JPEG", self.name)
        ajpegli = _ajpegli()
        try:
            out = np.asarray(ajpegli.decode(bytes(data)))
        except ajpegli.AjpegliError as exc:
            raise CodecError(f"jpegli: decoding failed ({exc})") from exc
        return np.ascontiguousarray(out[:, :, 0] if out.ndim == 3 and out.shape[2] == 1 else out)
