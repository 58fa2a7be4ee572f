"""carkit bench restore / report and zoo list through the CLI, on a tiny zoo."""

from __future__ import annotations

import json

from carkit.cli import main
from carkit.bench.report import build_report

from ..helpers import make_tiny_zoo


def test_bench_restore_writes_results_and_report_never_the_zoo(tmp_path, monkeypatch, capsys, shared_data):
    zoo = make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    record_before = (zoo / "tiny-gray.json").read_bytes()
    data = tmp_path / "set"
    data.mkdir()
    for name in ("baboon.png", "lena.png"):
        (data / name).write_bytes((shared_data / "eval" / "classic5" / name).read_bytes())
    results = tmp_path / "results"
    code = main(["bench", "restore", "--data", str(data), "--models", "tiny-gray", "--qualities", "10,40",
                 "--results", str(results), "--threads", "1"])
    assert code == 0
    payload = json.loads((results / "restore_set_gray.json").read_text())
    assert payload["rows"]["jpeg"]["q10"]["n"] == 2
    assert set(payload["rows"]) == {"jpeg", "tiny-gray"}
    prov = payload["provenance"]
    assert prov["dataset"]["n_files"] == 2 and prov["dataset"]["file_list_hash"]
    assert prov["versions"]["torch"] and prov["project"]["version"]
    assert (zoo / "tiny-gray.json").read_bytes() == record_before
    # JPEG row of the bench equals the PROTOCOL JPEG: its PSNR is that of the real codec
    report = build_report(results)
    assert "tiny-gray" in report and "| 10 |" in report and "Provenance" in report
    assert main(["bench", "report", "--results", str(results), "--out", str(tmp_path / "R.md")]) == 0
    assert (tmp_path / "R.md").read_text() == report
    assert main(["zoo", "list"]) == 0
    assert "tiny-gray" in capsys.readouterr().out


def test_bench_rejects_unknown_data_and_models(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    assert main(["bench", "restore", "--data", str(tmp_path / "nope")]) == 2
    assert "no such data folder" in capsys.readouterr().err
    assert main(["bench", "restore", "--data", str(tmp_path), "--models", "ghost"]) == 2


def test_bench_restore_double_jpeg(tmp_path, monkeypatch, capsys, shared_data):
    """--double Q1:SHIFT codes each image at Q1, moves the grid by SHIFT
    pixels, then codes it at the benchmark quality; the report names it."""
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    data = tmp_path / "set"
    data.mkdir()
    (data / "lena.png").write_bytes((shared_data / "eval" / "classic5" / "lena.png").read_bytes())
    results = tmp_path / "results"
    common = ["bench", "restore", "--data", str(data), "--models", "tiny-gray", "--qualities", "90",
              "--results", str(results), "--threads", "1"]
    assert main(common + ["--tag", "once"]) == 0
    assert main(common + ["--tag", "twice", "--double", "20:3"]) == 0
    once = json.loads((results / "restore_set_gray_once.json").read_text())
    twice = json.loads((results / "restore_set_gray_twice.json").read_text())
    assert once["double"] is None and twice["double"] == {"first_quality": 20, "shift": 3}
    # the QF 20 pass dominates the error: far below a single QF 90 file
    assert twice["rows"]["jpeg"]["q90"]["psnr"] < once["rows"]["jpeg"]["q90"]["psnr"] - 5
    assert "--double 20:3" in build_report(results)
    assert main(common + ["--double", "20:8"]) == 2
    assert "--double 20:8" in capsys.readouterr().err


def test_bench_restore_jpegli_files_and_the_default_choice(tmp_path, capsys, shared_data):
    """--codec jpegli restores jpegli's files (read by Pillow, as a viewer);
    the model ``default`` is carkit restore's own choice per file (shipped
    weights), with its choices counted; the report names the codec."""
    import numpy as np
    import pytest
    from PIL import Image

    from carkit.codecs import available_codecs, get_codec
    from carkit.jpeg.jpegfile import JpegFile
    from carkit.metrics import score
    from carkit.zoo.defaults import default_restorer

    if "jpegli" not in available_codecs():
        pytest.skip("jpegli bindings not installed")
    data = tmp_path / "set"
    data.mkdir()
    img = np.asarray(Image.open(shared_data / "eval" / "classic5" / "lena.png"))[200:296, 200:296]
    Image.fromarray(img).save(data / "lena.png")
    results = tmp_path / "results"
    assert main(["bench", "restore", "--data", str(data), "--models", "default", "--qualities", "20,99",
                 "--results", str(results), "--threads", "1", "--codec", "jpegli", "--tag", "li"]) == 0
    payload = json.loads((results / "restore_set_gray_li.json").read_text())
    assert payload["codec"] == "jpegli" and payload["provenance"]["codec_settings"]["codec"] == "jpegli"
    jl = get_codec("jpegli")
    assert payload["rows"]["jpeg"]["q20"]["psnr"] == pytest.approx(score(jl.decode(jl.encode(img, 20)), img)["psnr"],
                                                                   abs=1e-4)
    # chosen by the quality the file's own tables give (jpegli's scale is not IJG's); above every
    # default's qualities the file passes through: never worse than the input
    estimated = JpegFile.read(jl.encode(img, 20)).quality.quality
    assert payload["models"]["default"]["choices"] == {f"q20: {default_restorer(True, estimated).model}": 1,
                                                       "q99: passed through": 1}
    assert payload["rows"]["default"]["q99"]["psnr"] == payload["rows"]["jpeg"]["q99"]["psnr"]
    assert payload["rows"]["default"]["q20"]["psnr"] != payload["rows"]["jpeg"]["q20"]["psnr"]
    assert "--codec jpegli" in build_report(results) and "files written by jpegli" in capsys.readouterr().out
