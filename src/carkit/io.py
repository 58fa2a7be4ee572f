"""Reading and writing images safely; uint8 <-> float tensor conversion.

At the edges carkit holds images as numpy uint8 arrays, shape (H, W) for gray
and (H, W, 3) for RGB. Inside models they are float32 NCHW tensors in [0, 1].
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import DecompressionBombError, ImageReadError, UnsupportedImageError

#: Largest image (in pixels) carkit opens. 24 MP JPEGs must work; this leaves room.
MAX_PIXELS = 128_000_000


@dataclass
class LoadedImage:
    """An image read from disk.

    pixels: uint8 array (H, W) or (H, W, 3), EXIF orientation applied.
    alpha: uint8 array (H, W) kept aside for RGBA/LA inputs, else None.
    source_mode: the Pillow mode of the file before conversion.
    format: the Pillow format name ("JPEG", "PNG", ...).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    source_mode: str
    format: str | None

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file as uint8 gray or RGB (policy: see ``_to_uint8``)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as im:
            im.load()
            fmt = im.format
            im = ImageOps.exif_transpose(im)
            mode = im.mode
            pixels, alpha = _to_uint8(im)
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError(f"{path}: image larger than {MAX_PIXELS} pixels") from exc
    except UnsupportedImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot read image ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    return LoadedImage(pixels=pixels, alpha=alpha, source_mode=mode, format=fmt)


def _to_uint8(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Mode policy: L/1 -> gray; RGB/P/CMYK/YCbCr -> RGB; RGBA/LA/PA -> color plus
    alpha kept aside; 16-bit (I;16, I) -> scaled to 8 bits (round(v / 257))."""
    alpha = None
    mode = im.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA") if mode != "LA" else im
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8).copy()
        im = im.convert("L" if mode == "LA" else "RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        arr = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return arr, None
    elif mode in ("1", "L"):
        im = im.convert("L")
    elif mode in ("RGB", "P", "CMYK", "YCbCr"):
        im = im.convert("RGB")
    else:
        raise UnsupportedImageError(f"unsupported image mode {mode!r}")
    return np.asarray(im, dtype=np.uint8).copy(), alpha


def write_image(path: str | os.PathLike, pixels: np.ndarray, alpha: np.ndarray | None = None,
                **save_kwargs) -> None:
    """Write uint8 (H, W) or (H, W, 3) atomically: a temporary file beside the
    target, then ``os.replace``, so a crash never leaves a half-written file."""
    path = Path(path)
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"write_image expects uint8, got {pixels.dtype}")
    im = Image.fromarray(pixels)
    if alpha is not None:
        im.putalpha(Image.fromarray(np.ascontiguousarray(alpha, dtype=np.uint8)))
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedImageError(f"{path}: unknown output format {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            im.save(fh, format=fmt, **save_kwargs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_tensor(pixels: np.ndarray):
    """uint8 (H, W) or (H, W, C) -> float32 tensor (1, C, H, W) in [0, 1]."""
    import torch

    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255.0)[None]


def to_uint8(tensor) -> np.ndarray:
    """float tensor (1, C, H, W) or (C, H, W) in [0, 1] -> uint8 (H, W) or (H, W, 3),
    clipped and rounded as PROTOCOL.md scores it."""
    t = tensor.detach().float()
    if t.ndim == 4:
        t = t[0]
    arr = t.mul(255.0).round_().clamp_(0, 255).to(dtype=__import__("torch").uint8).cpu().numpy()
    arr = arr.transpose(1, 2, 0)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr
