"""Estimate the IJG quality of a JPEG from its quantization tables.

A JPEG file does not store its "quality"; it stores quantization tables (DQT
markers, ITU-T T.81 B.2.4.1). Encoders derived from the IJG code (libjpeg,
libjpeg-turbo, mozjpeg with default tables, Pillow, OpenCV, ImageMagick)
build them by scaling the T.81 Annex K tables with ``jpeg_quality_scaling``;
for such files the quality is recovered exactly by trying all 100 qualities
(see ``carkit.jpeg.tables``). Other encoders (Photoshop, cameras, custom
tables) get the nearest IJG quality and ``standard=False``.

Needs only numpy and Pillow (tables are read from the headers with
``Image.open``; the entropy-coded data is never decoded, so a truncated file
still has a quality).

Differences from common tools: ImageMagick's ``identify -format %Q`` and
libjpeg's ``jpeg_quality_estimate`` style heuristics compare table sums and
report a quality even for non-IJG tables without saying so; here a table set
is ``standard`` only when every table in use equals the IJG-scaled table at
one common quality (8-bit clamped as Pillow writes, or 16-bit unclamped as
``cjpeg`` without ``-baseline`` writes at low quality).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Collection, Mapping, Sequence, Union

import numpy as np

from ..errors import ImageReadError, InvalidTableError, NotAJpegError
from .files import require_jpeg_bytes, require_jpeg_path
from .tables import STD_CHROMINANCE, STD_LUMINANCE, _scale_with_factor, quality_scale

__all__ = ["QualityEstimate", "estimate_quality", "estimate_quality_of_file", "estimate_quality_of_tables",
           "read_quant_tables"]

_QUALITIES = np.arange(1, 101)


@dataclass(frozen=True)
class QualityEstimate:
    """Result of ``estimate_quality``.

    Attributes:
        quality: IJG quality 1..100. Exact when ``standard``; otherwise the
            quality whose IJG tables are nearest (least mean absolute
            difference over all entries of all tables in use).
        standard: True when every table in use is exactly an IJG-scaled
            T.81 table at ``quality`` (luminance base for tables used by the
            first component, chrominance base for the others).
        table_qualities: per DQT slot, the best quality for that table alone
            (``quality`` itself where that table matches it exactly).
        max_abs_error: largest |table - IJG table at ``quality``| over all
            entries in use; 0 when ``standard``.
        luma_slots: DQT slots compared against the luminance base table.
    """

    quality: int
    standard: bool
    table_qualities: dict[int, int] = field(default_factory=dict)
    max_abs_error: int = 0
    luma_slots: tuple[int, ...] = (0,)


def _candidates(base: np.ndarray) -> np.ndarray:
    """(2, 100, 64): IJG tables at q = 1..100, 8-bit clamped then 16-bit."""
    out = np.empty((2, 100, 64), dtype=np.int64)
    for b, force in enumerate((True, False)):
        for i, q in enumerate(_QUALITIES):
            out[b, i] = _scale_with_factor(base, quality_scale(int(q)), force).reshape(64)
    return out


_CANDIDATES: dict[str, np.ndarray] = {}


def _candidates_for(kind: str) -> np.ndarray:
    if kind not in _CANDIDATES:
        _CANDIDATES[kind] = _candidates(STD_LUMINANCE if kind == "luma" else STD_CHROMINANCE)
    return _CANDIDATES[kind]


def _as_table(t, slot) -> np.ndarray:
    a = np.asarray(t)
    if a.size != 64:
        raise InvalidTableError(f"quantization table {slot} must have 64 entries, got {a.size}")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise InvalidTableError(f"quantization table {slot} must hold integers")
    a = a.astype(np.int64).reshape(64)
    if a.min() < 1 or a.max() > 65535:
        raise InvalidTableError(f"quantization table {slot} has entries outside 1..65535")
    return a


def estimate_quality(
    tables: Union[Mapping[int, object], Sequence[object]],
    luma_slots: Collection[int] = (0,),
) -> QualityEstimate:
    """Estimate the IJG quality from quantization tables.

    Args:
        tables: DQT slot -> table, as a mapping (Pillow's ``im.quantization``)
            or a sequence indexed by slot; each table has 64 integer entries
            in natural (row-major) order, as (8, 8) or (64,).
        luma_slots: slots to compare against the luminance base table (the
            slot(s) used by the first component); all others are compared
            against the chrominance base table.

    Returns:
        A ``QualityEstimate``.

    Raises:
        ValueError: no tables, or a table that is not 64 integers in 1..65535.
    """
    items = dict(tables) if isinstance(tables, Mapping) else dict(enumerate(tables))
    if not items:
        raise InvalidTableError("no quantization tables given")
    luma_slots = tuple(sorted(int(s) for s in luma_slots))
    slots = sorted(items)
    tabs = {s: _as_table(items[s], s) for s in slots}

    # err[slot]: (100,) least mean abs error per quality over the two clamping
    # variants; exact[slot]: (100,) whether some variant matches exactly.
    err, exact, maxerr = {}, {}, {}
    for s in slots:
        cand = _candidates_for("luma" if s in luma_slots else "chroma")
        diff = np.abs(cand - tabs[s][None, None, :])  # (2, 100, 64)
        mean = diff.mean(axis=2)
        best_variant = mean.argmin(axis=0)  # (100,)
        err[s] = mean.min(axis=0)
        exact[s] = (diff.max(axis=2) == 0).any(axis=0)
        maxerr[s] = diff.max(axis=2)[best_variant, np.arange(100)]

    all_exact = np.logical_and.reduce([exact[s] for s in slots])
    if all_exact.any():
        # Unique in practice: the luminance tables differ for all 100
        # qualities; chrominance alone is ambiguous only at q = 1..3.
        idx = int(np.flatnonzero(all_exact)[-1])
        standard = True
    else:
        total = np.sum([err[s] for s in slots], axis=0)
        # lowest error; ties -> highest quality (np.argmin takes the first,
        # so search the reversed array)
        idx = 99 - int(np.argmin(total[::-1]))
        standard = False
    quality = int(_QUALITIES[idx])

    table_q = {}
    for s in slots:
        if exact[s][idx]:
            table_q[s] = quality
        else:
            table_q[s] = int(_QUALITIES[99 - int(np.argmin(err[s][::-1]))])
    max_abs = 0 if standard else int(max(maxerr[s][idx] for s in slots))
    return QualityEstimate(quality=quality, standard=standard, table_qualities=table_q,
                           max_abs_error=max_abs, luma_slots=luma_slots)


def _open_jpeg(source, name: str | None = None):
    """Open ``source`` (path or bytes) with Pillow, checking it is a JPEG."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "<bytes>"
        fp = io.BytesIO(require_jpeg_bytes(source, name))
    else:
        fp, name = require_jpeg_path(source)
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        # Only the headers are parsed here: neither the pixel limit nor
        # Pillow's malformed-MPO warning concern reading tables.
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(fp)
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{name}: corrupt JPEG header") from exc
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(f"{name}: corrupt JPEG header ({msg})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if im.format not in ("JPEG", "MPO"):
        im.close()
        raise NotAJpegError(f"{name}: not a JPEG file (format {im.format})")
    return im, name


def read_quant_tables(source, name: str | None = None) -> tuple[dict[int, np.ndarray], tuple[int, ...]]:
    """Quantization tables of a JPEG file, without decoding its image data.

    Args:
        source: path or the file's bytes.
        name: the file's name in error messages (default: the path, or "<bytes>").

    Returns:
        (tables, component_slots): DQT slot -> (8, 8) int64 table in natural
        order, and the slot used by each frame component, in frame order.

    Raises:
        NotAJpegError: not a JPEG (no SOI marker, or another format).
        ImageReadError: missing file, or a header Pillow cannot parse.
    """
    im, opened_name = _open_jpeg(source, name)
    name = name or opened_name
    with im:
        qt = getattr(im, "quantization", None) or {}
        layer = getattr(im, "layer", None) or []
        try:
            tables = {int(k): np.asarray(v, dtype=np.int64).reshape(8, 8) for k, v in qt.items()}
        except ValueError as exc:  # a DQT segment cut short: fewer than 64 entries
            raise InvalidTableError(f"{name}: quantization table of the wrong size") from exc
        comp_slots = tuple(int(c[3]) for c in layer)
    if not tables:
        raise ImageReadError(f"{name}: JPEG header has no quantization tables")
    return tables, comp_slots


def estimate_quality_of_file(source, name: str | None = None) -> QualityEstimate:
    """Estimate the IJG quality of a JPEG file (path or bytes).

    The slot used by the first frame component is compared with the
    luminance table, slots used only by the other components with the
    chrominance table; tables defined but used by no component are ignored.
    For MPO files the first (primary) image is used.

    Raises:
        NotAJpegError: the file is not a JPEG.
        InvalidTableError: a table in use that no conforming encoder writes
            (e.g. a zero entry); the file may still decode.
        ImageReadError: missing file or unparseable header.
    """
    if name is None:
        name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    tables, comp_slots = read_quant_tables(source, name)
    return estimate_quality_of_tables(tables, comp_slots, name)


def estimate_quality_of_tables(tables: Mapping[int, np.ndarray], comp_slots: Sequence[int],
                               name: str = "<tables>") -> QualityEstimate:
    """:func:`estimate_quality_of_file` for tables already read with
    :func:`read_quant_tables` (slot -> table, and each component's slot)."""
    if comp_slots:
        used = {s: tables[s] for s in sorted(set(comp_slots)) if s in tables}
        if len(used) != len(set(comp_slots)):
            missing = sorted(set(comp_slots) - set(tables))
            raise InvalidTableError(f"{name}: JPEG frame uses undefined quantization table(s) {missing}")
        luma = (comp_slots[0],)
    else:  # no frame header parsed: fall back to slot 0 = luminance
        used, luma = tables, (min(tables),)
    try:
        return estimate_quality(used, luma_slots=luma)
    except InvalidTableError as exc:
        raise InvalidTableError(f"{name}: {exc}") from exc
