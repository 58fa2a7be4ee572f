"""The one check that a path or a byte string holds a JPEG (SOI marker), and
the one walker of a JPEG header's marker segments."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..errors import ImageReadError, NotAJpegError

SOI = b"\xff\xd8"


def require_jpeg_bytes(data: bytes, name: str = "<bytes>") -> bytes:
    """Return ``data`` as bytes if it starts with the JPEG SOI marker."""
    data = bytes(data)
    if not data.startswith(SOI):
        raise NotAJpegError(f"{name}: not a JPEG file (no SOI marker)")
    return data


def require_jpeg_path(source: str | os.PathLike) -> tuple[Path, str]:
    """Return (path, display name) if ``source`` is a readable file starting with SOI."""
    path = Path(os.fspath(source))
    name = str(path)
    if not path.is_file():
        raise ImageReadError(f"{name}: no such file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SOI))
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot open ({exc.strerror})") from exc
    if head != SOI:
        raise NotAJpegError(f"{name}: not a JPEG file (no SOI marker)")
    return path, name


#: start-of-frame markers (T.81 Table B.1: SOF0..SOF15 less DHT, JPG and DAC)
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(marker, offset, length)`` of each marker segment of a JPEG's header,
    after SOI and before the first SOS or EOI: ``offset`` is where its 0xFF
    stands, ``length`` its length field (which counts itself, not the two
    marker bytes). Fill bytes, TEM and RSTn are skipped. Stops quietly where
    the bytes stop making sense (no SOI, no 0xFF where a marker belongs, a
    length below 2); the last segment may run past the end of ``data``, which
    callers check. The one walker of JPEG marker segments (the frame size, the
    COM payloads of ``carkit.codecs.markers``); never raises."""
    if not data.startswith(SOI):
        return
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # TEM, RSTn: no length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI, SOS: the header is over
            return
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2:
            return
        yield marker, pos, length
        pos += 2 + length


def frame_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the first frame header (SOFn) of a JPEG, found by
    walking the marker segments before the first scan; None when there is no
    readable one (no SOI, a damaged segment length, no SOF before SOS). For
    checking a declared size before a decoder allocates for it; never raises."""
    data = bytes(data)
    for marker, pos, length in header_segments(data):
        if marker in _SOF_MARKERS:
            if length < 8 or pos + 9 > len(data):
                return None
            return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
    return None
