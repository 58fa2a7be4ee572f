"""carkit.io: reading every format and mode by the stated policy, EXIF orientation,
alpha, decompression bombs, typed one-line errors, atomic writes, tensors."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import carkit.io as cio
from carkit.errors import (CarkitError, DecompressionBombError, ImageReadError,
                           UnsupportedImageError)
from carkit.io import (LoadedImage, read_image, read_image_bytes, to_tensor, to_uint8,
                       write_image)


def _psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _rgb(h=20, w=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _gray(h=20, w=28, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ round trips

LOSSLESS = [("png", {}), ("bmp", {}), ("tif", {}), ("tiff", {"compression": "tiff_lzw"}),
            ("webp", {"lossless": True, "quality": 100})]


@pytest.mark.parametrize("ext,kwargs", LOSSLESS, ids=[e for e, _ in LOSSLESS])
@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_lossless_round_trip(tmp_path, ext, kwargs, kind):
    pixels = _rgb() if kind == "rgb" else _gray()
    path = tmp_path / f"img.{ext}"
    write_image(path, pixels, **kwargs)
    loaded = read_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.alpha is None
    if kind == "gray" and ext == "webp":  # WebP has no gray mode: comes back as RGB
        assert loaded.pixels.shape == pixels.shape + (3,)
        for c in range(3):
            np.testing.assert_array_equal(loaded.pixels[..., c], pixels)
        return
    assert loaded.pixels.dtype == np.uint8
    np.testing.assert_array_equal(loaded.pixels, pixels)
    assert loaded.is_gray == (kind == "gray")


def test_jpeg_write_read(tmp_path):
    x = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    pixels = np.stack([x, x[:, ::-1], np.full_like(x, 90)], axis=2)
    write_image(tmp_path / "a.jpg", pixels, quality=95)
    loaded = read_image(tmp_path / "a.jpg")
    assert loaded.format == "JPEG" and loaded.pixels.shape == pixels.shape
    assert _psnr(loaded.pixels, pixels) > 35


def test_explicit_format_overrides_extension(tmp_path):
    pixels = _gray()
    write_image(tmp_path / "noext", pixels, format="png")
    loaded = read_image(tmp_path / "noext")
    assert loaded.format == "PNG"
    np.testing.assert_array_equal(loaded.pixels, pixels)


def test_read_image_bytes_matches_read_image(tmp_path):
    pixels = _rgb()
    write_image(tmp_path / "a.png", pixels)
    data = (tmp_path / "a.png").read_bytes()
    a, b = read_image(tmp_path / "a.png"), read_image_bytes(data)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert b.format == "PNG" and b.source_mode == "RGB"


# ------------------------------------------------------------------ modes


def _png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_gray_keeps_high_byte(fmt):
    rng = np.random.default_rng(2)
    v16 = rng.integers(0, 65536, (9, 13), dtype=np.uint16)
    v16[0, :4] = [0, 255, 256, 65535]
    buf = io.BytesIO()
    Image.fromarray(v16).save(buf, format=fmt)
    loaded = read_image_bytes(buf.getvalue(), name=f"16bit.{fmt}")
    assert loaded.source_mode.startswith("I;16")
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == v16.shape
    np.testing.assert_array_equal(loaded.pixels, (v16 >> 8).astype(np.uint8))
    assert list(loaded.pixels[0, :4]) == [0, 0, 1, 255]


def test_16bit_gray_made_from_8bit_is_exact():
    v8 = _gray()
    for scaled in (v8.astype(np.uint16) * 257, v8.astype(np.uint16) << 8):
        buf = io.BytesIO()
        Image.fromarray(scaled).save(buf, format="PNG")
        np.testing.assert_array_equal(read_image_bytes(buf.getvalue()).pixels, v8)


def test_16bit_rgb_png_same_rule():
    arr = np.random.default_rng(3).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    loaded = read_image_bytes(_png16_rgb(arr), name="rgb16.png")
    assert loaded.pixels.shape == (6, 7, 3)
    np.testing.assert_array_equal(loaded.pixels, (arr >> 8).astype(np.uint8))


def test_32bit_int_tiff_policy():
    ok = np.array([[0, 256, 65535]], dtype=np.int32)
    buf = io.BytesIO()
    Image.fromarray(ok).save(buf, format="TIFF")
    loaded = read_image_bytes(buf.getvalue())
    assert loaded.source_mode == "I"
    assert list(loaded.pixels[0]) == [0, 1, 255]
    bad = np.array([[0, 70000, -1]], dtype=np.int32)
    buf = io.BytesIO()
    Image.fromarray(bad).save(buf, format="TIFF")
    with pytest.raises(UnsupportedImageError, match="bad.tif"):
        read_image_bytes(buf.getvalue(), name="bad.tif")


def test_float_tiff_refused():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.float32)).save(buf, format="TIFF")
    with pytest.raises(UnsupportedImageError, match=r"f\.tif: unsupported image mode 'F'"):
        read_image_bytes(buf.getvalue(), name="f.tif")


def test_bilevel_becomes_gray_0_255():
    im = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    loaded = read_image_bytes(buf.getvalue())
    assert loaded.source_mode == "1"
    np.testing.assert_array_equal(loaded.pixels, [[0, 255], [255, 0]])


def test_palette_becomes_rgb():
    pixels = _rgb(8, 8)
    buf = io.BytesIO()
    Image.fromarray(pixels).quantize(16).save(buf, format="PNG")
    loaded = read_image_bytes(buf.getvalue())
    assert loaded.source_mode == "P" and loaded.pixels.shape == (8, 8, 3)
    assert loaded.alpha is None


def test_cmyk_jpeg_decodes_close_to_rgb_sample(shared_data):
    real = shared_data / "jpeg" / "real"
    cmyk = read_image(real / "pillow__pil_sample_cmyk.jpg")
    rgb = read_image(real / "pillow__pil_sample_rgb.jpg")
    assert cmyk.source_mode == "CMYK"
    assert cmyk.pixels.shape == rgb.pixels.shape == (100, 100, 3)
    assert _psnr(cmyk.pixels, rgb.pixels) > 28  # measured 31.0 dB; inverted CMYK would be ~5 dB
    assert np.abs(cmyk.pixels.mean((0, 1)) - rgb.pixels.mean((0, 1))).max() < 5


def test_cmyk_written_by_pillow_round_trips():
    x = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (32, 1))
    pixels = np.stack([x, x.T, np.full_like(x, 200)], axis=2)
    buf = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(buf, format="JPEG", quality=98)
    loaded = read_image_bytes(buf.getvalue())
    assert loaded.source_mode == "CMYK"
    assert _psnr(loaded.pixels, pixels) > 35


# ------------------------------------------------------------------ alpha


def test_rgba_alpha_kept_aside_and_reattached(tmp_path):
    pixels, alpha = _rgb(), _gray(seed=5)
    write_image(tmp_path / "a.png", pixels, alpha=alpha)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "RGBA"
    loaded = read_image(tmp_path / "a.png")
    assert loaded.source_mode == "RGBA"
    np.testing.assert_array_equal(loaded.pixels, pixels)  # color never composited
    np.testing.assert_array_equal(loaded.alpha, alpha)
    write_image(tmp_path / "b.webp", loaded.pixels, alpha=loaded.alpha, lossless=True)
    again = read_image(tmp_path / "b.webp")
    np.testing.assert_array_equal(again.alpha, alpha)
    # WebP lossless may change the color under fully transparent pixels only
    visible = alpha > 0
    np.testing.assert_array_equal(again.pixels[visible], pixels[visible])


def test_gray_alpha(tmp_path):
    pixels, alpha = _gray(), _gray(seed=7)
    write_image(tmp_path / "la.png", pixels, alpha=alpha)
    loaded = read_image(tmp_path / "la.png")
    assert loaded.source_mode == "LA" and loaded.is_gray
    np.testing.assert_array_equal(loaded.pixels, pixels)
    np.testing.assert_array_equal(loaded.alpha, alpha)


def test_transparency_key_becomes_alpha():
    gray = np.array([[0, 10], [10, 20]], np.uint8)
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG", transparency=10)
    loaded = read_image_bytes(buf.getvalue())
    np.testing.assert_array_equal(loaded.pixels, gray)
    np.testing.assert_array_equal(loaded.alpha, [[255, 0], [0, 255]])

    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", transparency=(1, 2, 3))
    loaded = read_image_bytes(buf.getvalue())
    np.testing.assert_array_equal(loaded.pixels, rgb)
    np.testing.assert_array_equal(loaded.alpha, [[0, 255], [255, 255]])


def test_alpha_shape_checked(tmp_path):
    with pytest.raises(ValueError, match="alpha"):
        write_image(tmp_path / "a.png", _rgb(), alpha=np.zeros((3, 3), np.uint8))
    assert _listing(tmp_path) == []


# ------------------------------------------------------------------ EXIF orientation


def test_exif_orientation_files_match_upright(shared_data):
    real = shared_data / "jpeg" / "real"
    upright = read_image(real / "pillow__hopper.jpg").pixels
    for k in range(2, 9):
        path = real / f"pillow__hopper_orientation_{k}.jpg"
        loaded = read_image(path).pixels
        assert loaded.shape == upright.shape, k
        assert _psnr(loaded, upright) > 25, k
        with Image.open(path) as im:  # the stored pixels really are turned
            raw = np.asarray(im.convert("RGB"))
        assert _psnr(raw, upright) < 20, k


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_synthetic(orientation):
    # A non-square image stored so that applying the tag gives `want`.
    want = np.zeros((16, 32), np.uint8)
    want[:8, :8] = 255  # a bright top-left corner block
    want[8:, 16:24] = 128
    # what the camera stores is the inverse transform of the tag
    inverse = {1: lambda a: a, 2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud,
               5: lambda a: a.T, 6: lambda a: np.rot90(a, 1), 7: lambda a: np.rot90(a, 2).T,
               8: lambda a: np.rot90(a, -1)}[orientation]
    stored = np.ascontiguousarray(inverse(want))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="PNG", exif=exif.tobytes())
    loaded = read_image_bytes(buf.getvalue()).pixels
    np.testing.assert_array_equal(loaded, want)


# ------------------------------------------------------------------ errors


@pytest.mark.filterwarnings("error")  # no DecompressionBombWarning leaks out either
def test_decompression_bomb_refused(tmp_path, monkeypatch):
    write_image(tmp_path / "big.png", _gray(16, 16))
    write_image(tmp_path / "small.png", _gray(10, 10))
    before = Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(cio, "MAX_PIXELS", 200)
    with pytest.raises(DecompressionBombError, match=r"big\.png.*256 pixels.*200"):
        read_image(tmp_path / "big.png")
    with pytest.raises(DecompressionBombError):
        read_image_bytes((tmp_path / "big.png").read_bytes())
    assert read_image(tmp_path / "small.png").pixels.shape == (10, 10)
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's global is restored
    assert issubclass(DecompressionBombError, UnsupportedImageError)


def test_bomb_header_refused_before_decoding():
    # A PNG header claiming 100000 x 100000 pixels with no data to back it.
    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header
            + struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF))
    for tag, body in ((b"IDAT", zlib.compress(b"")), (b"IEND", b"")):
        data += (struct.pack(">I", len(body)) + tag + body
                 + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))
    with pytest.raises(DecompressionBombError, match="bomb.png"):
        read_image_bytes(data, name="bomb.png")


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(ImageReadError, match=r"nope\.png: no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image at all")
    with pytest.raises(ImageReadError, match=r"junk\.jpg"):
        read_image(tmp_path / "junk.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png"):
        read_image(tmp_path / "empty.png")


def test_truncated_files_are_errors(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    x = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    buf = io.BytesIO()
    Image.fromarray(np.stack([x, x.T, x], 2)).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    for cut, name in ((len(data) // 2, "half.jpg"), (len(data) - 200, "tail.jpg")):
        with pytest.raises(ImageReadError) as info:
            read_image_bytes(data[:cut], name=name)
        assert name in str(info.value) and "\n" not in str(info.value)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG")
    png = buf.getvalue()
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image_bytes(png[: len(png) - 30], name="cut.png")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_real_jpeg_loads(shared_data):
    files = sorted((shared_data / "jpeg" / "real").iterdir())
    assert len(files) >= 40
    for path in files:
        loaded = read_image(path)
        px = loaded.pixels
        assert px.dtype == np.uint8, path.name
        assert px.ndim == 2 or (px.ndim == 3 and px.shape[2] == 3), path.name
        assert min(px.shape[:2]) >= 1, path.name


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_malformed_jpeg_loads_or_raises_image_read_error(shared_data):
    files = sorted((shared_data / "jpeg" / "malformed").iterdir())
    assert len(files) >= 10
    raised = []
    for path in files:
        try:
            loaded = read_image(path)
        except ImageReadError as exc:
            msg = str(exc)
            assert path.name in msg and "\n" not in msg, msg
            raised.append(path.name)
            continue
        assert loaded.pixels.dtype == np.uint8, path.name
    assert "pillow__truncated_jpeg.jpg" in raised


# ------------------------------------------------------------------ atomic writes


def test_write_replaces_existing_file(tmp_path):
    target = tmp_path / "a.png"
    write_image(target, _gray(seed=1))
    write_image(target, _gray(seed=2))
    np.testing.assert_array_equal(read_image(target).pixels, _gray(seed=2))
    assert _listing(tmp_path) == ["a.png"]


def test_failed_encode_leaves_nothing(tmp_path):
    with pytest.raises(UnsupportedImageError, match=r"a\.jpg.*JPEG"):
        write_image(tmp_path / "a.jpg", _rgb(), alpha=_gray())
    assert _listing(tmp_path) == []
    with pytest.raises(UnsupportedImageError, match="unknown output format"):
        write_image(tmp_path / "a.xyz", _rgb())
    assert _listing(tmp_path) == []


def test_failure_mid_write_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    write_image(target, _gray(seed=1))
    old = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_image(target, _gray(seed=2))
    assert _listing(tmp_path) == ["a.png"]  # no temporary file left
    assert target.read_bytes() == old  # never a partial file
    with pytest.raises(RuntimeError):
        write_image(tmp_path / "new.png", _gray())
    assert _listing(tmp_path) == ["a.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_file_has_normal_permissions(tmp_path):
    write_image(tmp_path / "a.png", _gray())
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_creates_parent_and_validates(tmp_path):
    write_image(tmp_path / "sub" / "dir" / "a.bmp", _rgb())
    assert (tmp_path / "sub" / "dir" / "a.bmp").is_file()
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "f.png", _rgb().astype(np.float32))
    with pytest.raises(ValueError, match="shape|H, W"):
        write_image(tmp_path / "f.png", np.zeros((4, 4, 4), np.uint8))
    assert not (tmp_path / "f.png").exists()


def test_errors_are_carkit_errors():
    for cls in (ImageReadError, UnsupportedImageError, DecompressionBombError):
        assert issubclass(cls, CarkitError)


# ------------------------------------------------------------------ tensors


def test_tensor_round_trip():
    for pixels in (_rgb(), _gray()):
        t = to_tensor(pixels)
        assert t.dtype == torch.float32 and t.shape == (1, 1 if pixels.ndim == 2 else 3, 20, 28)
        assert float(t.min()) >= 0 and float(t.max()) <= 1
        np.testing.assert_array_equal(to_uint8(t), pixels)
        np.testing.assert_array_equal(to_uint8(t[0]), pixels)


def test_to_uint8_clips_and_rounds():
    t = torch.tensor([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 7.0]).view(1, 1, 1, 6)
    assert list(to_uint8(t)[0]) == [0, 0, 0, 1, 255, 255]
    with pytest.raises(ValueError, match="batch"):
        to_uint8(torch.zeros(2, 3, 4, 4))
    with pytest.raises(TypeError, match="uint8"):
        to_tensor(np.zeros((4, 4), np.uint16))
