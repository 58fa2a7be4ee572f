"""carkit bench speed: end-to-end restore timings beside the decode and DnCNN-3."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from carkit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_speed_bench_times_models_and_architectures(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image = tmp_path / "photo.png"
    Image.fromarray(np.cumsum(rng.integers(-4, 5, (64, 96, 3)), axis=1).clip(0, 255).astype(np.uint8)).save(image)
    assert main(["bench", "speed", "--image", str(image), "--models", "arcnn-gray-q10", "--architectures", "jpegnet",
                 "--repeats", "1", "--threads", "1", "--precision", "fp32", "--results", str(tmp_path / "r"),
                 "--tag", "t"]) == 0
    payload = json.loads((tmp_path / "r" / "speed_t.json").read_text())
    rows = payload["rows"]
    assert set(rows) == {"decode", "dncnn3-gray-blind", "arcnn-gray-q10", "jpegnet"}
    assert rows["dncnn3-gray-blind"]["mode"] == "color-via-Y" and rows["dncnn3-gray-blind"]["speedup_vs_dncnn3"] == 1
    assert all(r["seconds"] > 0 and r["seconds_per_mp"] > 0 for r in rows.values())
    assert payload["size"] == [96, 64] and payload["subsampling"] == "4:2:0" and payload["threads"] == 1
    assert "speed-up vs DnCNN-3" in capsys.readouterr().out
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(gray)
    assert main(["bench", "speed", "--image", str(gray), "--results", str(tmp_path / "r")]) == 2
