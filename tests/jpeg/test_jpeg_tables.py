"""carkit.jpeg.tables: T.81 tables, zigzag order, libjpeg quality scaling."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from carkit.jpeg.tables import (STD_CHROMINANCE, STD_LUMINANCE, ZIGZAG, ZIGZAG_INVERSE,
                                check_quality, from_zigzag, ijg_tables, quality_scale,
                                scaled_table, to_zigzag)

# libjpeg jutils.c jpeg_natural_order (first 64 entries)
NATURAL_ORDER = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40,
                 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29,
                 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
                 47, 55, 62, 63]


def test_zigzag_matches_libjpeg_natural_order():
    assert ZIGZAG.tolist() == NATURAL_ORDER
    assert np.array_equal(ZIGZAG[ZIGZAG_INVERSE], np.arange(64))
    t = np.arange(64).reshape(8, 8)
    assert np.array_equal(from_zigzag(to_zigzag(t)), t)
    assert to_zigzag(t)[:6].tolist() == [0, 1, 8, 16, 9, 2]


def test_std_tables_are_t81_annex_k_and_read_only():
    assert STD_LUMINANCE[0, 0] == 16 and STD_LUMINANCE[7, 7] == 99 and STD_LUMINANCE[0, 2] == 10
    assert STD_CHROMINANCE[0, 0] == 17 and STD_CHROMINANCE[3, 0] == 47
    assert (STD_CHROMINANCE[4:] == 99).all()
    with pytest.raises(ValueError):
        STD_LUMINANCE[0, 0] = 1


@pytest.mark.parametrize("q,scale", [(1, 5000), (10, 500), (49, 102), (50, 100), (75, 50),
                                     (99, 2), (100, 0)])
def test_quality_scale(q, scale):
    assert quality_scale(q) == scale


def test_scaled_table_clamping():
    assert np.array_equal(scaled_table(STD_LUMINANCE, 50), STD_LUMINANCE)
    assert (scaled_table(STD_LUMINANCE, 100) == 1).all()
    assert (scaled_table(STD_CHROMINANCE, 1) == 255).all()
    t16 = scaled_table(STD_LUMINANCE, 1, force_baseline=False)
    assert t16[0, 0] == 800 and t16.max() == 6050 and t16.min() == 500
    # q = 75: (16 * 50 + 50) // 100 = 8
    assert scaled_table(STD_LUMINANCE, 75)[0, 0] == 8


@pytest.mark.parametrize("bad", [0, 101, -5, 50.5, "50", None, True])
def test_check_quality_rejects(bad):
    with pytest.raises(ValueError):
        check_quality(bad)


def test_check_quality_accepts_integral():
    assert check_quality(np.int64(7)) == 7
    assert check_quality(75.0) == 75


def test_tables_equal_what_libjpeg_turbo_writes():
    """Pillow (libjpeg-turbo's jpeg_set_quality, force_baseline) at every quality."""
    img = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    for q in range(1, 101):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        with Image.open(buf) as im:
            qt = im.quantization
        luma, chroma = ijg_tables(q)
        assert np.array_equal(np.reshape(qt[0], (8, 8)), luma), q
        assert np.array_equal(np.reshape(qt[1], (8, 8)), chroma), q
