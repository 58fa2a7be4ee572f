"""carkit.jpeg.coefficients: quantized DCT coefficients in and out of real files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from carkit.errors import CarkitError, CodecError, ImageReadError, NotAJpegError
from carkit.jpeg.coefficients import (JpegCoefficients, coefficients_to_bytes,
                                      expected_block_dims, read_coefficients,
                                      write_coefficients)
from carkit.jpeg.tables import ijg_tables

# Files in jpeg/real that cannot take the read -> write -> decode round trip,
# and why (everything else must).
UNWRITABLE = {"pillow__pil_sample_cmyk.jpg": CodecError}   # 4 components: not writable
CORRUPT_REAL = {"pillow__hopper_bad_exif.jpg"}  # scan damaged (junk before RST0): strict refuses
# Malformed files strict reading must refuse (Pillow refuses them too: "truncated").
MUST_REFUSE = {"pillow__truncated_jpeg.jpg", "pillow__ultrahdr.jpg"}


def _decode(data_or_path) -> np.ndarray:
    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(src) as im:
        im.load()
        return np.asarray(im.convert("L" if im.mode == "L" else "RGB"))


def _pillow_jpeg(img: np.ndarray, q: int = 75, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=q, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A smooth 45x61 RGB test image (odd sizes exercise partial MCUs)."""
    y, x = np.mgrid[0:45, 0:61].astype(np.float64)
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 5.0)
    g = 128 + 90 * np.cos((x + y) / 9.0)
    b = 128 + 80 * np.sin(x * y / 300.0)
    noise = np.random.default_rng(1).normal(0, 6, (45, 61, 3))
    return np.clip(np.stack([r, g, b], -1) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind,kw,sampling,name", [
    ("gray", {}, ((1, 1),), "gray"),
    ("rgb", {"subsampling": 0}, ((1, 1),) * 3, "4:4:4"),
    ("rgb", {"subsampling": 1}, ((2, 1), (1, 1), (1, 1)), "4:2:2"),
    ("rgb", {"subsampling": 2}, ((2, 2), (1, 1), (1, 1)), "4:2:0"),
    ("rgb", {"subsampling": 2, "progressive": True}, ((2, 2), (1, 1), (1, 1)), "4:2:0"),
])
def test_sampling_tables_and_roundtrip(photo, kind, kw, sampling, name):
    img = photo[..., 1] if kind == "gray" else photo
    data = _pillow_jpeg(img, 60, **kw)
    c = read_coefficients(data)
    assert c.sampling == sampling and c.subsampling == name
    assert (c.height, c.width) == (45, 61)
    assert c.progressive == bool(kw.get("progressive"))
    assert c.color_space == ("gray" if kind == "gray" else "ycbcr")
    assert c.block_dims == expected_block_dims(45, 61, sampling)
    assert all(comp.dtype == np.int16 for comp in c.components)
    luma, chroma = ijg_tables(60)
    assert np.array_equal(c.quant_tables[0], luma)
    if kind != "gray":
        assert np.array_equal(c.quant_tables[1], chroma)
        assert np.array_equal(c.quant_tables[2], chroma)
    again = coefficients_to_bytes(c)
    assert read_coefficients(again) == c
    assert np.array_equal(_decode(again), _decode(data))


def test_coefficient_layout_is_natural_order_v_then_u():
    """Coefficients equal the (quantized) orthonormal DCT of the samples,
    F[v, u] with v vertical: a horizontal ramp has energy in F[0, 1] only."""
    ramp = np.tile(np.linspace(40, 215, 16), (16, 1)).astype(np.uint8)  # varies along x
    c = read_coefficients(_pillow_jpeg(ramp, 100))
    blk = c.dequantized(0)[0, 0]
    assert abs(blk[0, 1]) > 50 and abs(blk[1, 0]) <= 2
    # and the orthonormal DCT (scipy) of the level-shifted block matches
    from scipy.fft import dctn
    ref = dctn(ramp[:8, :8].astype(np.float64) - 128, norm="ortho")
    assert np.abs(blk - np.round(ref)).max() <= 2


def test_planes_and_dequantized(photo):
    c = read_coefficients(_pillow_jpeg(photo, 50))
    plane = c.coefficient_plane(1)
    bh, bw = c.block_dims[1]
    assert plane.shape == (bh * 8, bw * 8)
    assert np.array_equal(plane[8:16, 16:24], c.components[1][1, 2])
    assert np.array_equal(c.coefficient_plane(0, dequantize=True)[:8, :8],
                          c.dequantized(0)[0, 0])


def test_write_modified_coefficients_is_valid_jpeg(photo, tmp_path):
    c = read_coefficients(_pillow_jpeg(photo, 40))
    y = c.components[0].copy()
    y[..., 1:, :] = 0  # keep only the first row of frequencies
    mod = JpegCoefficients(components=(y,) + c.components[1:], quant_tables=c.quant_tables,
                           sampling=c.sampling, height=c.height, width=c.width)
    out = tmp_path / "sub" / "mod.jpg"
    write_coefficients(mod, out)
    assert read_coefficients(out) == mod
    assert _decode(out.read_bytes()).shape == photo.shape
    assert not list(out.parent.glob(".*tmp"))  # atomic write leaves nothing behind
    # optimized Huffman tables: same coefficients, fewer bytes
    small = coefficients_to_bytes(mod, optimize_coding=True)
    assert len(small) < out.stat().st_size and read_coefficients(small) == mod


def test_from_scratch_gray_with_custom_table(tmp_path):
    rng = np.random.default_rng(3)
    y = rng.integers(-20, 21, (3, 5, 8, 8)).astype(np.int16)
    table = rng.integers(1, 300, (8, 8))  # > 255: written as a 16-bit table
    c = JpegCoefficients(components=(y,), quant_tables=(table,), sampling=((1, 1),),
                         height=20, width=37, color_space="gray")
    again = read_coefficients(coefficients_to_bytes(c))
    assert again == c and again.quant_tables[0].max() > 255


def test_validation_and_write_errors(photo):
    c = read_coefficients(_pillow_jpeg(photo, 75))
    with pytest.raises(ValueError, match="shape"):
        JpegCoefficients(components=(c.components[0][:-1],) + c.components[1:],
                         quant_tables=c.quant_tables, sampling=c.sampling,
                         height=c.height, width=c.width)
    with pytest.raises(ValueError):
        JpegCoefficients(components=c.components, quant_tables=c.quant_tables[:2],
                         sampling=c.sampling, height=c.height, width=c.width)
    with pytest.raises(ValueError):
        JpegCoefficients(components=c.components, quant_tables=c.quant_tables,
                         sampling=c.sampling, height=c.height, width=c.width, color_space="gray")
    bad = c.copy()
    bad.components[0][0, 0, 3, 3] = 2000  # |AC| > 1023: not baseline-codable
    with pytest.raises(CodecError, match="out of range"):
        coefficients_to_bytes(bad)


def test_not_a_jpeg_and_missing(tmp_path):
    with pytest.raises(NotAJpegError):
        read_coefficients(b"GIF89a....")
    png = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png, format="PNG")
    with pytest.raises(NotAJpegError):
        read_coefficients(png)
    with pytest.raises(ImageReadError):
        read_coefficients(tmp_path / "missing.jpg")


def test_broken_headers_raise_one_line_errors(photo, capfd):
    data = _pillow_jpeg(photo, 75)
    sos = data.index(b"\xff\xda")
    cases = [data[:2], data[:100], data[:sos], b"\xff\xd8" + bytes(range(256)) * 4,
             data[:2] + b"\xff\xfe\x00\x00" + data[2:],        # COM marker of length 0
             data[:2] + b"\xff\xfe\x00\x05abc" * 60 + data[2:]]  # > 50 markers (jpeglib limit)
    for case in cases:
        with pytest.raises(ImageReadError) as info:
            read_coefficients(case)
        assert "\n" not in str(info.value) and str(info.value).startswith("<bytes>: ")
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # libjpeg's messages were captured, not printed


def test_truncated_scan_strict_and_lenient(photo, capfd):
    data = _pillow_jpeg(photo, 75)
    cut = data[: len(data) * 2 // 3]
    with pytest.raises(ImageReadError, match="Premature end"):
        read_coefficients(cut)
    c = read_coefficients(cut, strict=False)
    assert any("Premature end" in w for w in c.warnings)
    assert (c.components[0][-1] == 0).all()  # the lost blocks come back as zeros
    assert capfd.readouterr() == ("", "")


def test_every_malformed_file(shared_data, capfd):
    files = sorted((shared_data / "jpeg" / "malformed").iterdir())
    assert files
    refused = set()
    for f in files:
        try:
            c = read_coefficients(f)
        except ImageReadError as exc:  # only carkit errors, one line, naming the file
            assert "\n" not in str(exc) and f.name in str(exc)
            refused.add(f.name)
            c = read_coefficients(f, strict=False)  # lenient still reads what is there
        assert c.num_components in (1, 3)
        assert c.block_dims == expected_block_dims(c.height, c.width, c.sampling)
    assert refused == MUST_REFUSE
    assert capfd.readouterr() == ("", "")


def test_every_real_file_roundtrips(shared_data, tmp_path):
    files = sorted((shared_data / "jpeg" / "real").iterdir())
    progressive = 0
    for f in files:
        if f.name in CORRUPT_REAL:
            with pytest.raises(ImageReadError, match="corrupt JPEG data"):
                read_coefficients(f)
            continue
        c = read_coefficients(f)
        progressive += c.progressive
        assert c.block_dims == expected_block_dims(c.height, c.width, c.sampling)
        if f.name in UNWRITABLE:
            with pytest.raises(UNWRITABLE[f.name]):
                write_coefficients(c, tmp_path / f.name)
            continue
        out = tmp_path / (f.stem + ".jpg")
        write_coefficients(c, out)
        assert read_coefficients(out) == c, f.name
        # same coefficients and tables -> Pillow decodes the same pixels
        assert np.array_equal(_decode(out.read_bytes()), _decode(f)), f.name
    assert progressive >= 1  # jpeg/real has progressive files


def test_errors_are_carkit_errors_for_garbage_sources(tmp_path):
    for junk in (b"", b"\xff\xd8", b"\xff\xd8\xff\xd9", b"\xff\xd8\xff\xc0\x00\x02"):
        with pytest.raises(CarkitError):
            read_coefficients(junk)
