"""Reading and writing images safely; uint8 <-> float tensor conversion.

At the edges carkit holds images as numpy uint8 arrays, shape (H, W) for gray
and (H, W, 3) for RGB. Inside models they are float32 NCHW tensors in [0, 1].

Reading (:func:`read_image`, :func:`read_image_bytes`)
------------------------------------------------------
Any format Pillow decodes is accepted; JPEG (also MPO), PNG, BMP, TIFF and WebP
are the ones tested. Multi-frame files (MPO, multi-page TIFF, animated WebP)
give their first frame. The EXIF orientation tag (1..8) is applied, so pixels
come out the way a viewer shows them; an EXIF block that cannot be parsed is
ignored with a warning (the pixels are still good). Embedded ICC profiles are
ignored: pixel values are taken as sRGB as they are.

Mode policy, by the Pillow mode of the decoded file (``LoadedImage.source_mode``):

- ``L``, ``1``: gray (H, W); ``1`` becomes 0/255.
- ``RGB``, ``RGBX``, ``YCbCr``, ``CMYK``, ``P``: RGB (H, W, 3). Palette images
  always become RGB. CMYK uses Pillow's conversion ``R = (255 - C)(255 - K) / 255``
  (no ICC profile); Pillow's decoder already un-inverts Adobe (inverted) CMYK
  JPEGs.
- ``RGBA``, ``RGBa``, ``PA``, and ``P``/``RGB`` with a transparency key: RGB in
  ``pixels`` (premultiplied ``RGBa`` is un-premultiplied), the alpha (H, W) in
  ``LoadedImage.alpha``; never composited onto a background.
  ``LA``, ``La`` and ``L`` with a transparency key: gray plus alpha, likewise.
  :func:`write_image` re-attaches an alpha passed to it.
- 16-bit gray (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``): reduced to 8 bits by
  ``v >> 8`` (the high byte; exact for 8-bit data stored as ``v8 * 257`` or
  ``v8 << 8``).
- 16-bit RGB/RGBA (PNG, TIFF): Pillow already decodes these to 8-bit ``RGB`` /
  ``RGBA`` keeping the high byte, the same ``v >> 8`` rule.
- ``I`` (32-bit integer): as 16-bit when every value lies in 0..65535, else refused.
- ``F`` (float), ``LAB``, ``HSV`` and anything else: refused with
  :class:`~carkit.errors.UnsupportedImageError`.

Errors: a missing, corrupt or truncated file raises
:class:`~carkit.errors.ImageReadError` (carkit never sets Pillow's global
``ImageFile.LOAD_TRUNCATED_IMAGES``; at its default, False, truncated data is
an error, never silently grey-filled); an image with more than :data:`MAX_PIXELS` pixels raises
:class:`~carkit.errors.DecompressionBombError` before any pixel data is decoded;
a mode outside the policy raises :class:`~carkit.errors.UnsupportedImageError`.
Every message is one line and starts with the file name.

Writing (:func:`write_image`, :func:`write_bytes`)
-----------------------------
Atomic: the encoded file goes to a temporary file in the target's folder, is
flushed to disk (``fsync``), then renamed over the target with ``os.replace``.
A failure at any point removes the temporary file and leaves any previous
target untouched, so a reader never sees a partial file.
"""

from __future__ import annotations

import io as _io
import os
import secrets
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import (CarkitError, DecompressionBombError, ImageReadError, ImageWriteError,
                     UnsupportedImageError)

#: Largest image (in pixels) carkit opens. 24 MP JPEGs must work; this leaves room.
#: Read at call time, so tests (or users) may change ``carkit.io.MAX_PIXELS``.
MAX_PIXELS = 128_000_000

# Pillow's own bomb check (the module global Image.MAX_IMAGE_PIXELS: a warning
# above it, an error above twice it) runs at the end of Image.open, on the size
# from the header. carkit replaces that check by its own exact one on the same
# size: the global is set to None only around Image.open (header parse, no pixel
# data), under a lock so concurrent carkit readers always restore it. Pillow's
# checks during decoding (TIFF tiles, GIF frames) keep the global's value.
_PIL_LIMIT_LOCK = threading.Lock()

_GRAY_MODES = ("1", "L")
_RGB_MODES = ("RGB", "RGBX", "YCbCr", "CMYK", "P")
_RGBA_MODES = ("RGBA", "RGBa", "PA")
_GRAY_ALPHA_MODES = ("LA", "La")
_I16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class LoadedImage:
    """An image read from disk.

    pixels: uint8 array (H, W) or (H, W, 3), EXIF orientation applied
        (unless read with ``apply_orientation=False``).
    alpha: uint8 array (H, W) kept aside for images with transparency, else None.
    source_mode: the Pillow mode of the decoded file before any conversion.
    format: the Pillow format name ("JPEG", "PNG", ...).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    source_mode: str
    format: str | None
    #: EXIF orientation still to apply (1 = upright / already applied).
    orientation: int = 1

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def read_image(path: str | os.PathLike, apply_orientation: bool = True) -> LoadedImage:
    """Read an image file as uint8 gray or RGB, by the mode policy in the module
    docstring. Raises ImageReadError, UnsupportedImageError or
    DecompressionBombError (all :class:`~carkit.errors.CarkitError`), never
    another exception type for a bad file.

    With ``apply_orientation=False`` the pixels come as stored (what a JPEG's
    8x8 grid is aligned to) and ``LoadedImage.orientation`` holds the EXIF
    orientation to apply later with :func:`orient`."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    return _read(path, str(path), apply_orientation)


def read_image_bytes(data: bytes, name: str = "<bytes>") -> LoadedImage:
    """Like :func:`read_image` for an encoded image held in memory; ``name`` is
    used in error messages."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_image_bytes expects bytes, got {type(data).__name__}")
    return _read(_io.BytesIO(bytes(data)), name)


def _read(source, name: str, apply_orientation: bool = True) -> LoadedImage:
    limit = int(MAX_PIXELS)
    try:
        with _PIL_LIMIT_LOCK:
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                im = Image.open(source)
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
        with im:
            w, h = im.size
            if w * h > limit:
                raise DecompressionBombError(
                    f"{name}: image of {w}x{h} = {w * h} pixels exceeds the limit of {limit} "
                    f"pixels (carkit.io.MAX_PIXELS)")
            im.load()
            fmt = im.format
            source_mode = im.mode
            orientation = _exif_orientation(im)
            if apply_orientation:
                im = _apply_exif_orientation(im, name)
                orientation = 1
            pixels, alpha = _to_uint8(im, name)
    except CarkitError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError(f"{name}: {_one_line(exc)}") from exc
    except FileNotFoundError as exc:
        raise ImageReadError(f"{name}: no such file") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageReadError(f"{name}: not an image file carkit can read") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageReadError(f"{name}: cannot read image ({_one_line(exc)})") from exc
    return LoadedImage(pixels=pixels, alpha=alpha, source_mode=source_mode, format=fmt,
                       orientation=orientation)


def exif_orientation(path: str | os.PathLike) -> int:
    """A file's EXIF orientation (1..8; 1 when absent or unreadable), without
    decoding its pixels."""
    try:
        with Image.open(path) as im:
            return _exif_orientation(im)
    except Exception:
        return 1


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # unreadable EXIF: treat as upright, like _apply_exif_orientation
        return 1
    return value if 1 <= value <= 8 else 1


# EXIF orientation -> the Pillow transpose that makes the image upright
# (the same table as PIL.ImageOps.exif_transpose).
_ORIENT_METHODS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                   6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                   8: Image.Transpose.ROTATE_90}


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to uint8 pixels (or an alpha plane)."""
    method = _ORIENT_METHODS.get(int(orientation))
    if method is None:
        return pixels
    return np.asarray(Image.fromarray(pixels).transpose(method)).copy()


def _apply_exif_orientation(im: Image.Image, name: str) -> Image.Image:
    try:
        out = ImageOps.exif_transpose(im)
    except Exception as exc:  # broken EXIF: the pixels are still fine
        warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({_one_line(exc)})",
                      stacklevel=3)
        return im
    return im if out is None else out


def reduce_16bit(arr: np.ndarray) -> np.ndarray:
    """The one 16-to-8-bit rule (module docstring): keep the high byte."""
    return (np.asarray(arr).astype(np.uint32) >> 8).astype(np.uint8)


def _to_uint8(im: Image.Image, name: str = "<image>") -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the mode policy of the module docstring: (pixels, alpha or None)."""
    mode = im.mode
    has_transparency = "transparency" in im.info
    if mode in _GRAY_ALPHA_MODES or (mode == "L" and has_transparency):
        la = im.convert("LA")
        return (np.asarray(la.getchannel("L"), dtype=np.uint8).copy(),
                np.asarray(la.getchannel("A"), dtype=np.uint8).copy())
    if mode in _RGBA_MODES or (mode in ("P", "RGB") and has_transparency):
        rgba = im.convert("RGBA")
        return (np.asarray(rgba.convert("RGB"), dtype=np.uint8).copy(),
                np.asarray(rgba.getchannel("A"), dtype=np.uint8).copy())
    if mode in _GRAY_MODES:
        return np.asarray(im.convert("L"), dtype=np.uint8).copy(), None
    if mode in _RGB_MODES:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy(), None
    if mode in _I16_MODES or mode == "I":
        arr = np.asarray(im)
        if mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise UnsupportedImageError(
                f"{name}: 32-bit integer image with values outside 0..65535 is not supported")
        return reduce_16bit(arr), None
    raise UnsupportedImageError(f"{name}: unsupported image mode {mode!r}")


def write_image(path: str | os.PathLike, pixels: np.ndarray, alpha: np.ndarray | None = None,
                format: str | None = None, **save_kwargs) -> None:
    """Write uint8 (H, W) or (H, W, 3), with an optional uint8 (H, W) alpha
    re-attached, atomically (see the module docstring).

    The format comes from ``format`` (a Pillow name such as ``"PNG"``) or else
    the file extension; ``save_kwargs`` go to Pillow's ``Image.save`` (e.g.
    ``lossless=True`` for WebP, ``quality=90`` for JPEG). The new file gets the
    usual permissions (0666 minus the umask). A format that cannot hold the
    image (e.g. alpha in JPEG) raises UnsupportedImageError; the target is then
    left as it was. Filesystem errors propagate as OSError.
    """
    path = Path(path)
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"write_image expects uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"write_image expects (H, W) or (H, W, 3) pixels, got {pixels.shape}")
    im = Image.fromarray(pixels)
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha)
        if alpha.dtype != np.uint8 or alpha.shape != pixels.shape[:2]:
            raise ValueError(f"alpha must be uint8 of shape {pixels.shape[:2]}, "
                             f"got {alpha.dtype} {alpha.shape}")
        im.putalpha(Image.fromarray(alpha))
    fmt = format.upper() if format else Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedImageError(f"{path}: unknown output format {path.suffix!r}")
    if fmt not in Image.SAVE:
        Image.init()
        if fmt not in Image.SAVE:
            raise UnsupportedImageError(f"{path}: Pillow cannot write format {fmt!r}")
    with atomic_file(path) as fh:
        try:
            im.save(fh, format=fmt, **save_kwargs)
        except OSError as exc:
            if exc.errno is not None:  # a real filesystem error
                raise ImageWriteError(f"{path}: cannot write ({exc.strerror})") from exc
            raise UnsupportedImageError(
                f"{path}: cannot write {im.mode} image as {fmt} ({_one_line(exc)})") from exc
        except (ValueError, KeyError) as exc:
            raise UnsupportedImageError(
                f"{path}: cannot write {im.mode} image as {fmt} ({_one_line(exc)})") from exc


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write already-encoded bytes (a codec's file) atomically, like
    :func:`write_image`; filesystem errors become ImageWriteError."""
    path = Path(path)
    with atomic_file(path) as fh:
        try:
            fh.write(data)
        except OSError as exc:
            raise ImageWriteError(f"{path}: cannot write ({exc.strerror})") from exc


@contextmanager
def atomic_file(path: Path):
    """A binary file handle on a temporary file beside ``path``; on success it is
    flushed, fsync'ed and renamed over ``path``, on any failure removed (see the
    module docstring)."""
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: never reuse someone else's file; mode 0o666 so the umask applies as
    # for any new file (tempfile.mkstemp would make it 0600).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot write ({exc.strerror})") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def to_tensor(pixels: np.ndarray):
    """uint8 (H, W) or (H, W, C) -> float32 tensor (1, C, H, W) in [0, 1]."""
    import torch

    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise TypeError(f"to_tensor expects uint8 pixels, got {pixels.dtype}")
    if pixels.ndim not in (2, 3):
        raise ValueError(f"to_tensor expects (H, W) or (H, W, C), got shape {pixels.shape}")
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255.0)[None]


def to_uint8(tensor) -> np.ndarray:
    """float tensor (1, C, H, W) or (C, H, W) in [0, 1] -> uint8 (H, W) or (H, W, C),
    clipped and rounded (half to even) as PROTOCOL.md scores it."""
    import torch

    t = tensor.detach().float()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_uint8 converts one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"to_uint8 expects (1, C, H, W) or (C, H, W), got {tuple(tensor.shape)}")
    arr = t.mul(255.0).round_().clamp_(0, 255).to(dtype=torch.uint8).cpu().numpy()
    arr = arr.transpose(1, 2, 0)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr
