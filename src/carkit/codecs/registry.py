"""The codec registry: one name per codec, standard or learned.

Register a codec class (a ``Codec`` subclass) or any factory returning a
``Codec``, either eagerly::

    @register_codec("mycodec")
    class MyCodec(Codec): ...

or lazily, by an import string, so that listing codecs never imports the
module (learned codecs pull in torch)::

    register_codec("blockcnn", "carkit.codecs.blockcnn.codec:BlockCNNCodec")

Built-in entries are lazy, so ``import carkit.codecs`` imports neither Pillow
nor torch. :func:`sniff` names the codec of a file by asking each registered
codec's ``sniff(data)`` in registration order (decode dispatch). A codec is *available* when its target imports and its
``unavailable_reason()`` classmethod (if any) returns None.

    >>> codec = get_codec("webp", method=4)
    >>> rt = codec.roundtrip(image, quality=50)   # decoded, data, bpp, times

Any registered codec followed by any zoo restorer is ``CODEC+RESTORER``
(``carkit.restoration.codec``, resolved by import string like the learned codecs,
so this module imports nothing above it): ``get_codec("jpeg+dagn-small")``
writes the codec's bytes and restores what it decodes; options go to the codec.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import CodecError

Target = Any  # a Codec subclass, a factory callable, or "package.module:Attr"

#: ``CODEC+RESTORER``: a codec followed by a zoo restorer
SEPARATOR = "+"
#: the wrapper that builds ``CODEC+RESTORER`` codecs (restoration sits above the codecs)
RESTORED_CODEC = "carkit.restoration.codec:RestoredCodec"


def _import_target(target: str, label: str):
    """The object an import string ``package.module:Attr`` names."""
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CodecError(f"{label}: cannot import {target} ({exc})") from exc
    return obj


def split_name(name: str) -> tuple[str, str | None]:
    """``"jpeg+dagn-small"`` -> ("jpeg", "dagn-small"); ``"jpeg"`` -> ("jpeg", None)."""
    inner, sep, restorer = str(name).partition(SEPARATOR)
    return inner, (restorer if sep else None)


@dataclass
class CodecEntry:
    name: str
    target: Target
    description: str = ""
    aliases: tuple[str, ...] = ()
    _resolved: Any = field(default=None, repr=False)

    def resolve(self):
        """The class or factory, importing it on first use."""
        if self._resolved is None:
            if isinstance(self.target, str):
                self._resolved = _import_target(self.target, self.name)
            else:
                self._resolved = self.target
        return self._resolved

    def unavailable_reason(self) -> str | None:
        try:
            target = self.resolve()
        except CodecError as exc:
            return str(exc)
        check = getattr(target, "unavailable_reason", None)
        if check is None:
            return None
        try:
            return check()
        except Exception as exc:  # a broken availability probe means unavailable
            return f"{self.name}: availability check failed ({exc})"


_REGISTRY: dict[str, CodecEntry] = {}
_ALIASES: dict[str, str] = {}


def register_codec(name: str, target: Target = None, *, description: str = "",
                   aliases: tuple[str, ...] | list[str] = (), overwrite: bool = False):
    """Register ``target`` under ``name`` (lower case). Without ``target`` this
    is a decorator. Re-registering a name raises unless ``overwrite=True``."""
    key = name.lower()

    def add(obj):
        if not overwrite and (key in _REGISTRY or key in _ALIASES):
            raise CodecError(f"codec {key!r} is already registered")
        doc = description
        if not doc and not isinstance(obj, str):
            doc = ((getattr(obj, "__doc__", "") or "").strip().splitlines() or [""])[0]
        _REGISTRY[key] = CodecEntry(key, obj, doc, tuple(a.lower() for a in aliases))
        for alias in aliases:
            _ALIASES[alias.lower()] = key
        return obj

    if target is None:
        return add
    add(target)
    return target


def _entry(name: str) -> CodecEntry:
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    entry = _REGISTRY.get(key)
    if entry is None:
        raise CodecError(f"unknown codec {name!r}; known codecs: {', '.join(list_codecs())}")
    return entry


def canonical_name(name: str) -> str:
    """The registered name for ``name`` or one of its aliases (``CODEC+RESTORER``:
    the codec's registered name, then the restorer)."""
    inner, restorer = split_name(name)
    return _entry(inner).name if restorer is None else f"{_entry(inner).name}+{restorer}"


def get_codec(name: str, **options):
    """A ready codec instance; ``CODEC+RESTORER`` is that codec (built with
    ``options``) followed by the zoo restorer (``carkit.restoration.codec.RestoredCodec``).
    Unknown names and restorers, codecs this machine cannot run, and options
    the codec does not take raise ``CodecError``."""
    inner, restorer = split_name(name)
    if restorer is not None:
        if not restorer:
            raise CodecError(f"{name!r}: no restorer after '+' (give CODEC+RESTORER, e.g. jpeg+dagn-small)")
        return _import_target(RESTORED_CODEC, name)(get_codec(inner, **options), restorer)
    entry = _entry(name)
    reason = entry.unavailable_reason()
    if reason:
        raise CodecError(reason if reason.startswith(entry.name) else f"{entry.name}: {reason}")
    factory = entry.resolve()
    try:
        return factory(**options)
    except TypeError as exc:
        raise CodecError(f"{entry.name}: bad options {sorted(options)} ({exc})") from exc
    except ValueError as exc:
        raise CodecError(f"{entry.name}: {exc}") from exc


def codec_class(name: str):
    """The class (or factory) registered under ``name`` or an alias, imported on first use."""
    return _entry(name).resolve()


def sniff(data: bytes) -> str | None:
    """The name of the codec whose file ``data`` is: the registered codecs'
    ``sniff`` asked in registration order (the built-in learned codecs first:
    a residual-hiding or virtual-codec file is also a standard file); None for
    bytes that no codec claims (a PNG, say). A codec whose module cannot be
    imported here is skipped; nothing is decoded."""
    data = bytes(data)
    for name, entry in _REGISTRY.items():
        try:
            target = entry.resolve()
        except CodecError:
            continue
        test = getattr(target, "sniff", None)
        if test is not None and test(data):
            return name
    return None


def list_codecs() -> list[str]:
    """Every registered codec name, available here or not, sorted."""
    return sorted(_REGISTRY)


def available_codecs() -> list[str]:
    """The registered codecs this machine can run, sorted."""
    return [n for n in list_codecs() if _REGISTRY[n].unavailable_reason() is None]


def codec_info() -> list[dict]:
    """One row per registered codec: name, aliases, available, reason, description."""
    rows = []
    for n in list_codecs():
        e = _REGISTRY[n]
        reason = e.unavailable_reason()
        rows.append({"name": n, "aliases": list(e.aliases), "available": reason is None,
                     "reason": reason, "description": e.description})
    return rows


# Built-in codecs, registered lazily (import strings). Decode dispatch (:func:`sniff`)
# asks them in this order: the learned codecs first, since their files are standard
# files with a marker inside or carry a marker chunk, then the standard formats.
register_codec("hiding", "carkit.codecs.hiding.codec:HidingCodec", aliases=("residual-hiding",),
               description="residual hiding: E hides the codec's residual in the image before a standard JPEG "
                           "(marked), D recovers it after decoding")
register_codec("vcnn", "carkit.codecs.virtual.codec:VirtualCodecCodec", aliases=("vcodec", "virtual-codec"),
               description="virtual codec: FDNN half-size description as a standard JPEG (marked), PPNN to decode")
register_codec("blockcnn", "carkit.codecs.blockcnn.codec:BlockCNNCodec", aliases=("bcnn",),
               description="BlockCNN block prediction (integer-exact CNN) + JPEG-coded residual, .bcnn")
register_codec("factorized", "carkit.codecs.factorized.codec:FactorizedCodec", aliases=("factorized-prior",),
               description="learned codec: Ballé 2018 factorized prior, range-coded (constriction), .ckfp; "
                           "quality picks the zoo's rate point")
register_codec("jpeg", "carkit.codecs.jpeg:JpegCodec", aliases=("jpg",),
               description="JPEG via Pillow/libjpeg-turbo (PROTOCOL settings: baseline, 4:2:0)")
register_codec("jpegli", "carkit.codecs.jpegli:JpegliCodec",
               description="JPEG by Google's jpegli encoder (ajpegli): 4:2:0, adaptive quantization, progressive; "
                           "standard files, decoded by Pillow/libjpeg-turbo as a viewer would")
register_codec("jpeg2000", "carkit.codecs.jpeg2000:Jpeg2000Codec", aliases=("j2k", "jp2"),
               description="JPEG 2000 via Pillow/OpenJPEG, rate-controlled: ratio 4*2^((100-q)/20)")
register_codec("webp", "carkit.codecs.webp:WebPCodec",
               description="lossy WebP via Pillow/libwebp, method 4")
register_codec("avif", "carkit.codecs.avif:AvifCodec",
               description="AVIF via Pillow/libavif (aom), speed 6, 1 thread")
register_codec("heif", "carkit.codecs.heif:HeifCodec", aliases=("heic", "hevc"),
               description="HEIF/HEVC intra via pillow-heif (x265), preset medium")
