"""jpegli behind the Codec interface (issue 37)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from carkit.cli import main
from carkit.codecs.registry import available_codecs, get_codec
from carkit.errors import CodecError

pytestmark = pytest.mark.skipif("jpegli" not in available_codecs(), reason="ajpegli is not installed")


def _image(h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.integers(-6, 7, (h, w, 3)), axis=1).clip(0, 255).astype(np.uint8)


def test_jpegli_writes_standard_jpegs_smaller_than_libjpeg_turbo_at_equal_quality():
    image = _image()
    jpegli, turbo = get_codec("jpegli"), get_codec("jpeg")
    a, b = jpegli.roundtrip(image, 75), turbo.roundtrip(image, 75)
    assert a.data[:2] == b"\xff\xd8" and a.decoded.shape == image.shape
    assert a.nbytes < b.nbytes  # optimized Huffman codes and better tables
    settings = jpegli.settings()
    assert settings["subsampling"] == "4:2:0" and settings["library"].startswith("jpegli ")
    # decodable by jpegli's own decoder too, within a JPEG decoder's rounding of Pillow's
    own = get_codec("jpegli", decoder="jpegli").decode(a.data)
    assert np.abs(own.astype(int) - a.decoded.astype(int)).mean() < 2
    assert get_codec("jpegli").roundtrip(image[:, :, 0], 50).decoded.shape == image.shape[:2]  # gray
    with pytest.raises(CodecError):
        get_codec("jpegli", subsampling="4:1:1")
    with pytest.raises(ValueError):
        jpegli.encode(image, 0)


def test_encode_method_jpegli(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(_image()).save(src)
    out = tmp_path / "out.jpg"
    assert main(["encode", "--method", "jpegli", "-q", "80", str(src), str(out)]) == 0
    assert "(jpegli, quality 80)" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (96, 64)
    assert main(["encode", "--method", "jpegli", "-q", "80", str(src), str(tmp_path / "out.webp")]) == 2
