"""Standard codecs behind one interface, and the codec registry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import features

from carkit.codecs import (Codec, available_codecs, canonical_name, codec_info, get_codec,
                           list_codecs, register_codec)
from carkit.codecs import registry as reg
from carkit.errors import CodecError
from carkit.metrics import psnr

STANDARD = ["jpeg", "jpeg2000", "webp", "avif", "heif"]
AVAILABLE = available_codecs()


def _synthetic(h=45, w=67, color=True) -> np.ndarray:
    """Smooth gradients plus an edge and mild texture: compressible, not flat."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 5.0) + 40 * (x > w / 2)
    base += np.random.default_rng(0).normal(0, 4, size=(h, w))
    if not color:
        return np.clip(base, 0, 255).astype(np.uint8)
    rgb = np.stack([base, base * 0.8 + 30, 255 - base], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def kodak_crop(shared_data):
    from carkit.io import read_image

    img = read_image(shared_data / "eval" / "kodak" / "kodim23.png").pixels
    return np.ascontiguousarray(img[192:320, 320:448])


def test_registry_lists_standard_codecs():
    names = list_codecs()
    for n in STANDARD:
        assert n in names
    assert set(AVAILABLE) <= set(names)
    assert "jpeg" in AVAILABLE
    assert ("jpeg2000" in AVAILABLE) == features.check("jpg_2000")
    assert ("webp" in AVAILABLE) == features.check("webp")
    assert ("avif" in AVAILABLE) == features.check("avif")
    try:
        import pillow_heif  # noqa: F401
        has_heif = bool(pillow_heif.libheif_info().get("HEIF"))
    except ImportError:
        has_heif = False
    assert ("heif" in AVAILABLE) == has_heif
    info = {row["name"]: row for row in codec_info()}
    assert all(info[n]["available"] == (n in AVAILABLE) for n in names)
    assert all(info[n]["reason"] for n in names if n not in AVAILABLE)


def test_aliases_resolve():
    assert canonical_name("J2K") == "jpeg2000"
    assert canonical_name("jpg") == "jpeg"
    assert get_codec("j2k").name == "jpeg2000"


def test_unknown_codec_lists_known():
    with pytest.raises(CodecError, match="unknown codec 'nope'.*jpeg.*webp"):
        get_codec("nope")


def test_bad_options_are_codec_errors():
    with pytest.raises(CodecError, match="bad options"):
        get_codec("jpeg", speed=3)
    with pytest.raises(CodecError):
        get_codec("jpeg", subsampling="4:1:1")


def test_register_decorator_lazy_and_unavailable(monkeypatch):
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg._REGISTRY))
    monkeypatch.setattr(reg, "_ALIASES", dict(reg._ALIASES))

    @register_codec("identity-test", aliases=("idt",))
    class Identity(Codec):
        """Stores raw bytes (lossless test codec)."""

        name = "identity-test"
        lossless = True

        def encode(self, image, quality):
            return image.tobytes()

        def decode(self, data):
            return np.frombuffer(data, np.uint8).reshape(4, 5).copy()

    class Missing(Codec):
        @classmethod
        def unavailable_reason(cls):
            return "missing-test: needs the frobnicator library"

    register_codec("missing-test", Missing)
    register_codec("lazy-test", "carkit.codecs.webp:WebPCodec")
    register_codec("broken-test", "carkit.no_such_module:X")
    with pytest.raises(CodecError, match="already registered"):
        register_codec("jpeg", Identity)

    assert {"identity-test", "missing-test", "lazy-test", "broken-test"} <= set(list_codecs())
    avail = available_codecs()
    assert "identity-test" in avail and "missing-test" not in avail and "broken-test" not in avail
    assert ("lazy-test" in avail) == ("webp" in AVAILABLE)
    img = np.arange(20, dtype=np.uint8).reshape(4, 5)
    rt = get_codec("idt").roundtrip(img, 50)
    assert np.array_equal(rt.decoded, img) and rt.nbytes == 20
    with pytest.raises(CodecError, match="frobnicator"):
        get_codec("missing-test")
    with pytest.raises(CodecError, match="cannot import"):
        get_codec("broken-test")


def test_heif_without_pillow_heif(monkeypatch):
    from carkit.codecs.heif import HeifCodec

    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import now fails
    reason = HeifCodec.unavailable_reason()
    assert reason and "pillow-heif" in reason
    assert "heif" not in available_codecs()
    with pytest.raises(CodecError, match="pillow-heif"):
        get_codec("heif")
    with pytest.raises(CodecError, match="pillow-heif"):
        HeifCodec().encode(_synthetic(), 50)


def test_import_is_cheap():
    code = ("import sys, carkit.codecs as c; c.list_codecs(); "
            "assert 'PIL' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", AVAILABLE)
@pytest.mark.parametrize("color", [True, False], ids=["rgb", "gray"])
def test_roundtrip_odd_size(name, color):
    codec = get_codec(name)
    img = _synthetic(45, 67, color)
    rt = codec.roundtrip(img, 75)
    assert rt.decoded.shape == img.shape and rt.decoded.dtype == np.uint8
    assert rt.bpp == pytest.approx(8 * len(rt.data) / (45 * 67))
    assert rt.nbytes == len(rt.data) and rt.encode_s > 0 and rt.decode_s > 0
    assert psnr(rt.decoded, img) > 25
    decoded = codec.decode(rt.data)
    if color or codec.supports_gray:
        assert decoded.shape == img.shape
    else:  # no gray mode in the format: RGB with equal channels, +-1
        assert decoded.shape == img.shape + (3,)
        assert np.abs(decoded.astype(int) - decoded[:, :, 1:2]).max() <= 1
    s = codec.settings()
    assert s["codec"] == name and s["library"]


@pytest.mark.parametrize("name", AVAILABLE)
def test_decode_garbage_and_truncated_raise_codec_error(name):
    codec = get_codec(name)
    for bad in (b"", b"\x00" * 64, b"not an image at all" * 5):
        with pytest.raises(CodecError):
            codec.decode(bad)
    data = codec.encode(_synthetic(), 60)
    with pytest.raises(CodecError):
        codec.decode(data[: len(data) // 3])


@pytest.mark.parametrize("name", AVAILABLE)
def test_bad_inputs(name):
    codec = get_codec(name)
    with pytest.raises(ValueError):
        codec.roundtrip(_synthetic(), 0)
    with pytest.raises(ValueError):
        codec.roundtrip(_synthetic(), 101)
    with pytest.raises(ValueError):
        codec.roundtrip(_synthetic().astype(np.float32), 50)
    with pytest.raises(ValueError):
        codec.roundtrip(np.zeros((8, 8, 4), np.uint8), 50)


@pytest.mark.parametrize("name", AVAILABLE)
def test_higher_quality_more_bytes_higher_psnr(name, kodak_crop):
    codec = get_codec(name)
    rts = [codec.roundtrip(kodak_crop, q) for q in (10, 50, 90)]
    sizes = [rt.nbytes for rt in rts]
    scores = [psnr(rt.decoded, kodak_crop) for rt in rts]
    if name == "factorized":  # a quality picks a trained rate point; the zoo may ship one or a few
        assert sizes[0] <= sizes[1] <= sizes[2], sizes
        if len(codec.distinct_qualities(range(1, 101))) < 4:
            return
    assert sizes[0] < sizes[1] < sizes[2], sizes
    assert scores[0] < scores[1] < scores[2], scores


def test_j2k_rate_map():
    from carkit.codecs import j2k_ratio

    ratios = [j2k_ratio(q) for q in range(1, 101)]
    assert all(a > b for a, b in zip(ratios, ratios[1:]))
    assert j2k_ratio(100) == 4.0 and j2k_ratio(80) == 8.0


@pytest.mark.skipif("jpeg2000" not in AVAILABLE, reason="no OpenJPEG")
def test_j2k_hits_target_rate(kodak_crop):
    from carkit.codecs import j2k_ratio

    codec = get_codec("jpeg2000")
    for q in (30, 70):
        target = kodak_crop.size / j2k_ratio(q)  # bytes, 8-bit samples
        n = len(codec.encode(kodak_crop, q))
        assert 0.8 * target < n < 1.05 * target + 300


@pytest.mark.skipif("webp" not in AVAILABLE, reason="no WebP")
def test_webp_gray_decode_option():
    codec = get_codec("webp")
    g = _synthetic(color=False)
    data = codec.encode(g, 80)
    assert codec.decode(data).shape == g.shape + (3,)
    assert codec.decode(data, gray=True).shape == g.shape


def test_get_codec_composite_codec_plus_restorer():
    """``get_codec("CODEC+RESTORER")``, as carkit.restoration.codec documents:
    the codec's bytes unchanged, the restorer on what it decodes."""
    from carkit.restoration.codec import RestoredCodec

    img = _synthetic(48, 64)
    codec = get_codec("jpg+dagn-small")
    assert isinstance(codec, RestoredCodec) and codec.name == "jpeg+dagn-small"
    assert canonical_name("JPG+dagn-small") == "jpeg+dagn-small"
    jpeg = get_codec("jpeg")
    data = codec.encode(img, 20)
    assert data == jpeg.encode(img, 20)
    out = codec.decode(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, codec.restore(jpeg.decode(data))) and not np.array_equal(out, jpeg.decode(data))
    if "webp" in AVAILABLE:
        assert get_codec("webp+dagn-small", method=6).inner.method == 6  # options go to the codec
    with pytest.raises(CodecError, match="restore model"):
        get_codec("jpeg+no-such-model")
    with pytest.raises(CodecError, match="unknown codec"):
        get_codec("nocodec+dagn-small")
    with pytest.raises(CodecError, match="no restorer"):
        get_codec("jpeg+")


def test_jpeg_with_given_tables_writes_those_tables():
    """``JpegCodec.encode_with_tables``: the file carries exactly the tables asked for (gray: one)."""
    from carkit.codecs.jpeg import JpegCodec
    from carkit.data.jpeg_mix import file_tables
    from carkit.jpeg.tables import ijg_tables

    luma, chroma = ijg_tables(50)
    luma, chroma = luma.copy(), chroma.copy()
    luma[0, 1], chroma[1, 0] = 77, 99
    img = (np.arange(24 * 32 * 3) % 251).astype(np.uint8).reshape(24, 32, 3)
    got = file_tables(JpegCodec("4:2:0").encode_with_tables(img, [luma, chroma]))
    assert np.array_equal(got[0], luma) and np.array_equal(got[1], chroma)
    gray = file_tables(JpegCodec("4:4:4").encode_with_tables(img[:, :, 0], [luma]))
    assert np.array_equal(gray[0], luma) and np.array_equal(gray[1], luma)
