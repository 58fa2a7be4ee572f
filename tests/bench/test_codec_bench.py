"""Result files with provenance, and the codec rate-distortion benchmark."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from carkit.codecs import available_codecs
from carkit.bench import results
from carkit.bench.codec_bench import bench_codecs, format_codec_table, run_codec_bench_cli
from carkit.bench.results import (file_list_hash, provenance, read_result, sha256_file,
                                       write_result)
from carkit.io import read_image, write_image


@pytest.fixture(scope="module")
def crops_dir(shared_data, tmp_path_factory):
    """Two small Kodak crops (one of them odd-sized) as PNGs in a fresh folder."""
    d = tmp_path_factory.mktemp("kodak_crops")
    kodak = shared_data / "eval" / "kodak"
    a = read_image(kodak / "kodim01.png").pixels[200:296, 300:396]
    b = read_image(kodak / "kodim23.png").pixels[180:261, 330:447]
    write_image(d / "a.png", a)
    write_image(d / "b.png", b)
    (d / "notes.txt").write_text("not an image")
    return d


def _files(tmp_path, n=3):
    d = tmp_path / "set"
    (d / "sub").mkdir(parents=True)
    paths = []
    for i in range(n):
        p = d / ("sub" if i == 2 else "") / f"f{i}.bin"
        p.write_bytes(bytes([i]) * (10 + i))
        paths.append(p)
    return d, paths


def test_file_list_hash_tracks_content_and_names(tmp_path):
    d, paths = _files(tmp_path)
    h = file_list_hash(paths)
    assert len(h) == 64 and h == file_list_hash(list(reversed(paths)))
    # independent of where the folder lives
    moved = tmp_path / "elsewhere"
    shutil.copytree(d, moved)
    assert file_list_hash([moved / p.relative_to(d) for p in paths]) == h
    paths[0].write_bytes(b"changed")
    h2 = file_list_hash(paths)
    assert h2 != h
    paths[1].rename(paths[1].with_name("renamed.bin"))
    paths[1] = paths[1].with_name("renamed.bin")
    assert file_list_hash(paths) != h2
    assert file_list_hash(paths[:2]) != file_list_hash(paths)


def test_provenance_has_every_field(tmp_path):
    d, paths = _files(tmp_path)
    p = provenance(dataset_dir=d, files=paths, model="arcnn", weights_sha256="ab" * 32,
                   codec_settings={"jpeg": {"subsampling": "4:2:0"}})
    assert p["project"]["name"] == "carkit" and p["project"]["version"]
    assert "git_commit" in p["project"] and "git_dirty" in p["project"]
    for k in ("torch", "pillow", "libjpeg_turbo", "numpy", "python"):
        assert k in p["versions"]
    assert p["versions"]["pillow"] and p["versions"]["libjpeg_turbo"]
    assert p["model"] == {"name": "arcnn", "weights_sha256": "ab" * 32}
    assert p["codec_settings"] == {"jpeg": {"subsampling": "4:2:0"}}
    ds = p["dataset"]
    assert ds["files"] == ["f0.bin", "f1.bin", "sub/f2.bin"] and ds["n_files"] == 3
    assert ds["file_list_hash"] == file_list_hash(paths, root=d)
    assert ds["dir"] == str(d.resolve()) and p["date"].endswith("+00:00")
    # only a folder: every file directly inside it
    assert provenance(dataset_dir=d)["dataset"]["files"] == ["f0.bin", "f1.bin"]


def test_provenance_git_and_no_git(tmp_path, monkeypatch):
    info = results.git_info()
    if info["commit"] is not None:
        assert len(info["commit"]) == 40 and isinstance(info["dirty"], bool)
    monkeypatch.setattr(results, "_PACKAGE_DIR", tmp_path)  # not a checkout
    p = provenance()
    assert p["project"]["git_commit"] is None and p["project"]["git_dirty"] is None
    assert p["dataset"] is None


def test_bench_outputs_do_not_make_a_checkout_dirty(tmp_path, monkeypatch):
    """Results, the report and zoo records whose only change is their measured
    results are bench outputs; any other change, or a new package file, is dirt."""
    import json
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    package = repo / "src" / "carkit"
    (package / "zoo" / "weights").mkdir(parents=True)
    (repo / "results").mkdir()
    record = package / "zoo" / "weights" / "m.json"
    record.write_text(json.dumps({"name": "m", "results": {}}))
    (repo / "results" / "r.json").write_text("{}")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    monkeypatch.setattr(results, "_PACKAGE_DIR", package)
    assert results.git_info()["dirty"] is False
    record.write_text(json.dumps({"name": "m", "results": {"live1": 1.0}}))
    (repo / "results" / "r.json").write_text('{"a": 1}')
    assert results.git_info()["dirty"] is False
    record.write_text(json.dumps({"name": "other", "results": {"live1": 1.0}}))
    assert results.git_info()["dirty"] is True
    record.write_text(json.dumps({"name": "m", "results": {}}))
    (package / "new.py").write_text("")
    assert results.git_info()["dirty"] is True


def test_provenance_does_not_import_torch():
    code = ("import sys; from carkit.bench.results import provenance; provenance(); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_write_read_result(tmp_path):
    payload = {"b": np.float32(1.5), "a": [np.int64(3), np.arange(2)], "inf": float("inf"),
               "path": tmp_path, "nested": {"z": 1, "y": (1, 2)}}
    out = write_result(tmp_path / "r" / "x.json", payload)
    text = out.read_text()
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")
    assert '\n  "a"' in text  # indent 2
    back = read_result(out)
    assert back == {"a": [3, [0, 1]], "b": 1.5, "inf": None, "path": str(tmp_path),
                    "nested": {"y": [1, 2], "z": 1}}
    assert [p.name for p in out.parent.iterdir()] == ["x.json"]  # no temp file left
    with pytest.raises(TypeError):
        write_result(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert sha256_file(out) == sha256_file(out)


def _check_payload(payload, n_images, qualities, names):
    assert payload["kind"] == "codec_bench"
    assert [i["name"] for i in payload["images"]] == ["a.png", "b.png"][:n_images]
    assert list(payload["codecs"]) == names
    for name, entry in payload["codecs"].items():
        assert entry["settings"]["codec"] == name
        assert [p["quality"] for p in entry["points"]] == qualities
        for p in entry["points"]:
            per = p["per_image"]
            assert all(len(v) == n_images for v in per.values())
            for im, nbytes, b in zip(payload["images"], per["bytes"], per["bpp"]):
                assert b == pytest.approx(8 * nbytes / (im["height"] * im["width"]), abs=1e-6)
            assert p["mean"]["bpp"] == pytest.approx(np.mean(per["bpp"]), abs=1e-6)
        bpps = [p["mean"]["bpp"] for p in entry["points"]]
        assert bpps == sorted(bpps)
    prov = payload["provenance"]
    assert prov["dataset"]["files"] == ["a.png", "b.png"][:n_images]
    assert set(prov["codec_settings"]) == set(names)


def test_tiny_bench_color(crops_dir, tmp_path, capsys):
    names = [n for n in ("jpeg", "jpeg2000", "webp") if n in available_codecs()]
    qualities = [20, 40, 60, 80]
    out = tmp_path / "results" / "codecs_tiny.json"
    assert run_codec_bench_cli(crops_dir, ",".join(names), "80,20,40,60", False, None, out,
                               progress=False) == 0
    payload = read_result(out)
    _check_payload(payload, 2, qualities, names)
    assert payload["config"]["mode"] == "color"
    assert {"psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y"} <= set(payload["config"]["metrics"])
    bd = payload["bd"]
    assert bd["anchor"] == "jpeg" and bd["metrics"] == ["psnr_rgb", "psnr_y"]
    for name in names[1:]:
        for m in bd["metrics"]:
            r = bd["codecs"][name][m]
            assert math.isfinite(r["bd_rate"]) and math.isfinite(r["bd_psnr"]), r
            assert r["bd_rate"] < 0 and r["bd_psnr"] > 0  # both beat JPEG on Kodak crops
    text = capsys.readouterr().out
    assert "BD vs jpeg" in text and "psnr_rgb" in text and str(out) in text
    assert text.count("\n  20 ") == len(names)
    json.dumps(payload)


def test_tiny_bench_gray_limit(crops_dir):
    payload = bench_codecs(crops_dir, codecs=["jpeg", "j2k"], qualities=[10, 30, 50, 70],
                           gray=True, limit=1, progress=False)
    _check_payload(payload, 1, [10, 30, 50, 70], ["jpeg", "jpeg2000"])
    assert payload["config"]["mode"] == "gray"
    assert set(payload["config"]["metrics"]) == {"psnr", "ssim", "psnr_b"}
    assert payload["bd"]["metrics"] == ["psnr"]
    assert "jpeg2000" in payload["bd"]["codecs"]
    table = format_codec_table(payload)
    assert "ssim" in table and "BD-rate psnr" in table


def test_bench_errors(crops_dir, tmp_path):
    from carkit.errors import CodecError, ImageReadError

    with pytest.raises(CodecError, match="unknown codec"):
        bench_codecs(crops_dir, codecs="jpeg,nope", qualities=[50], progress=False)
    with pytest.raises(ImageReadError):
        bench_codecs(tmp_path, codecs="jpeg", qualities=[50], progress=False)
    with pytest.raises(ValueError):
        bench_codecs(crops_dir, codecs="jpeg", qualities=[0, 50], progress=False)
    # too few points for BD: reported, not raised
    p = bench_codecs(crops_dir, codecs="jpeg,j2k", qualities=[30, 60], progress=False, limit=1)
    assert "error" in p["bd"]["codecs"]["jpeg2000"]["psnr_rgb"]
    assert "n/a" in format_codec_table(p)


def test_learned_codec_keeps_one_point_per_rate_point(crops_dir):
    """The learned codec's qualities inside one zoo entry's range give the same
    file: the sweep codes one quality per trained rate point, not nine copies."""
    from carkit.codecs import get_codec

    qualities = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    expected = list(get_codec("factorized").distinct_qualities(qualities))
    assert 2 <= len(expected) < len(qualities)
    payload = bench_codecs(crops_dir, codecs="factorized", qualities=qualities, limit=1, progress=False)
    points = payload["codecs"]["factorized"]["points"]
    assert [p["quality"] for p in points] == expected
    bpps = [p["mean"]["bpp"] for p in points]
    assert bpps == sorted(bpps) and len(set(bpps)) == len(bpps)  # each a different rate point


def test_report_names_the_codecs_of_a_partial_run(crops_dir, tmp_path):
    """A result of some codecs renders the command that made it (--codecs),
    and a title apart from the full set's section of the same folder."""
    from carkit.bench.codec_bench import DEFAULT_CODECS, default_out
    from carkit.bench.report import build_report

    payload = bench_codecs(crops_dir, codecs="jpeg,webp", qualities=[30, 60], limit=1, progress=False)
    # the partial run's default file never replaces the full set's
    out = default_out(crops_dir, False, payload["config"]["codecs"])
    assert out.name == f"codecs_{crops_dir.name}_jpeg-webp.json"
    assert default_out(crops_dir, True, DEFAULT_CODECS).name == f"codecs_{crops_dir.name}_gray.json"
    write_result(tmp_path / out.name, payload)
    text = build_report(tmp_path)
    assert "--codecs jpeg,webp`" in text
    assert "(jpeg, webp)" in text
