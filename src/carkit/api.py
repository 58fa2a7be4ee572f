"""carkit's Python API: the verbs the command line is built on.

``restore``, ``encode``, ``decode``, ``load_model``, ``list_models`` and
``get_codec`` are re-exported from ``carkit`` (loaded on first use, so
``import carkit`` stays fast). Images go in as a numpy uint8 array ((H, W) or
(H, W, 3)), a PIL image, an encoded file's bytes or a path, and come out as
uint8 arrays. Errors are typed (:mod:`carkit.errors`), never ``sys.exit``.

    >>> import carkit
    >>> out = carkit.restore("examples/kodim23_q15.jpg")      # doctest: +SKIP
    >>> data = carkit.encode(out, "jpeg", quality=80)         # doctest: +SKIP
    >>> carkit.decode(data).shape                             # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import CarkitError, UsageError
from .io import _to_uint8, read_image, read_image_bytes
from .jpeg.quality import estimate_quality
from .codecs.base import check_image
from .jpeg.tables import check_quality
from .codecs.registry import canonical_name, codec_class, get_codec as _get_codec, sniff
from .codecs.hiding.codec import CARRIERS, HidingCodec, default_carrier, fallback_note
from .codecs.blockcnn.codec import BlockCNNCodec, DEFAULT_MODEL
from .codecs.virtual.codec import VirtualCodecCodec
from .jpeg.jpegfile import read_source_bytes
from .zoo.registry import list_weights, load_pretrained, weights_record


__all__ = ["restore", "encode", "decode", "decode_file", "load_model", "list_models", "get_codec",
           "Decoded", "encoder"]


# ------------------------------------------------------------------ restore


@lru_cache(maxsize=8)
def _restorer(model: str | None, device: str, tile: int, precision: str = "auto"):
    from .restoration.restorer import Restorer

    return Restorer(model=model, device=device, tile=tile, precision=precision)


def restore(x, model: str | None = None, *, quality: int | None = None, device: str = "cpu",
            tile: int = 512, precision: str = "auto") -> np.ndarray:
    """Restore a JPEG; returns the restored uint8 image, upright.

    ``x``: the JPEG's bytes or path (quality read from its tables, the file
    read once), or decoded pixels (an array or PIL image; a PIL JPEG keeps its
    tables, otherwise the quality is unknown and the blind model restores it,
    unless ``quality`` says it). ``model``: a zoo name (default: chosen per
    image, as ``carkit restore``). ``precision``: auto (bf16 where the CPU
    computes it natively), fp32 or bf16."""
    from .restoration.restorer import RestorePlan, restore_jpeg

    restorer = _restorer(model, device, tile, precision)
    if isinstance(x, (bytes, bytearray, memoryview, str, os.PathLike)):
        return restore_jpeg(restorer, x).pixels
    pixels, tables_quality = _pixels_and_quality(x)
    q = quality if quality is not None else tables_quality
    plan: RestorePlan = restorer.plan(pixels.ndim == 2, q)
    return restorer.restore_pixels(pixels, plan)


def _pixels_and_quality(x) -> tuple[np.ndarray, int | None]:
    """uint8 pixels of an array or PIL image, and the IJG quality of a PIL JPEG's tables."""
    from PIL import Image

    if isinstance(x, Image.Image):
        quality = None
        tables = getattr(x, "quantization", None)
        if tables:
            try:
                quality = estimate_quality(tables).quality
            except ValueError:
                quality = None
        return _to_uint8(x)[0], quality
    return _as_pixels(x), None


def _as_pixels(x) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) pixels (a trailing single channel dropped), by
    the codecs' one input check; a UsageError otherwise."""
    arr = np.asarray(x)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    try:
        return check_image(arr)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _read_pixels(image) -> np.ndarray:
    """Pixels of an array, PIL image, encoded bytes or path (upright, alpha dropped)."""
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        return read_image_bytes(image).pixels
    if isinstance(image, (str, os.PathLike)):
        return read_image(image).pixels
    if isinstance(image, Image.Image):
        return _pixels_and_quality(image)[0]
    return _as_pixels(image)


# ------------------------------------------------------------------ encode


def checked_quality(quality) -> int:
    """A codec quality 1..100 (:func:`carkit.jpeg.tables.check_quality`), or a UsageError."""
    try:
        return check_quality(quality)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


#: Hiding carriers and learned codecs take a zoo pair with ``model=``; these accept it.
_MODEL_METHODS = ("hiding", "blockcnn", "vcnn")


def encoder(method: str, *, model: str | None = None, codec: str | None = None, **options):
    """The codec object that ``encode`` uses for ``method`` (a registered codec
    name or alias; ``model`` picks zoo weights for hiding/blockcnn/vcnn,
    ``codec`` the standard codec under hiding)."""
    try:
        method = canonical_name(method)
    except CarkitError as exc:
        raise UsageError(str(exc)) from exc
    if codec and method != "hiding":
        raise UsageError(f"--codec applies to --method hiding, not {method}")
    for option in ("strength", "refine"):
        if option in options and method != "hiding":
            raise UsageError(f"--{option} applies to --method hiding, not {method}")
    if model and method not in _MODEL_METHODS:
        raise UsageError(f"--model applies to --method blockcnn, vcnn or hiding, not {method}")
    if method == "hiding":
        try:
            base = canonical_name(codec or default_carrier())
        except CarkitError as exc:
            raise UsageError(str(exc)) from exc
        if base not in CARRIERS:
            raise UsageError(f"--codec {base}: its files cannot carry the hiding marker "
                             f"(supported: {', '.join(sorted(CARRIERS))})")
        return HidingCodec(codec=base, model=model, **options)
    if method == "blockcnn":
        return BlockCNNCodec(model=model or DEFAULT_MODEL, **options)
    if method == "vcnn":
        return VirtualCodecCodec(model=model, **options)
    return _get_codec(method, **options)


def encode(image, method: str = "jpeg", quality: int = 75, **options) -> bytes:
    """Compress an image (array, PIL image, encoded bytes or path) with a
    registered codec; returns the file's bytes. ``options`` go to the codec
    (``model=``/``codec=`` for the learned methods, e.g. ``encode(img,
    "hiding", 50, codec="jpeg")``)."""
    quality = checked_quality(quality)
    codec = encoder(method, **options)
    pixels = _read_pixels(image)
    try:
        return codec.encode(pixels, quality)
    except ValueError as exc:
        raise CarkitError(str(exc)) from exc


# ------------------------------------------------------------------ decode


@dataclass
class Decoded:
    """A decoded file: upright uint8 pixels, the metadata to write with them
    (standard images), what kind of file it was, and a note where decoding
    did something other than asked (a hiding file decoded blind)."""

    pixels: np.ndarray
    kind: str
    metadata: object | None = None
    note: str | None = None


#: why ``restore=`` does not apply to a codec's files (it applies to .bcnn files only)
_OWN_DECODER = {
    "hiding": "a residual-hiding file is decoded by its own decoder; drop --restore",
    "vcnn": "a virtual-codec file is decoded by its own post-processor; drop --restore",
    "factorized": "--restore applies to .bcnn files, not to learned-codec files",
}


def decode_file(data: bytes, name: str = "<bytes>", *, method: str = "auto",
                restore: str | None = None) -> Decoded:
    """Decode any file carkit writes, recognised by its content: the registered
    codecs' ``sniff`` are asked in order (:func:`carkit.codecs.registry.sniff`;
    a residual-hiding or virtual-codec file by its marker, a .bcnn or .ckfp
    file by its magic); a learned codec's file is decoded by that codec, any
    other image by Pillow with its metadata. ``method="hiding"``: a file
    without the hiding marker (a plain JPEG) is restored by the blind restorer
    instead (the note says so). ``restore``: a zoo artifact remover applied
    after a .bcnn decode. Raises CarkitError subclasses for anything wrong."""
    if method not in ("auto", "hiding"):
        raise UsageError(f"decode method must be 'auto' or 'hiding', got {method!r}")
    data = bytes(data)
    kind = sniff(data)
    if restore and (kind == "hiding" or method == "hiding"):
        raise UsageError(f"{name}: {_OWN_DECODER['hiding']}")
    if method == "hiding" and kind != "hiding":
        from .restoration.restorer import restore_jpeg

        restored = restore_jpeg(_restorer(None, "cpu", 512), data, name)  # as `carkit restore`
        return Decoded(restored.pixels, "jpeg-restored", restored.metadata, fallback_note(restored.plan))
    codec = codec_class(kind) if kind is not None else None
    if codec is not None and not codec.plain_image:
        if restore and kind in _OWN_DECODER:
            raise UsageError(f"{name}: {_OWN_DECODER[kind]}")
        found = codec.for_file(data)
        if restore:
            from .restoration.codec import RestoredCodec

            found = RestoredCodec(found, restore)
        return Decoded(found.decode(data), kind)
    if restore:
        raise UsageError(f"{name}: not a .bcnn file; --restore applies to .bcnn files "
                         "(use `carkit restore` for JPEGs)")

    image = read_image_bytes(data, name)
    return Decoded(image.pixels, "image", image.metadata)


def decode(data) -> np.ndarray:
    """Decode any file carkit writes (bytes or a path); returns uint8 pixels.
    See :func:`decode_file` for the options."""
    if isinstance(data, (str, os.PathLike)):
        data, name = read_source_bytes(data)
        return decode_file(data, name).pixels
    return decode_file(data).pixels


# ------------------------------------------------------------------ models and codecs


def load_model(name: str, device: str = "cpu"):
    """A zoo model with its weights loaded (sha256-checked), in eval mode."""
    return load_pretrained(name, device)


def list_models(role: str | None = None) -> list[str]:
    """Names of the shipped weights, optionally of one role (restorer, kspace,
    hiding, vcodec, learned-codec, predictor, codec-sim)."""
    names = list_weights()
    if role is None:
        return names
    return [n for n in names if weights_record(n).kind == role]


def get_codec(name: str, **options):
    """A registered codec by name (jpeg, webp, avif, heif, jpeg2000, blockcnn,
    hiding, vcnn, factorized); see :mod:`carkit.codecs.registry`."""
    return encoder(name, **options)
