"""Real codecs behind one interface (``Codec.encode/decode/roundtrip``) and a
registry of them: ``get_codec(name, **options)``, ``available_codecs()``,
``list_codecs()``, ``register_codec``, and ``sniff(data)``, the name of the
codec whose file ``data`` is (decode dispatch).

Importing this package is cheap: codec modules (and Pillow) load on first use;
``JpegCodec`` and friends are importable from here lazily.
"""

from __future__ import annotations

from .base import Codec, RoundTrip, check_image, check_quality
from .registry import (available_codecs, canonical_name, codec_class, codec_info, get_codec, list_codecs,
                       register_codec, sniff)

_LAZY = {
    "JpegCodec": "jpeg", "jpeg_roundtrip": "jpeg",
    "Jpeg2000Codec": "jpeg2000", "j2k_ratio": "jpeg2000",
    "WebPCodec": "webp", "AvifCodec": "avif", "HeifCodec": "heif",
}

__all__ = ["Codec", "RoundTrip", "check_image", "check_quality", "available_codecs",
           "canonical_name", "codec_class", "codec_info", "get_codec", "list_codecs", "register_codec", "sniff",
           *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
