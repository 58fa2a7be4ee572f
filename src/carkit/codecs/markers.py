"""Small metadata markers inside standard files, written without re-encoding.

Codec wrappers (residual hiding, the virtual codec) leave a short payload in
the standard file they produce, so that carkit can tell its own files apart
while every other reader still opens them. Each carrier adds bytes where its
format allows private data and leaves the coded image data untouched:

- JPEG: a COM segment (0xFFFE) after SOI and the APPn segments (JFIF, EXIF);
- JPEG 2000 codestream (.j2k): a COM segment (0xFF64, Rcom = 0: binary) at
  the end of the main header, just before the first tile-part (SOT); ISO
  15444-1 allows COM anywhere in the main header after SIZ;
- HEIF (ISO-BMFF): a top-level ``uuid`` box with carkit's own UUID appended
  at the end of the file. ISO 14496-12 requires readers to skip boxes they do
  not know, and an appended box moves no byte that the ``iloc`` offsets
  point at.

- carkit's factorized-prior container (.ckfp, ``codecs/factorized/codec.py``):
  CRC-checked ``CKMK`` chunks after the container, which its decoder skips.

``read`` returns every payload a file carries in that kind of segment (a
list, possibly empty), or an empty list for bytes of another format; it
never raises on foreign or damaged input, so callers can probe any file.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Callable

from ..errors import CodecError
from ..jpeg.files import header_segments

#: the ``uuid`` box type of carkit's payloads in ISO-BMFF files
CARKIT_UUID = uuid.uuid5(uuid.NAMESPACE_URL, "https://carkit/markers/v1").bytes
#: longest payload a 16-bit segment length allows (length field counts itself)
_MAX_SEGMENT = 65535 - 2


@dataclass(frozen=True)
class Carrier:
    """How one format carries a payload: ``write(data, payload) -> data``,
    ``read(data) -> [payload, ...]``."""

    format: str
    write: Callable[[bytes, bytes], bytes]
    read: Callable[[bytes], list[bytes]]


def _check_len(payload: bytes, limit: int, what: str) -> None:
    if len(payload) > limit:
        raise CodecError(f"marker of {len(payload)} bytes is too long for a {what}")


# ------------------------------------------------------------------ JPEG


def jpeg_write(data: bytes, payload: bytes) -> bytes:
    """``data`` with a COM segment holding ``payload`` after SOI and the APPn segments."""
    if not data.startswith(b"\xff\xd8"):
        raise CodecError("marker: the JPEG encoder did not return a JPEG")
    _check_len(payload, _MAX_SEGMENT, "JPEG comment")
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return data[:pos] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + data[pos:]


def jpeg_read(data: bytes) -> list[bytes]:
    """COM payloads of a JPEG's header (up to the first SOS), [] for anything else."""
    data = bytes(data)
    return [data[pos + 4:pos + 2 + length] for marker, pos, length in header_segments(data)
            if marker == 0xFE and pos + 2 + length <= len(data)]


# ------------------------------------------------------------------ JPEG 2000


def _j2k_main_header_end(data: bytes) -> int | None:
    """Offset of the first SOT of a J2K codestream (the main header's end), or None."""
    if not data.startswith(b"\xff\x4f\xff\x51"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        marker = int.from_bytes(data[pos:pos + 2], "big")
        if marker == 0xFF90:
            return pos
        if data[pos] != 0xFF:
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2:
            return None
        pos += 2 + length
    return None


def j2k_write(data: bytes, payload: bytes) -> bytes:
    """``data`` (a raw J2K codestream) with a binary COM segment before the first tile-part."""
    end = _j2k_main_header_end(data)
    if end is None:
        raise CodecError("marker: the JPEG 2000 encoder did not return a J2K codestream")
    _check_len(payload, _MAX_SEGMENT - 2, "JPEG 2000 comment")
    segment = b"\xff\x64" + (len(payload) + 4).to_bytes(2, "big") + b"\x00\x00" + payload
    return data[:end] + segment + data[end:]


def j2k_read(data: bytes) -> list[bytes]:
    """COM payloads of a J2K codestream's main header, [] for anything else."""
    data = bytes(data)
    end = _j2k_main_header_end(data)
    if end is None:
        return []
    out, pos = [], 2
    while pos < end:
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if data[pos:pos + 2] == b"\xff\x64" and length >= 4:
            out.append(data[pos + 6:pos + 2 + length])
        pos += 2 + length
    return out


# ------------------------------------------------------------------ HEIF (ISO-BMFF)


def _boxes(data: bytes):
    """(type, payload start, end) of each top-level ISO-BMFF box; stops at damage."""
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        start = pos + 8
        if size == 1 and pos + 16 <= len(data):
            size, start = int.from_bytes(data[pos + 8:pos + 16], "big"), pos + 16
        elif size == 0:
            size = len(data) - pos
        if size < start - pos or pos + size > len(data):
            return
        yield kind, start, pos + size
        pos += size


def isobmff_brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO-BMFF file's leading ``ftyp``
    box (``heic``, ``avif``, ``mif1``, ...); an empty set for anything else."""
    data = bytes(data[:4096])
    if data[4:8] != b"ftyp":
        return set()
    size = min(int.from_bytes(data[:4], "big"), len(data))
    if size < 16:
        return set()
    return {data[8:12], *(data[i:i + 4] for i in range(16, size - 3, 4))}


def isobmff_write(data: bytes, payload: bytes) -> bytes:
    """``data`` (a HEIF file) with a top-level ``uuid`` box of carkit's UUID appended."""
    if data[4:8] != b"ftyp":
        raise CodecError("marker: the HEIF encoder did not return an ISO-BMFF file")
    body = CARKIT_UUID + payload
    return data + (len(body) + 8).to_bytes(4, "big") + b"uuid" + body


def isobmff_read(data: bytes) -> list[bytes]:
    """Payloads of carkit's top-level ``uuid`` boxes, [] for anything else."""
    data = bytes(data)
    if data[4:8] != b"ftyp":
        return []
    return [data[s + 16:e] for kind, s, e in _boxes(data)
            if kind == b"uuid" and data[s:s + 16] == CARKIT_UUID]


# ------------------------------------------------------------------ carkit's factorized-prior container


def ckfp_write(data: bytes, payload: bytes) -> bytes:
    """``data`` (a .ckfp file) with a marker chunk holding ``payload`` appended."""
    from .factorized.codec import append_marker

    return append_marker(data, payload)


def ckfp_read(data: bytes) -> list[bytes]:
    """Marker-chunk payloads of a .ckfp file, [] for anything else."""
    from .factorized.codec import read_markers

    return read_markers(data)


# ------------------------------------------------------------------ carkit's JSON payloads


def json_marker(payload: bytes, prefix: bytes, fields: dict[str, type], what: str) -> dict:
    """The JSON object after ``prefix`` in a carkit marker (``carkit-hiding
    {...}``, ``carkit-vcodec {...}``), with every key of ``fields`` present
    and of its type (``int``: a JSON integer, not a boolean); optional keys
    are the caller's to check. A marker that is not such an object (damaged
    JSON, NaN or Infinity, nesting too deep, other types) raises a one-line
    :class:`CodecError` naming ``what``."""

    def no_constant(name):
        raise ValueError(f"{name} is not a number")

    try:
        marker = json.loads(bytes(payload[len(prefix):]), parse_constant=no_constant)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too many digits, deep nesting
        raise CodecError(f"damaged {what} marker in this file (not JSON)") from None
    if not isinstance(marker, dict):
        raise CodecError(f"damaged {what} marker in this file (not a JSON object)")
    for key, kind in fields.items():
        value = marker.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CodecError(f"damaged {what} marker in this file ({key!r} is missing or not a {kind.__name__})")
    return marker


def check_weights_digest(marker: dict, what: str) -> str:
    """A marker's ``sha256`` field: 8 to 64 lowercase hex digits (a prefix of
    the weights' sha256), else a one-line :class:`CodecError`."""
    digest = marker.get("sha256")
    if not isinstance(digest, str) or not 8 <= len(digest) <= 64 or digest.strip("0123456789abcdef"):
        raise CodecError(f"damaged {what} marker in this file (sha256 is not a hex digest)")
    return digest


#: carriers by registered codec name
CARRIERS = {
    "jpeg": Carrier("jpeg", jpeg_write, jpeg_read),
    "jpegli": Carrier("jpeg", jpeg_write, jpeg_read),   # jpegli writes JPEG files
    "jpeg2000": Carrier("j2k", j2k_write, j2k_read),
    "heif": Carrier("heif", isobmff_write, isobmff_read),
    "factorized": Carrier("ckfp", ckfp_write, ckfp_read),
}
#: the registered codecs that write JPEG files (libjpeg-turbo's and jpegli's)
JPEG_WRITERS = tuple(codec for codec, carrier in CARRIERS.items() if carrier.format == "jpeg")


def find_payload(data: bytes, prefix: bytes) -> tuple[str, bytes] | None:
    """(codec, payload) of the first payload starting with ``prefix`` in any
    carrier's segments of ``data``, or None; ``codec`` is the first codec
    registered for the file's format (``jpeg`` for a jpegli file)."""
    seen = set()
    for codec, carrier in CARRIERS.items():
        if carrier.format in seen:  # one reading per file format (jpegli's files are JPEG's)
            continue
        seen.add(carrier.format)
        for payload in carrier.read(data):
            if payload.startswith(prefix):
                return codec, payload
    return None
