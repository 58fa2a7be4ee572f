"""Reading and writing images safely; uint8 <-> float tensor conversion.

At the edges carkit holds images as numpy uint8 arrays, shape (H, W) for gray
and (H, W, 3) for RGB. Inside models they are float32 NCHW tensors in [0, 1].

Reading (:func:`read_image`, :func:`read_image_bytes`)
------------------------------------------------------
Any format Pillow decodes is accepted; JPEG (also MPO), PNG, BMP, TIFF and WebP
are the ones tested. Multi-frame files (MPO, multi-page TIFF, animated WebP)
give their first frame; HEIF/HEIC too where pillow-heif is installed. The EXIF
orientation tag (1..8) is applied, so pixels come out the way a viewer shows
them; an EXIF block that cannot be parsed is ignored with a warning (the pixels
are still good). Pixel values are not colour-managed; the ICC profile, EXIF, XMP
and DPI are kept aside in ``LoadedImage.metadata`` so that a written result
carries them again (:class:`ImageMetadata`).

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
an error, never silently grey-filled); an image with more than :func:`max_pixels` pixels raises
:class:`~carkit.errors.DecompressionBombError` before any pixel data is decoded;
a mode outside the policy raises :class:`~carkit.errors.UnsupportedImageError`.
Every message is one line and starts with the file name.

Writing (:func:`write_image`, :func:`write_bytes`)
-----------------------------
Atomic: the encoded file goes to a temporary file in the target's folder, is
flushed to disk (``fsync``), then renamed over the target with ``os.replace``.
A failure at any point removes the temporary file and leaves any previous
target untouched, so a reader never sees a partial file. :func:`encode_image`
gives the same bytes in memory (e.g. for standard output);
:func:`output_format` is the policy for restored outputs (lossless by
default; lossy only when asked for with a quality).
"""

from __future__ import annotations

import io as _io
import os
import secrets
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import (CarkitError, DecompressionBombError, ImageReadError, ImageWriteError, OutputExistsError,
                     UnsupportedImageError)

#: Largest image (in pixels) carkit opens. 24 MP JPEGs must work; this leaves room.
#: Read at call time (:func:`max_pixels`), so tests (or users) may change
#: ``carkit.io.MAX_PIXELS``; the environment variable ``CARKIT_MAX_PIXELS``
#: (what ``carkit --max-pixels`` sets, so worker processes see it) wins over it.
MAX_PIXELS = 128_000_000
MAX_PIXELS_ENV = "CARKIT_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit in force: ``$CARKIT_MAX_PIXELS`` if set, else :data:`MAX_PIXELS`."""
    value = os.environ.get(MAX_PIXELS_ENV)
    if value:
        try:
            return int(value)
        except ValueError:
            raise UnsupportedImageError(f"{MAX_PIXELS_ENV}={value!r} is not a whole number") from None
    return int(MAX_PIXELS)


def check_pixel_limit(width: int, height: int, name: str) -> None:
    """Refuse a declared size above the pixel limit (before anything is allocated)
    or with a zero side, with a one-line message saying how to raise the limit."""
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{name}: image declares an empty size {width}x{height}")
    limit = max_pixels()
    if width * height > limit:
        raise DecompressionBombError(
            f"{name}: image of {width}x{height} = {width * height} pixels exceeds the limit of {limit} "
            f"pixels (raise it with carkit --max-pixels N or ${MAX_PIXELS_ENV})")

# Pillow's own bomb check (the module global Image.MAX_IMAGE_PIXELS: a warning
# above it, an error above twice it) runs at the end of Image.open, on the size
# from the header. carkit replaces that check by its own exact one on the same
# size: the global is set to None only around Image.open (header parse, no pixel
# data), under a lock so concurrent carkit readers always restore it. Pillow's
# checks during decoding (TIFF tiles, GIF frames) keep the global's value.
_PIL_LIMIT_LOCK = threading.Lock()


def _open_header(source) -> Image.Image:
    """``Image.open`` (header parse only) with Pillow's own size check off:
    carkit checks the size itself (:func:`check_pixel_limit`)."""
    with _PIL_LIMIT_LOCK:
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit


_GRAY_MODES = ("1", "L")
_RGB_MODES = ("RGB", "RGBX", "YCbCr", "CMYK", "P")
_RGBA_MODES = ("RGBA", "RGBa", "PA")
_GRAY_ALPHA_MODES = ("LA", "La")
_I16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class ImageMetadata:
    """What a viewer needs besides the pixels, carried from an input to its
    output: the ICC profile (colour space), EXIF (orientation reset to 1, since
    carkit writes upright pixels), XMP and DPI. Each is None when absent."""

    icc_profile: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    dpi: tuple[float, float] | None = None

    @classmethod
    def of(cls, im: Image.Image) -> "ImageMetadata":
        info = im.info
        icc = info.get("icc_profile") or None
        xmp = info.get("xmp") or None
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        dpi = info.get("dpi")
        try:
            dpi = (float(dpi[0]), float(dpi[1])) if dpi and dpi[0] > 0 and dpi[1] > 0 else None
        except (TypeError, ValueError, IndexError):
            dpi = None
        exif = None
        try:
            tags = im.getexif()
            if len(tags):
                if tags.get(0x0112, 1) != 1:  # a copy: the image's own EXIF still says how to turn it
                    tags = Image.Exif()
                    tags.load(im.getexif().tobytes())
                    tags[0x0112] = 1
                exif = tags.tobytes()
        except Exception:  # unreadable EXIF: dropped, as the orientation is (read_image warns)
            exif = None
        return cls(icc if isinstance(icc, bytes) else None, exif, xmp if isinstance(xmp, bytes) else None, dpi)

    def save_options(self, fmt: str) -> dict:
        """Pillow ``Image.save`` arguments that write what ``fmt`` can carry."""
        fmt = fmt.upper()
        opts: dict = {}
        if fmt in ("PNG", "TIFF", "WEBP", "JPEG"):
            if self.icc_profile:
                opts["icc_profile"] = self.icc_profile
            if self.exif:
                opts["exif"] = self.exif
        if fmt in ("PNG", "TIFF", "JPEG") and self.dpi:
            opts["dpi"] = self.dpi
        if self.xmp:
            if fmt in ("JPEG", "WEBP"):
                opts["xmp"] = self.xmp
            elif fmt == "PNG":
                from PIL import PngImagePlugin

                info = PngImagePlugin.PngInfo()
                info.add_itxt("XML:com.adobe.xmp", self.xmp.decode("utf-8", "replace"))
                opts["pnginfo"] = info
            elif fmt == "TIFF":  # XMP is TIFF tag 700, written with the EXIF tags (tiffinfo would replace them)
                tags = Image.Exif()
                if self.exif:
                    tags.load(self.exif)
                tags[700] = self.xmp
                opts["exif"] = tags
        return opts


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
    #: ICC profile, EXIF, XMP and DPI of the file (for writing them back).
    metadata: ImageMetadata = field(default_factory=ImageMetadata)

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


def read_image_bytes(data: bytes, name: str = "<bytes>", apply_orientation: bool = True) -> LoadedImage:
    """Like :func:`read_image` for an encoded image held in memory; ``name`` is
    used in error messages."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_image_bytes expects bytes, got {type(data).__name__}")
    data = bytes(data)
    _register_heif_if(data[:16])
    return _read(_io.BytesIO(data), name, apply_orientation)


_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


def _register_heif_if(head: bytes) -> None:
    """Let Pillow open HEIF files (what ``carkit encode --method heif`` writes)
    when the file is one and pillow-heif is installed; without it the file
    stays unreadable with the usual message."""
    if head[4:8] != b"ftyp" or head[8:12] not in _HEIF_BRANDS:
        return
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def _read(source, name: str, apply_orientation: bool = True) -> LoadedImage:
    if isinstance(source, Path):
        try:
            with open(source, "rb") as fh:
                _register_heif_if(fh.read(16))
        except OSError as exc:
            raise ImageReadError(f"{name}: cannot open ({exc.strerror})") from exc
    try:
        im = _open_header(source)
        with im:
            w, h = im.size
            check_pixel_limit(w, h, name)
            im.load()
            fmt = im.format
            source_mode = im.mode
            metadata = ImageMetadata.of(im)
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
                       orientation=orientation, metadata=metadata)


@dataclass
class ImageHeader:
    """What an image's headers say, read without decoding its pixels."""

    size: tuple[int, int]
    orientation: int
    metadata: ImageMetadata
    format: str | None


def read_image_header(data: bytes, name: str = "<bytes>") -> ImageHeader:
    """Size (W, H), EXIF orientation and metadata from the headers alone (no
    pixel data is decoded, no size limit applies: check it with
    :func:`check_pixel_limit`). Raises ImageReadError for a corrupt header."""
    _register_heif_if(bytes(data[:16]))
    try:
        im = _open_header(_io.BytesIO(bytes(data)))
        with im:
            return ImageHeader(im.size, _exif_orientation(im), ImageMetadata.of(im), im.format)
    except Image.UnidentifiedImageError as exc:
        raise ImageReadError(f"{name}: not an image file carkit can read") from exc
    except Exception as exc:
        raise ImageReadError(f"{name}: corrupt image header ({_one_line(exc)})") from exc


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
                format: str | None = None, metadata: ImageMetadata | None = None, **save_kwargs) -> None:
    """Write uint8 (H, W) or (H, W, 3), with an optional uint8 (H, W) alpha
    re-attached, atomically (see the module docstring).

    The format comes from ``format`` (a Pillow name such as ``"PNG"``) or else
    the file extension; ``metadata`` (ICC profile, EXIF, XMP, DPI) is written
    where the format carries it; ``save_kwargs`` go to Pillow's ``Image.save``
    (e.g. ``lossless=True`` for WebP, ``quality=90`` for JPEG). The new file
    gets the usual permissions (0666 minus the umask). A format that cannot
    hold the image (e.g. alpha in JPEG) raises UnsupportedImageError; the
    target is then left as it was. Filesystem errors raise ImageWriteError.
    """
    path = Path(path)
    fmt = format.upper() if format else Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedImageError(f"{path}: unknown output format {path.suffix!r}")
    data = encode_image(pixels, fmt, alpha=alpha, metadata=metadata, name=str(path), **save_kwargs)
    write_bytes(path, data)


def encode_image(pixels: np.ndarray, format: str, alpha: np.ndarray | None = None,
                 metadata: ImageMetadata | None = None, name: str = "<output>", **save_kwargs) -> bytes:
    """The bytes :func:`write_image` would write, in memory (``format`` a Pillow
    name such as ``"PNG"``)."""
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
    fmt = format.upper()
    if fmt not in Image.SAVE:
        Image.init()
        if fmt not in Image.SAVE:
            raise UnsupportedImageError(f"{name}: Pillow cannot write format {fmt!r}")
    options = dict(metadata.save_options(fmt)) if metadata is not None else {}
    options.update(save_kwargs)
    buffer = _io.BytesIO()
    try:
        im.save(buffer, format=fmt, **options)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnsupportedImageError(
            f"{name}: cannot write {im.mode} image as {fmt} ({_one_line(exc)})") from exc
    return buffer.getvalue()


#: Output suffixes of restored / decoded images, and how each is written:
#: lossless unless a quality is given (JPEG and lossy WebP need one).
_OUTPUT_SUFFIXES = {".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                    ".jpg": "JPEG", ".jpeg": "JPEG"}


def output_format(path: str | os.PathLike, quality: int | None = None) -> tuple[str, dict]:
    """(Pillow format, save options) for writing a restored or decoded image to
    ``path``, by its suffix: PNG, TIFF and WebP are lossless; WebP with a
    ``quality`` is lossy; JPEG only with an explicit ``quality`` (writing a
    JPEG again re-adds artifacts, so it is never a silent default). ``"-"``
    (standard output) is PNG. Raises UsageError for anything else."""
    from .errors import UsageError

    text = os.fspath(path)
    suffix = ".png" if text == "-" else Path(text).suffix.lower()
    fmt = _OUTPUT_SUFFIXES.get(suffix)
    if fmt is None:
        raise UsageError(f"{text}: cannot tell the output format from {suffix or 'no suffix'!r}; "
                         "use .png, .webp, .tif, or .jpg with --output-quality")
    if quality is not None and not 1 <= int(quality) <= 100:
        raise UsageError(f"--output-quality must be in 1..100, got {quality}")
    if fmt == "JPEG":
        if quality is None:
            raise UsageError(f"{text}: writing JPEG re-adds compression artifacts; give --output-quality Q "
                             "to do it anyway, or write .png, .webp or .tif (lossless)")
        return fmt, {"quality": int(quality)}
    if fmt == "WEBP":
        return fmt, ({"lossless": True, "quality": 100} if quality is None else {"quality": int(quality)})
    if quality is not None:
        raise UsageError(f"{text}: --output-quality applies to .jpg and .webp outputs; {fmt} is lossless")
    if fmt == "TIFF":
        return fmt, {"compression": "tiff_deflate"}
    return fmt, {}


def check_output_path(src: str | os.PathLike | None, dst: str | os.PathLike, force: bool) -> None:
    """Never the input; never an existing output without ``force``; never a folder."""
    dst = Path(dst)
    src = None if src is None else Path(src)
    if dst.exists() or dst.is_symlink():
        if src is not None and src.exists() and dst.exists() and os.path.samefile(src, dst):
            raise OutputExistsError(f"{dst}: output would overwrite the input")
        if dst.is_dir():
            raise OutputExistsError(f"{dst}: is a folder, expected an output file")
        if not force:
            raise OutputExistsError(f"{dst}: already exists (use --force to overwrite)")


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
