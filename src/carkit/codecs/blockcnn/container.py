"""The ``.bcnn`` container of the BlockCNN codec (see
:mod:`carkit.codecs.blockcnn.codec`): a small checked header around the
residual JPEG.

Layout (little endian)::

    magic b"BCNN" | version u8 (2) | mode u8 (0 gray, 1 color) | quality u8 |
    name length u8 | width u32 | height u32 | predictor name (utf-8) |
    predictor weights hash (32 bytes) | payload length u32 |
    CRC32 u32 (of everything before it and the payload) | payload
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ...errors import CodecError

MAGIC = b"BCNN"
VERSION = 2  # 1: the prediction's whole texture (before damping; no longer read)

_FIXED = struct.Struct("<4sBBBBII")  # magic, version, mode, quality, name length, width, height
_HASH_LEN = 32


class BcnnFormatError(CodecError):
    """A .bcnn file is not one, is truncated, corrupted, or of another version."""



# ---------------------------------------------------------------- container

@dataclass(frozen=True)
class BcnnHeader:
    version: int
    gray: bool
    quality: int
    width: int
    height: int
    model: str
    weights_hash: str  # hex
    payload_offset: int
    payload_length: int


def is_bcnn(data: bytes) -> bool:
    """Whether ``data`` starts with the .bcnn magic."""
    return bytes(data[:len(MAGIC)]) == MAGIC


def pack_container(header_fields: dict, payload: bytes) -> bytes:
    name = header_fields["model"].encode("utf-8")
    if len(name) > 255:
        raise CodecError(f"predictor name too long for the container: {header_fields['model']!r}")
    head = (_FIXED.pack(MAGIC, VERSION, 0 if header_fields["gray"] else 1, header_fields["quality"],
                        len(name), header_fields["width"], header_fields["height"])
            + name + bytes.fromhex(header_fields["weights_hash"]))
    head += struct.pack("<I", len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def read_header(data: bytes) -> BcnnHeader:
    """Parse and check a .bcnn container (magic, version, lengths, CRC);
    raises :class:`BcnnFormatError` with a one-line message."""
    data = bytes(data)
    if not is_bcnn(data):
        raise BcnnFormatError("not a BlockCNN .bcnn file (bad magic)")
    if len(data) < len(MAGIC) + 1:
        raise BcnnFormatError("truncated .bcnn file (no header)")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise BcnnFormatError(f"unsupported .bcnn format version {version} (this carkit reads version {VERSION})")
    if len(data) < _FIXED.size:
        raise BcnnFormatError(f"truncated .bcnn file ({len(data)} bytes, header incomplete)")
    _, _, mode, quality, name_len, width, height = _FIXED.unpack_from(data)
    crc_at = _FIXED.size + name_len + _HASH_LEN + 4
    offset = crc_at + 4
    if len(data) < offset:
        raise BcnnFormatError(f"truncated .bcnn file ({len(data)} bytes, header incomplete)")
    name_raw = data[_FIXED.size:_FIXED.size + name_len]
    digest = data[_FIXED.size + name_len:_FIXED.size + name_len + _HASH_LEN]
    (length,) = struct.unpack_from("<I", data, crc_at - 4)
    (crc,) = struct.unpack_from("<I", data, crc_at)
    have = len(data) - offset
    if have < length:
        raise BcnnFormatError(f"truncated .bcnn file (payload has {have} of {length} bytes)")
    if have > length:
        raise BcnnFormatError(f"corrupted .bcnn file ({have - length} bytes after the payload)")
    if zlib.crc32(data[offset:], zlib.crc32(data[:crc_at])) != crc:
        raise BcnnFormatError("corrupted .bcnn file (CRC32 mismatch)")
    if mode not in (0, 1) or not 1 <= quality <= 100 or width < 1 or height < 1:
        raise BcnnFormatError(f"corrupted .bcnn header (mode {mode}, quality {quality}, size {width}x{height})")
    try:
        model = name_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BcnnFormatError("corrupted .bcnn header (predictor name is not UTF-8)") from None
    return BcnnHeader(version, mode == 0, quality, width, height, model, digest.hex(), offset, length)
