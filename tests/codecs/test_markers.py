"""Markers inside standard files (carkit.codecs.markers): every carrier
round-trips its payload, the image data stay the codec's own (every reader
decodes the same pixels), and foreign or damaged bytes read as no marker."""

from __future__ import annotations

import numpy as np
import pytest

from carkit.codecs import available_codecs, get_codec
from carkit.codecs.markers import CARRIERS, find_payload
from carkit.errors import CodecError


def _image(h=40, w=56) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 4) % 256, (y * 6) % 256, (x * y) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("codec", sorted(CARRIERS))
def test_payload_round_trips_and_pixels_stay_the_codec_s(codec):
    if codec not in available_codecs():
        pytest.skip(f"{codec} is not available here")
    base = get_codec(codec)
    data = base.encode(_image(), 50)
    payload = b"carkit-test {\"a\":1}" + bytes(range(256))        # binary-safe
    marked = CARRIERS[codec].write(data, payload)
    assert len(marked) > len(data) and CARRIERS[codec].read(data).count(payload) == 0
    assert payload in CARRIERS[codec].read(marked)
    found, read = find_payload(marked, b"carkit-test ")   # by format: jpegli's files are JPEG's
    assert read == payload and CARRIERS[found].format == CARRIERS[codec].format
    assert find_payload(data, b"carkit-test ") is None
    assert np.array_equal(base.decode(marked), base.decode(data))   # the reader ignores the marker


@pytest.mark.parametrize("codec", sorted(CARRIERS))
def test_foreign_and_damaged_bytes_read_as_no_marker(codec):
    carrier = CARRIERS[codec]
    for junk in (b"", b"\xff", b"not an image at all", b"\xff\xd8\xff\xfe\x00", b"\xff\x4f\xff\x51\x00\x01",
                 b"\x00\x00\x00\x10ftypheic\x00\x00\x00\xff"):
        assert isinstance(carrier.read(junk), list)
    with pytest.raises(CodecError):
        carrier.write(b"not this format", b"x")


def test_jpeg_comment_goes_after_the_app_segments_and_too_long_is_refused():
    data = get_codec("jpeg").encode(_image(), 50)
    marked = CARRIERS["jpeg"].write(data, b"p")
    assert marked[2:4] == b"\xff\xe0"                               # JFIF stays first
    assert marked.index(b"\xff\xfe\x00\x03p") < marked.index(b"\xff\xdb")   # before the tables
    with pytest.raises(CodecError, match="too long"):
        CARRIERS["jpeg"].write(data, b"x" * 70000)
