"""Shared plumbing for codecs that go through Pillow: encode to bytes in memory,
decode bytes restricted to one format, and turn every Pillow failure into
``CodecError`` (callers never see a raw PIL exception)."""

from __future__ import annotations

import io

import numpy as np

from ..errors import CarkitError, CodecError
from .base import check_image
from ..io import check_pixel_limit, reduce_16bit


def pil_encode(image: np.ndarray, fmt: str, codec: str, **save_kwargs) -> bytes:
    from PIL import Image

    arr = check_image(image)
    buf = io.BytesIO()
    try:
        Image.fromarray(arr).save(buf, format=fmt, **save_kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise CodecError(f"{codec} encode failed: {exc}") from exc
    return buf.getvalue()


def pil_decode(data: bytes, fmt: str, codec: str) -> np.ndarray:
    """Decode ``data`` (only as ``fmt``) to uint8 (H, W) for 1-component
    files, else (H, W, 3). Alpha, if any, is dropped. A header declaring
    more pixels than carkit's limit (``carkit.io.check_pixel_limit``) is
    refused before any pixel is decoded."""
    from PIL import Image

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{codec} decode expects bytes, got {type(data).__name__}")

    try:
        with Image.open(io.BytesIO(bytes(data)), formats=[fmt]) as im:
            check_pixel_limit(*im.size, f"{codec} file")  # the header's size, before any pixel is decoded
            im.load()
            mode = "L" if im.mode in ("L", "1", "LA", "I;16", "I;16L", "I;16B") else "RGB"
            if im.mode.startswith("I;16"):
                return reduce_16bit(np.asarray(im))
            return np.asarray(im.convert(mode), dtype=np.uint8).copy()
    except CarkitError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise CodecError(f"{codec} decode failed: {len(data)} bytes are not a {fmt} file") from exc
    except Image.DecompressionBombError as exc:
        raise CodecError(f"{codec} decode refused: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise CodecError(f"{codec} decode failed: {' '.join(str(exc).split()) or type(exc).__name__}") from exc


def pillow_feature(feature: str, codec: str) -> str | None:
    """None when Pillow was built with ``feature``, else the reason."""
    from PIL import features

    try:
        ok = features.check(feature)
    except ValueError:
        ok = False
    if ok:
        return None
    return f"{codec}: this Pillow build has no {feature!r} support (PIL.features.check({feature!r}) is False)"
