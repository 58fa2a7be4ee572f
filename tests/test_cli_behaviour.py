"""The command line as people use it: bad input, options, metadata, output
paths and formats, batches, exit codes (0 ok, 1 some inputs failed, 2 usage)."""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image, ImageCms

from carkit import __version__
from carkit.cli import main
from carkit.errors import CarkitError, InvalidTableError
from carkit.jpeg.quality import estimate_quality_of_file

from .helpers import make_tiny_zoo

pytestmark = pytest.mark.usefixtures("one_thread")


def _jpeg_bytes(size=(48, 40), quality=30, mode="RGB", seed=0, **save) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    smooth = np.cumsum(rng.integers(-6, 7, shape), axis=1).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(smooth).save(buf, "JPEG", quality=quality, **save)
    return buf.getvalue()


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _zero_table_jpeg() -> bytes:
    data = bytearray(_jpeg_bytes())
    dqt = data.find(b"\xff\xdb")
    data[dqt + 5 + 3] = 0  # an entry of the first table (after length and Pq/Tq)
    return bytes(data)


def _one_line_error(err: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("carkit: error:")]
    assert len(lines) == 1, err


# ------------------------------------------------------------------ bad input


def test_zero_quantization_entry_is_restored_with_quality_unknown(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    data = _zero_table_jpeg()
    with pytest.raises(InvalidTableError, match="outside 1..65535") as info:
        estimate_quality_of_file(data, "z.jpg")
    assert isinstance(info.value, CarkitError) and isinstance(info.value, ValueError)
    src = _write(tmp_path / "z.jpg", data)
    assert main(["restore", str(src), "-o", str(tmp_path / "z.png"), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "quality unknown (quantization table 0 has entries outside 1..65535)" in out
    assert "blind model" in out and "tiny-gray" in out
    assert Image.open(tmp_path / "z.png").size == (48, 40)


def test_a_bug_in_one_file_names_it_and_the_batch_goes_on(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    import carkit.restoration.restorer as restore

    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "a.jpg", _jpeg_bytes())
    _write(folder / "boom.jpg", _jpeg_bytes(seed=1))
    _write(folder / "c.jpg", _jpeg_bytes(seed=2))
    real = restore.JpegFile.read

    def read(source, name=None):
        if "boom" in str(source):
            raise RuntimeError("unexpected\nmultiline")
        return real(source, name)

    monkeypatch.setattr(restore.JpegFile, "read", staticmethod(read))
    assert main(["restore", str(folder), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "boom.jpg: internal error RuntimeError: unexpected multiline" in err and "bug in carkit" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_huge_declared_size_is_refused_before_decoding(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    data = bytearray(_jpeg_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = b"\xff\xff\xff\xff"  # 65535 x 65535
    src = _write(tmp_path / "huge.jpg", bytes(data))
    assert main(["restore", str(src), "-o", str(tmp_path / "h.png")]) == 1
    err = capsys.readouterr().err
    _one_line_error(err)
    assert "65535x65535" in err and "exceeds the limit of 128000000 pixels" in err and "--max-pixels" in err
    assert not (tmp_path / "h.png").exists()
    # the limit can be lowered (and raised) for one run; the environment is left as it was
    small = _write(tmp_path / "s.jpg", _jpeg_bytes())
    before = os.environ.get("CARKIT_MAX_PIXELS")
    assert main(["--max-pixels", "100", "restore", str(small), "-o", str(tmp_path / "s.png")]) == 1
    assert "exceeds the limit of 100 pixels" in capsys.readouterr().err
    assert os.environ.get("CARKIT_MAX_PIXELS") == before
    assert main(["--max-pixels", "0", "restore", str(small), "-o", str(tmp_path / "s.png")]) == 2


@pytest.mark.parametrize("argv, text", [
    (["--tile", "100"], "tile must be a multiple of 16"),
    (["--tile", "40"], "at least 64"),
    (["--device", "tpu"], "unknown device"),
    (["--device", "xla"], "not supported"),
    (["--device", "nonsense"], "unknown device"),
    (["--jobs", "0"], "--jobs must be at least 1"),
])
def test_bad_options_are_one_line_usage_errors(tmp_path, monkeypatch, capsys, argv, text):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    src = _write(tmp_path / "a.jpg", _jpeg_bytes())
    assert main(["restore", str(src), "-o", str(tmp_path / "a.png"), *argv]) == 2
    err = capsys.readouterr().err
    _one_line_error(err)
    assert text in err
    assert not (tmp_path / "a.png").exists()


def test_cuda_on_a_build_without_it_is_one_line(tmp_path, monkeypatch, capsys):
    import torch

    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    src = _write(tmp_path / "a.jpg", _jpeg_bytes())
    assert main(["restore", str(src), "-o", str(tmp_path / "a.png"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    _one_line_error(err)
    assert "no CUDA" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"carkit {__version__}"


# ------------------------------------------------------------------ formats


def _available(codec: str) -> bool:
    from carkit.codecs.registry import available_codecs

    return codec in available_codecs()


@pytest.mark.parametrize("suffix, method", [(".jpg", "jpeg"), (".webp", "webp"), (".heic", "heif"),
                                            (".avif", "avif"), (".jp2", "jpeg2000"), (".j2k", "jpeg2000")])
def test_decode_reads_every_standard_format_encode_writes(tmp_path, capsys, suffix, method):
    if not _available(method):
        pytest.skip(f"{method} is not available here")
    rng = np.random.default_rng(0)
    src = tmp_path / "in.png"
    Image.fromarray(np.cumsum(rng.integers(-5, 6, (64, 64, 3)), axis=0).clip(0, 255).astype(np.uint8)).save(src)
    coded = tmp_path / f"out{suffix}"
    assert main(["encode", "-q", "60", str(src), str(coded)]) == 0  # the method follows the suffix
    assert f"({method}, quality 60)" in capsys.readouterr().out
    rec = tmp_path / "rec.png"
    assert main(["decode", str(coded), "-o", str(rec)]) == 0
    assert np.asarray(Image.open(rec)).shape == (64, 64, 3)


def test_encode_refuses_a_suffix_its_method_does_not_write(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.new("RGB", (16, 16), (30, 60, 90)).save(src)
    for argv, text in ((["--method", "jpeg", str(src), str(tmp_path / "y.webp")], "name the output *.jpg"),
                       ([str(src), str(tmp_path / "y.xyz")], "cannot tell the codec"),
                       (["--method", "webp", str(src), str(tmp_path / "y.jpg")], "writes .webp files")):
        assert main(["encode", "-q", "50", *argv]) == 2
        err = capsys.readouterr().err
        _one_line_error(err)
        assert text in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
    assert main(["encode", "-q", "50", str(src), str(tmp_path / "y.jpg")]) == 0
    assert (tmp_path / "y.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_output_format_follows_the_suffix(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    src = _write(tmp_path / "a.jpg", _jpeg_bytes(quality=20))
    assert main(["restore", str(src), "-o", str(tmp_path / "a.png")]) == 0
    reference = np.asarray(Image.open(tmp_path / "a.png"))
    for name in ("a.webp", "a.tif"):  # lossless
        assert main(["restore", str(src), "-o", str(tmp_path / name)]) == 0
        assert np.array_equal(np.asarray(Image.open(tmp_path / name).convert("RGB")), reference), name
    assert Image.open(tmp_path / "a.tif").format == "TIFF" and Image.open(tmp_path / "a.webp").format == "WEBP"
    # JPEG (or lossy WebP) only with an explicit quality
    assert main(["restore", str(src), "-o", str(tmp_path / "a.jpg.out.jpg")]) == 2
    assert "--output-quality" in capsys.readouterr().err and not (tmp_path / "a.jpg.out.jpg").exists()
    assert main(["restore", str(src), "-o", str(tmp_path / "b.jpg"), "--output-quality", "92"]) == 0
    assert Image.open(tmp_path / "b.jpg").format == "JPEG"
    assert main(["restore", str(src), "-o", str(tmp_path / "c.webp"), "--output-quality", "80"]) == 0
    assert main(["restore", str(src), "-o", str(tmp_path / "c.png"), "--output-quality", "80"]) == 2
    assert main(["restore", str(src), "-o", str(tmp_path / "c.bmp")]) == 2
    # an existing output only with --force
    before = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(b"keep")
    assert main(["restore", str(src), "-o", str(tmp_path / "a.png")]) == 1
    assert "already exists (use --force" in capsys.readouterr().err
    assert (tmp_path / "a.png").read_bytes() == b"keep"
    assert main(["restore", str(src), "-o", str(tmp_path / "a.png"), "--force"]) == 0
    assert (tmp_path / "a.png").read_bytes() == before


def test_several_inputs_need_a_folder(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    a = _write(tmp_path / "a.jpg", _jpeg_bytes())
    b = _write(tmp_path / "b.jpg", _jpeg_bytes(seed=1))
    assert main(["restore", str(a), str(b), "-o", str(tmp_path / "x.png")]) == 2
    _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "x.png").exists()
    assert main(["restore", str(a), str(b), "-o", "-"]) == 2
    assert main(["restore", str(a), str(b), "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_stdin_and_stdout(tmp_path, monkeypatch, capsysbinary):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    data = _jpeg_bytes(quality=20)

    class Stdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr("sys.stdin", Stdin)
    assert main(["restore", "-", "-o", "-"]) == 0
    png = capsysbinary.readouterr().out
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    src = _write(tmp_path / "a.jpg", data)
    assert main(["restore", str(src), "-o", str(tmp_path / "a.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(Image.open(tmp_path / "a.png")))
    Stdin.buffer = io.BytesIO(data)
    assert main(["restore", "-", "-o", str(tmp_path / "from-stdin.png")]) == 0
    assert (tmp_path / "from-stdin.png").read_bytes() == (tmp_path / "a.png").read_bytes()
    capsysbinary.readouterr()
    assert main(["decode", str(src), "-o", "-"]) == 0
    assert capsysbinary.readouterr().out[:4] == b"\x89PNG"


# ------------------------------------------------------------------ metadata


def _tagged_jpeg(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: a viewer rotates it by 90 degrees
    exif[0x010F] = "carkit-test-camera"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    data = _jpeg_bytes(size=(48, 32), quality=25, icc_profile=icc, exif=exif.tobytes(), xmp=xmp, dpi=(300, 300))
    return _write(tmp_path / "tagged.jpg", data), icc, xmp


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_metadata_is_kept_with_the_orientation_applied(tmp_path, monkeypatch, suffix):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    src, icc, xmp = _tagged_jpeg(tmp_path)
    out = tmp_path / f"out{suffix}"
    assert main(["restore", str(src), "-o", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size == (32, 48)  # turned upright
        assert im.info.get("icc_profile") == icc
        exif = im.getexif()
        assert exif.get(0x0112) == 1 and exif.get(0x010F) == "carkit-test-camera"
        assert im.info.get("xmp") == xmp
        if suffix != ".webp":  # WebP has no DPI field
            assert round(im.info["dpi"][0]) == 300
    stripped = tmp_path / f"bare{suffix}"
    assert main(["restore", str(src), "-o", str(stripped), "--strip-metadata"]) == 0
    with Image.open(stripped) as im:
        assert not im.info.get("icc_profile") and not im.info.get("xmp") and 0x010F not in im.getexif()


# ------------------------------------------------------------------ batches


def test_recursive_json_and_warnings_name_their_file(tmp_path, monkeypatch, capsys, shared_data):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _write(folder / "a.jpg", _jpeg_bytes())
    _write(folder / "sub" / "b.jpg", _jpeg_bytes(seed=3))
    _write(folder / "sub" / "bad.jpg", b"\xff\xd8 broken")
    shutil.copy(shared_data / "jpeg" / "real" / "pillow__hopper_bad_exif.jpg", folder / "exif.jpg")
    assert main(["restore", str(folder), "-o", str(tmp_path / "flat")]) == 0  # subfolders only with -r
    capsys.readouterr()
    assert main(["restore", str(folder), "-o", str(tmp_path / "out"), "--recursive", "--json"]) == 1
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert sorted(os.path.basename(r["input"]) for r in records) == ["a.jpg", "b.jpg", "bad.jpg", "exif.jpg"]
    for r in records:
        assert set(r) >= {"input", "output", "quality", "model", "seconds", "error"}
    bad = next(r for r in records if r["input"].endswith("bad.jpg"))
    good = next(r for r in records if r["input"].endswith("b.jpg"))
    assert bad["error"] and bad["output"] is None
    assert good["error"] is None and good["quality"] == 30 and good["model"] == "tiny-gray"
    assert (tmp_path / "out" / "sub" / "b.png").exists()
    for line in captured.err.splitlines():
        if line.startswith("carkit: warning:"):
            assert "exif.jpg" in line


def test_jobs_run_in_worker_processes(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        _write(folder / f"{i}.jpg", _jpeg_bytes(size=(24, 16), seed=i, quality=20))
    _write(folder / "bad.jpg", b"not a jpeg")
    code = main(["restore", str(folder), "-o", str(tmp_path / "out"), "--jobs", "2", "--json",
                 "--model", "arcnn-gray-q10"])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == 4 and sum(r["error"] is None for r in records) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]


# ------------------------------------------------------------------ zoo


def test_zoo_list_is_a_table_and_show_prints_one_record(capsys):
    assert main(["zoo", "list", "--role", "restorer"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "role", "input", "codec", "QF", "image", "MB", "trained", "description"]
    rows = [line.split() for line in lines[1:] if line.strip() and not line.startswith(tuple("0123456789"))]
    assert rows and all(row[1] == "restorer" for row in rows)
    assert any(row[:6] == ["dagn-small", "restorer", "pixels", "jpeg", "10-95", "color"] for row in rows)
    assert main(["zoo", "show", "dagn-small"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["name"] == "dagn-small" and record["role"] == "restorer" and len(record["sha256"]) == 64
    assert record["schema"] == 2 and record["codec"] == "jpeg" and record["licence"].startswith("MIT")
    assert record["family"] == "dagn"
    assert main(["zoo", "show", "nope"]) == 2
    assert main(["zoo", "list", "--role", "nope"]) == 2
