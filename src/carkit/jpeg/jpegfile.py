"""A JPEG read once: its bytes, quality, decoded pixels, orientation and metadata.

Every JPEG that carkit restores goes through :meth:`JpegFile.read`, so the
input is opened once and each check happens where the fact is read: the SOI
marker, the declared size against the pixel limit (before anything large is
allocated), the quantization tables, then the decode by libjpeg-turbo (through
Pillow, the decoder the models were trained behind).

A file whose tables no conforming encoder writes (a zero entry, common in
damaged and fuzzed files) but which libjpeg-turbo still decodes is read with
``quality = None`` and ``quality_problem`` saying why; restoring it takes the
blind path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImageReadError, InvalidTableError
from ..io import ImageMetadata, LoadedImage, read_image_bytes
from .files import require_jpeg_bytes
from .quality import QualityEstimate, estimate_quality_of_tables, read_quant_tables


@dataclass
class JpegFile:
    """A decoded JPEG with what carkit reads from its headers.

    data: the file's bytes.
    name: the name used in messages (the path, or "<stdin>", "<bytes>").
    image: the decoded pixels as stored (EXIF orientation not yet applied,
        so the 8x8 grid starts at the corner), alpha, orientation, metadata.
    quality: the IJG quality estimate from the tables, or None when the
        tables are invalid (``quality_problem`` says how).
    """

    data: bytes
    name: str
    image: LoadedImage
    quality: QualityEstimate | None
    quality_problem: str | None = None
    #: DQT slot -> (8, 8) table, and the slot of each frame component
    tables: dict[int, np.ndarray] = field(default_factory=dict)
    component_slots: tuple[int, ...] = ()

    @classmethod
    def read(cls, source: str | os.PathLike | bytes, name: str | None = None) -> "JpegFile":
        """Read a JPEG from a path or its bytes. Raises NotAJpegError,
        ImageReadError or DecompressionBombError (one-line messages naming the
        file), never another exception for a bad file."""
        data, name = read_source_bytes(source, name)
        require_jpeg_bytes(data, name)
        problem = None
        tables, slots = read_quant_tables(data, name)
        try:
            quality = estimate_quality_of_tables(tables, slots, name)
        except InvalidTableError as exc:
            quality, problem = None, str(exc).removeprefix(f"{name}: ")
        image = read_image_bytes(data, name, apply_orientation=False)
        return cls(data=data, name=name, image=image, quality=quality, quality_problem=problem,
                   tables=tables, component_slots=slots)

    @property
    def coding_tables(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(luma, chroma) (8, 8) tables of the first two components (a gray
        file's chroma is its luma table), for models conditioned on them; None
        when the tables are invalid (``quality_problem``)."""
        if self.quality is None:
            return None
        return coding_tables(self.tables, self.component_slots)

    @property
    def pixels(self) -> np.ndarray:
        return self.image.pixels

    @property
    def is_gray(self) -> bool:
        return self.image.is_gray

    @property
    def metadata(self) -> ImageMetadata:
        return self.image.metadata


def coding_tables(tables: dict[int, np.ndarray], component_slots: tuple[int, ...]):
    """(luma, chroma) tables of a frame's first two components (a gray file's
    chroma is its luma table), or None without a frame header."""
    if not component_slots or any(s not in tables for s in component_slots[:2]):
        return None
    luma = tables[component_slots[0]]
    chroma = tables[component_slots[1]] if len(component_slots) > 1 else luma
    return luma, chroma


def coding_tables_of(data: bytes, name: str = "<bytes>"):
    """:func:`coding_tables` of a JPEG file's bytes."""
    return coding_tables(*read_quant_tables(data, name))


def read_source_bytes(source: str | os.PathLike | bytes, name: str | None = None) -> tuple[bytes, str]:
    """(bytes, display name) of a path or of bytes given directly; missing or
    unreadable paths raise ImageReadError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<bytes>"
    path = Path(os.fspath(source))
    name = name or str(path)
    if not path.exists():
        raise ImageReadError(f"{name}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{name}: not a regular file")
    try:
        return path.read_bytes(), name
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot read ({exc.strerror})") from exc
