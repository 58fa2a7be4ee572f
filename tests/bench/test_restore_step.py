"""The benches' "codec + restorer" step (``bench.common.RestoreStep``): by
default what ``carkit restore`` does to each file, with the shipped weights
(issue 37: hiding is compared with jpegli + the default restorer)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from carkit.bench.common import RestoreStep
from carkit.codecs import get_codec
from carkit.errors import CarkitError
from carkit.restoration.restorer import Restorer, restore_jpeg
from carkit.zoo.defaults import default_restorer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def crop(shared_data):
    return np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))[200:248, 300:364]


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_default_restores_each_jpeg_as_carkit_restore_does(crop):
    step = RestoreStep(None, gray=False)
    assert step.name == "default" and step.info["mode"] == "per file (carkit restore)"
    assert default_restorer(False, 30).model in step.info["weights_sha256"]
    for codec in ("jpeg", "jpegli"):
        data = get_codec(codec).encode(crop, 30)
        decoded = _decode(data)
        out = step(data, decoded)
        chosen = restore_jpeg(Restorer(model=default_restorer(False, 30).model), data).pixels
        assert np.array_equal(out, chosen) and not np.array_equal(out, decoded)
    data = get_codec("jpeg").encode(crop, 98)   # no default gains there: passed through
    assert np.array_equal(step(data, _decode(data)), _decode(data))


def test_files_that_are_not_jpeg_get_the_blind_default(crop):
    data = get_codec("webp").encode(crop, 30)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    blind = default_restorer(False, None).model
    restorer = Restorer(model=blind)
    expected = restorer.restore_pixels(decoded, restorer.plan(False, None))
    assert np.array_equal(RestoreStep(None, gray=False)(data, decoded), expected)


def test_a_forced_table_reading_model_needs_the_jpeg_file(crop):
    step = RestoreStep("jpegnet-v1d", gray=False)
    assert step.name == "jpegnet-v1d" and list(step.info["weights_sha256"]) == ["jpegnet-v1d"]
    data = get_codec("jpeg").encode(crop, 30)
    assert np.array_equal(step(data, _decode(data)), restore_jpeg(Restorer(model="jpegnet-v1d"), data).pixels)
    webp = get_codec("webp").encode(crop, 30)
    with pytest.raises(CarkitError, match="quantization tables"):
        step(webp, _decode(webp))
