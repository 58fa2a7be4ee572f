"""The Python API (carkit.api, re-exported from carkit): the README's examples
as doctests, and each verb's inputs (bytes, path, array, PIL image)."""

from __future__ import annotations

import doctest
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import carkit
from carkit.errors import CarkitError, UsageError

from .helpers import make_tiny_zoo

ROOT = Path(__file__).resolve().parents[1]


def test_readme_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def _github_anchors(markdown: str):
    """The anchors GitHub gives a Markdown file's headings (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    for line in markdown.splitlines():
        if line.startswith("#"):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
            yield slug if seen[slug] == 0 else f"{slug}-{seen[slug]}"


def test_readme_links_name_sections_of_the_generated_results():
    """README numbers are links into docs/RESULTS.md (``carkit bench report``);
    each names a heading there."""
    links = re.findall(r"\(docs/RESULTS\.md#([\w-]+)\)", (ROOT / "README.md").read_text())
    anchors = set(_github_anchors((ROOT / "docs" / "RESULTS.md").read_text()))
    assert links and sorted(set(links) - anchors) == []


def test_import_carkit_loads_no_torch():
    code = "import sys, carkit; assert 'torch' not in sys.modules; assert callable(carkit.restore)"
    subprocess.run([sys.executable, "-c", code], check=True)


def _jpeg(quality=20, size=(40, 32)) -> bytes:
    rng = np.random.default_rng(0)
    pixels = np.cumsum(rng.integers(-6, 7, (size[1], size[0], 3)), axis=1).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_restore_takes_bytes_paths_arrays_and_pil(tmp_path, monkeypatch):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    carkit.api._restorer.cache_clear()
    data = _jpeg()
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    from_bytes = carkit.restore(data)
    assert from_bytes.shape == (32, 40, 3) and from_bytes.dtype == np.uint8
    assert np.array_equal(carkit.restore(path), from_bytes)
    assert np.array_equal(carkit.restore(str(path)), from_bytes)
    # a PIL JPEG keeps its tables, so the same model at the same quality restores it
    assert np.array_equal(carkit.restore(Image.open(path)), from_bytes)
    decoded = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(carkit.restore(decoded, quality=20), from_bytes)
    assert carkit.restore(decoded).shape == decoded.shape  # quality unknown: the blind model
    with pytest.raises(UsageError):
        carkit.restore(decoded.astype(np.float32))
    with pytest.raises(CarkitError):
        carkit.restore(b"not a jpeg")
    carkit.api._restorer.cache_clear()


def test_encode_decode_and_errors(tmp_path):
    pixels = np.full((24, 32, 3), 120, np.uint8)
    for method, magic in (("jpeg", b"\xff\xd8"), ("webp", b"RIFF")):
        data = carkit.encode(pixels, method, 70)
        assert data.startswith(magic)
        assert carkit.decode(data).shape == (24, 32, 3)
    path = tmp_path / "x.webp"
    path.write_bytes(carkit.encode(Image.fromarray(pixels), "webp", 70))
    assert carkit.decode(path).shape == (24, 32, 3)
    with pytest.raises(UsageError, match="quality"):
        carkit.encode(pixels, "jpeg", 0)
    with pytest.raises(UsageError, match="unknown codec"):
        carkit.encode(pixels, "nope", 50)
    with pytest.raises(UsageError, match="applies to --method hiding"):
        carkit.encode(pixels, "jpeg", 50, codec="jpeg")
    with pytest.raises(CarkitError):
        carkit.decode(b"garbage")


def test_models_and_codecs():
    assert set(carkit.list_models(role="kspace")) >= {"hrcnn-q10", "hrcnn-color"}
    assert set(carkit.list_models()) >= set(carkit.list_models(role="restorer"))
    net = carkit.load_model("arcnn-gray-q10")
    assert not net.training
    assert carkit.get_codec("jpeg").name == "jpeg"
