"""HEIF with HEVC intra (x265 encoder, libde265 decoder) through pillow_heif.

pillow_heif is optional (``pip install carkit[heif]``); without it, or when its
libheif has no HEVC encoder, the codec is unavailable and using it raises
``CodecError``. Pillow's global openers are left untouched (no
``register_heif_opener``). ``quality`` is libheif's 1..100 quality (100 is
near-lossless, not lossless); chroma 4:2:0 by default; ``preset`` is the x265
speed preset, fixed ("medium" by default). Gray images are coded as monochrome
HEIF and decode as gray.
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import CarkitError, CodecError
from .base import Codec, check_image, check_quality
from .markers import isobmff_brands
from ..io import check_pixel_limit

#: ISO-BMFF brands of HEVC-coded HEIF images and sequences
HEVC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}

_CHROMA = {"4:2:0": 420, "4:2:2": 422, "4:4:4": 444}


def _pillow_heif():
    try:
        import pillow_heif
    except ImportError as exc:
        raise CodecError(
            "heif: needs the optional package pillow-heif (pip install 'carkit[heif]')") from exc
    return pillow_heif


class HeifCodec(Codec):
    name = "heif"
    extension = ".heic"
    plain_image = True

    @staticmethod
    def sniff(data: bytes) -> bool:
        """An ISO-BMFF file with an HEVC-coded HEIF brand (not AVIF's ``mif1`` alone)."""
        return bool(isobmff_brands(data) & HEVC_BRANDS)

    def __init__(self, subsampling: str = "4:2:0", preset: str | None = "medium"):
        if subsampling not in _CHROMA:
            raise ValueError(f"HEIF subsampling must be one of {sorted(_CHROMA)}")
        self.subsampling = subsampling
        self.preset = preset

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            ph = _pillow_heif()
        except CodecError as exc:
            return str(exc)
        info = ph.libheif_info()
        if not info.get("HEIF"):
            return f"heif: libheif {info.get('libheif')} in pillow-heif has no HEVC encoder"
        if "decoders" in info and not info["decoders"]:
            return f"heif: libheif {info.get('libheif')} in pillow-heif has no HEVC decoder"
        return None

    @classmethod
    def library(cls) -> str | None:
        try:
            ph = _pillow_heif()
        except CodecError:
            return None
        info = ph.libheif_info()
        return f"pillow-heif {ph.__version__}, libheif {info.get('libheif')} ({info.get('HEIF')})"

    def _require(self):
        reason = self.unavailable_reason()
        if reason:
            raise CodecError(reason)
        return _pillow_heif()

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        q = check_quality(quality)
        arr = check_image(image)
        ph = self._require()
        from PIL import Image

        kwargs = dict(quality=q, chroma=_CHROMA[self.subsampling], save_nclx_profile=True)
        if self.preset:
            kwargs["enc_params"] = {"preset": self.preset}
        buf = io.BytesIO()
        try:
            ph.from_pillow(Image.fromarray(arr)).save(buf, **kwargs)
        except Exception as exc:  # libheif raises assorted types; all mean "failed"
            raise CodecError(f"heif encode failed: {exc}") from exc
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        ph = self._require()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"heif decode expects bytes, got {type(data).__name__}")

        try:
            heif = ph.open_heif(io.BytesIO(bytes(data)), convert_hdr_to_8bit=True)
            check_pixel_limit(*heif.size, "heif file")  # the header's size, before the image is decoded
            mode = heif.mode
            arr = np.asarray(heif)
        except CarkitError:
            raise
        except Exception as exc:  # ValueError/RuntimeError/SyntaxError from libheif
            raise CodecError(f"heif decode failed: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
        if arr.dtype != np.uint8:
            raise CodecError(f"heif decode gave {arr.dtype}, expected 8-bit")
        if arr.ndim == 3 and arr.shape[2] == 4:  # RGBA: drop alpha
            arr = arr[:, :, :3]
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if mode.startswith("L") and arr.ndim == 3:
            arr = arr[:, :, 0]
        return np.ascontiguousarray(arr)
