"""carkit.jpeg.quality: IJG quality estimation from quantization tables."""

from __future__ import annotations

import io
import numpy as np
import pytest
from PIL import Image

from carkit.errors import ImageReadError, NotAJpegError
from carkit.jpeg.quality import (QualityEstimate, estimate_quality, estimate_quality_of_file,
                                 read_quant_tables)
from carkit.jpeg.tables import STD_CHROMINANCE, STD_LUMINANCE, ijg_tables, scaled_table

def _jpeg_bytes(img: np.ndarray, q: int, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=q, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def small_rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["rgb420", "rgb444", "gray"])
def test_pillow_files_at_every_quality_are_exact(small_rgb, mode):
    for q in range(1, 101):
        if mode == "gray":
            data = _jpeg_bytes(small_rgb[..., 0], q)
        else:
            data = _jpeg_bytes(small_rgb, q, subsampling=2 if mode == "rgb420" else 0)
        est = estimate_quality_of_file(data)
        assert est.quality == q and est.standard, (q, mode, est)
        assert est.max_abs_error == 0
        assert set(est.table_qualities.values()) == {q}
        assert len(est.table_qualities) == (1 if mode == "gray" else 2)


def test_estimate_from_tables_and_sequences():
    luma, chroma = ijg_tables(37)
    assert estimate_quality({0: luma, 1: chroma}).quality == 37
    assert estimate_quality([luma.reshape(64), chroma]).standard
    # 16-bit (force_baseline=False) IJG tables, as cjpeg writes at low quality
    l16 = scaled_table(STD_LUMINANCE, 5, force_baseline=False)
    c16 = scaled_table(STD_CHROMINANCE, 5, force_baseline=False)
    est = estimate_quality({0: l16, 1: c16})
    assert (est.quality, est.standard) == (5, True)


def test_non_standard_tables_give_nearest_quality_and_flag():
    luma, chroma = ijg_tables(80)
    luma = luma.copy()
    luma[7, 7] += 1
    est = estimate_quality({0: luma, 1: chroma})
    assert isinstance(est, QualityEstimate)
    assert est.quality == 80 and not est.standard and est.max_abs_error == 1
    assert est.table_qualities[1] == 80
    # mixed qualities (cjpeg -quality 50,90): each table IJG, the set is not
    est = estimate_quality({0: ijg_tables(50)[0], 1: ijg_tables(90)[1]})
    assert not est.standard
    assert est.table_qualities == {0: 50, 1: 90}


def test_chroma_only_ambiguity_resolved_by_luma():
    # chroma tables are identical at q = 1, 2, 3 (all 255); luma is unique
    for q in (1, 2, 3):
        assert np.array_equal(ijg_tables(q)[1], ijg_tables(1)[1])
        est = estimate_quality({0: ijg_tables(q)[0], 1: ijg_tables(q)[1]})
        assert est.quality == q and est.standard and est.table_qualities == {0: q, 1: q}


def test_bad_tables_raise_value_error():
    with pytest.raises(ValueError):
        estimate_quality({})
    with pytest.raises(ValueError):
        estimate_quality({0: np.zeros((8, 8), int)})
    with pytest.raises(ValueError):
        estimate_quality({0: np.ones(63, int)})


def test_real_files(shared_data):
    real = shared_data / "jpeg" / "real"
    est = estimate_quality_of_file(real / "pillow__hopper.jpg")
    assert (est.quality, est.standard) == (88, True)
    assert estimate_quality_of_file(real / "pillow__hopper_gray.jpg").standard
    # 16-bit tables that are exactly IJG q=13 without the baseline clamp
    tables, slots = read_quant_tables(real / "pillow__hopper_16bit_qtables.jpg")
    assert tables[0].max() > 255 and slots == (0, 1, 1)
    est = estimate_quality_of_file(real / "pillow__hopper_16bit_qtables.jpg")
    assert (est.quality, est.standard) == (13, True)
    # Photoshop's own tables: not IJG
    est = estimate_quality_of_file(real / "pillow__photoshop-200dpi.jpg")
    assert not est.standard and est.max_abs_error > 0 and 85 <= est.quality <= 100
    # bytes and path agree
    data = (real / "pillow__flower.jpg").read_bytes()
    assert estimate_quality_of_file(data) == estimate_quality_of_file(real / "pillow__flower.jpg")


def test_every_shared_jpeg_gets_an_estimate(shared_data):
    files = sorted((shared_data / "jpeg").glob("*/*"))
    assert files
    for f in files:  # header-only: truncated files still have tables
        est = estimate_quality_of_file(f)
        assert 1 <= est.quality <= 100


def test_not_a_jpeg(tmp_path):
    png = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png, format="PNG")
    with pytest.raises(NotAJpegError):
        estimate_quality_of_file(png)
    with pytest.raises(NotAJpegError):
        estimate_quality_of_file(b"hello")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(NotAJpegError):
        estimate_quality_of_file(empty)
    with pytest.raises(ImageReadError):
        estimate_quality_of_file(tmp_path / "missing.jpg")
    with pytest.raises(ImageReadError):
        estimate_quality_of_file(b"\xff\xd8\xff")
