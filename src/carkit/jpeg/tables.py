"""Standard JPEG quantization tables, IJG quality scaling and zigzag order.

Everything here is numpy-only (no torch), so quality estimation stays light.

Conventions
-----------
* Tables are (8, 8) integer arrays in *natural* (row-major) order: ``t[v, u]``
  is the step for vertical frequency ``v`` and horizontal frequency ``u``.
  This is how libjpeg holds them in memory (``JQUANT_TBL.quantval``), how
  jpeglib and Pillow's ``Image.quantization`` return them; only the DQT marker
  in the file stores them in zigzag order.
* ``quality`` is an int in 1..100 (DESIGN.md). libjpeg silently clamps
  out-of-range qualities; carkit raises ``ValueError`` instead.

References
----------
* ITU-T T.81 (JPEG), Annex K.1, Tables K.1 and K.2: the example luminance
  and chrominance tables (``STD_LUMINANCE``, ``STD_CHROMINANCE``), "not
  mandatory" in the standard but used by every IJG-derived encoder.
* ITU-T T.81, Figure A.6: the zigzag sequence (``ZIGZAG``).
* IJG libjpeg ``jcparam.c``: ``jpeg_quality_scaling`` and
  ``jpeg_add_quant_table`` (reproduced bit-exactly by ``quality_scale`` and
  ``scaled_table``; libjpeg-turbo and Pillow use the same code).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "STD_LUMINANCE",
    "STD_CHROMINANCE",
    "ZIGZAG",
    "ZIGZAG_INVERSE",
    "check_quality",
    "quality_scale",
    "scaled_table",
    "ijg_tables",
    "to_zigzag",
    "from_zigzag",
]


def _frozen(a) -> np.ndarray:
    arr = np.array(a, dtype=np.int64)
    arr.setflags(write=False)
    return arr


#: T.81 Table K.1 (luminance), natural order; libjpeg ``std_luminance_quant_tbl``.
STD_LUMINANCE: np.ndarray = _frozen([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
])

#: T.81 Table K.2 (chrominance), natural order; libjpeg ``std_chrominance_quant_tbl``.
STD_CHROMINANCE: np.ndarray = _frozen([
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
])


def _zigzag_order() -> np.ndarray:
    """Natural (row-major) index of the k-th coefficient in zigzag order."""
    order = sorted(
        ((v, u) for v in range(8) for u in range(8)),
        # anti-diagonal s = u + v; odd diagonals run top-right -> bottom-left
        # (v increasing), even ones bottom-left -> top-right (u increasing).
        key=lambda vu: (vu[0] + vu[1], vu[0] if (vu[0] + vu[1]) % 2 else vu[1]),
    )
    return _frozen([v * 8 + u for v, u in order])


#: ``ZIGZAG[k]`` = natural index (``8 * v + u``) of zigzag position ``k``
#: (libjpeg ``jpeg_natural_order``; T.81 Figure A.6).
ZIGZAG: np.ndarray = _zigzag_order()

#: ``ZIGZAG_INVERSE[i]`` = zigzag position of natural index ``i``.
ZIGZAG_INVERSE: np.ndarray = _frozen(np.argsort(ZIGZAG))


def check_quality(quality) -> int:
    """Return ``quality`` as an int in 1..100, or raise ``ValueError``.

    Accepts Python and numpy integers (and integral floats such as ``75.0``);
    rejects bools, fractions and anything outside 1..100.
    """
    if isinstance(quality, (bool, np.bool_)):
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}")
    try:
        q = int(quality)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}") from None
    if q != quality or not 1 <= q <= 100:
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}")
    return q


def quality_scale(quality: int) -> int:
    """IJG percentage scale factor for a quality (libjpeg ``jpeg_quality_scaling``).

    ``5000 // q`` for q < 50, else ``200 - 2 q`` (C integer division), so
    q = 50 gives 100 (the T.81 tables as printed), q = 100 gives 0 (all ones
    after clamping).
    """
    q = check_quality(quality)
    return 5000 // q if q < 50 else 200 - 2 * q


def _scale_with_factor(base: np.ndarray, scale: int, force_baseline: bool) -> np.ndarray:
    # jpeg_add_quant_table: temp = (basic * scale + 50) / 100 (C long division,
    # all operands non-negative so floor == truncation), clamp to 1..32767, and
    # to 255 when force_baseline.
    t = (np.asarray(base, dtype=np.int64) * int(scale) + 50) // 100
    return np.clip(t, 1, 255 if force_baseline else 32767)


def scaled_table(base, quality: int, force_baseline: bool = True) -> np.ndarray:
    """Scale a base table to ``quality`` exactly as libjpeg does.

    Args:
        base: (8, 8) base table in natural order (``STD_LUMINANCE`` or
            ``STD_CHROMINANCE``, or any custom table).
        quality: int 1..100.
        force_baseline: clamp entries to 255 so they fit 8-bit DQT (what
            Pillow, ``cjpeg -baseline`` and most encoders do). When False,
            entries are only clamped to 32767, as ``cjpeg`` without
            ``-baseline`` does at low quality (16-bit tables, SOF1 files).

    Returns:
        (8, 8) int64 array of quantization steps in 1..255 (or 1..32767).
    """
    return _scale_with_factor(base, quality_scale(quality), force_baseline)


def ijg_tables(quality: int, force_baseline: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(luminance, chrominance) tables libjpeg's ``jpeg_set_quality`` installs."""
    return (scaled_table(STD_LUMINANCE, quality, force_baseline),
            scaled_table(STD_CHROMINANCE, quality, force_baseline))


def to_zigzag(table) -> np.ndarray:
    """(8, 8) natural-order table -> (64,) in zigzag (DQT marker) order."""
    t = np.asarray(table)
    if t.shape != (8, 8):
        raise ValueError(f"expected an (8, 8) table, got shape {t.shape}")
    return t.reshape(64)[ZIGZAG]


def from_zigzag(values) -> np.ndarray:
    """(64,) values in zigzag (DQT marker) order -> (8, 8) natural order."""
    v = np.asarray(values)
    if v.shape != (64,):
        raise ValueError(f"expected 64 values, got shape {v.shape}")
    return v[ZIGZAG_INVERSE].reshape(8, 8)
