"""The one check that a path or a byte string holds a JPEG (SOI marker)."""

from __future__ import annotations

import os
from pathlib import Path

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
