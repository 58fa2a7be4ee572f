"""Decode dispatch: each codec's ``sniff`` recognises its own files and
rejects the others', and ``carkit.codecs.sniff`` names the codec of each file
in the registry's order (learned codecs first: their files may also be
standard files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from carkit.codecs import available_codecs, codec_class, get_codec, sniff
from carkit.codecs.blockcnn.container import pack_container
from carkit.codecs.factorized.codec import append_marker, pack
from carkit.codecs.hiding.codec import MARKER as HIDING_MARKER
from carkit.codecs.markers import CARRIERS
from carkit.codecs.virtual.codec import MARKER as VCODEC_MARKER

STANDARD = ["jpeg", "jpegli", "jpeg2000", "webp", "avif", "heif"]
LEARNED = ["hiding", "vcnn", "blockcnn", "factorized"]
#: codecs whose files are the same format (jpegli writes JPEGs)
SAME_FORMAT = {"jpegli": "jpeg"}


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (40, 48, 3)).astype(np.uint8)


def _hiding_payload(codec: str) -> bytes:
    return HIDING_MARKER + json.dumps({"model": "m", "sha256": "0123456789abcdef", "codec": codec,
                                       "quality": 50}).encode()


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    """One file of each codec this machine can write (the learned codecs'
    containers and markers built directly, without zoo weights)."""
    img = _image()
    out = {n: get_codec(n).encode(img, 50) for n in STANDARD if n in available_codecs()}
    jpeg = out["jpeg"]
    out["hiding"] = CARRIERS["jpeg"].write(jpeg, _hiding_payload("jpeg"))
    out["vcnn"] = CARRIERS["jpeg"].write(jpeg, VCODEC_MARKER + json.dumps(
        {"model": "m", "sha256": "0123456789abcdef", "height": 80, "width": 96}).encode())
    out["blockcnn"] = pack_container({"gray": False, "quality": 50, "width": 48, "height": 40, "model": "p",
                                      "weights_hash": "00" * 32}, jpeg)
    out["factorized"] = pack(40, 48, 3, "m", "0" * 64, b"\0" * 4, b"\1" * 16)
    return out


def _format(name: str) -> str:
    return SAME_FORMAT.get(name, name)


@pytest.mark.parametrize("name", STANDARD + LEARNED)
def test_each_codec_sniffs_its_own_files_and_rejects_the_others(files, name):
    if name not in files:
        pytest.skip(f"{name} is not available here")
    cls = codec_class(name)
    assert cls.sniff(files[name]) is True
    for other, data in files.items():
        if _format(other) == _format(name):
            continue
        if name in STANDARD and other in ("hiding", "vcnn"):
            continue   # a marked JPEG is a JPEG too: dispatch asks the learned codecs first
        assert cls.sniff(data) is False, f"{name}'s sniff accepts a {other} file"
    for junk in (b"", b"\xff", b"RIFF", b"\x00" * 64, b"\x89PNG\r\n\x1a\n" + b"\0" * 32):
        assert cls.sniff(junk) is False


def test_dispatch_names_each_files_codec(files):
    for name, data in files.items():
        assert sniff(data) == _format(name), name
    # a hiding marker in another carrier: the hiding codec still comes first
    ckfp = pack(40, 48, 3, "m", "0" * 64, b"\0" * 4, b"\1" * 16)
    assert sniff(append_marker(ckfp, _hiding_payload("factorized"))) == "hiding"
    assert sniff(b"\x89PNG\r\n\x1a\n" + b"\0" * 32) is None and sniff(b"") is None


def test_standard_codecs_are_plain_images_and_learned_ones_are_not():
    for name in STANDARD:
        assert codec_class(name).plain_image, name
    for name in LEARNED:
        assert not codec_class(name).plain_image, name
