"""carkit restore: single files, batches with failures, error paths, memory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from carkit.cli import main
from carkit.errors import ModelError, WeightsError
from carkit.restoration.restorer import choose_model
from carkit.zoo.registry import WeightsRecord, load_pretrained, weights_record

from ..helpers import make_tiny_zoo


def _jpeg(path, size=(67, 45), quality=20, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    base = rng.integers(0, 255, shape).astype(np.uint8)
    Image.fromarray(base).save(path, quality=quality)
    return path


def test_single_file_to_png(tmp_path, monkeypatch):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    src = _jpeg(tmp_path / "a.jpg", quality=20)
    out = tmp_path / "out" / "a.png"
    assert main(["restore", str(src), "-o", str(out), "--explain"]) == 0
    img = Image.open(out)
    assert img.format == "PNG" and img.size == (67, 45) and img.mode == "RGB"
    gray = _jpeg(tmp_path / "g.jpg", mode="L", quality=10)
    assert main(["restore", str(gray), "-o", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").mode == "L"


def test_explain_reads_quality_and_model(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    src = _jpeg(tmp_path / "a.jpg", quality=30)
    assert main(["restore", str(src), "-o", str(tmp_path / "x.png"), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "quality 30 (standard IJG tables)" in out and "tiny-gray" in out and "color-via-Y" in out


def test_high_quality_is_passed_through(tmp_path, monkeypatch):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    src = _jpeg(tmp_path / "a.jpg", quality=95)
    assert main(["restore", str(src), "-o", str(tmp_path / "x.png")]) == 0
    decoded = np.asarray(Image.open(src).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png")), decoded)


def test_batch_goes_on_and_lists_failures(tmp_path, monkeypatch, capsys, shared_data):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = ["pillow__hopper.jpg", "pillow__hopper_gray.jpg", "pillow__pil_sample_cmyk.jpg"]
    bad = ["pillow__truncated_jpeg.jpg", "pillow__junk_jpeg_header.jpg"]
    for name in good:
        shutil.copy(shared_data / "jpeg" / "real" / name, inputs)
    for name in bad:
        shutil.copy(shared_data / "jpeg" / "malformed" / name, inputs)
    (inputs / "notes.jpg").write_text("not a jpeg at all")
    out = tmp_path / "out"
    code = main(["restore", str(inputs), "-o", str(out)])
    err = capsys.readouterr().err
    written = sorted(p.name for p in out.iterdir())
    assert code == 1
    assert "pillow__hopper.png" in written and "pillow__hopper_gray.png" in written
    assert "notes.png" not in written and "pillow__truncated_jpeg.png" not in written
    assert "notes.jpg" in err and "failed" in err
    assert "Traceback" not in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_every_malformed_file_fails_cleanly_or_restores(tmp_path, monkeypatch, capsys, shared_data):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    out = tmp_path / "out"
    code = main(["restore", str(shared_data / "jpeg" / "malformed"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code in (0, 1) and "Traceback" not in err
    for line in err.splitlines():
        if line.startswith("carkit: error:"):
            assert len(line) < 400


def test_non_jpeg_and_missing_inputs(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    png = tmp_path / "p.png"
    Image.new("RGB", (16, 16)).save(png)
    assert main(["restore", str(png), "-o", str(tmp_path / "o.png")]) == 1
    assert "not a JPEG" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
    assert main(["restore", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "o.png")]) == 1
    assert main(["restore", str(tmp_path / "p.png"), "-o", str(tmp_path / "o.png"), "--model", "nope"]) == 2


def test_never_overwrites_the_input(tmp_path, monkeypatch, capsys):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    src = _jpeg(tmp_path / "a.jpg")
    before = src.read_bytes()
    assert main(["restore", str(src), "-o", str(src), "--output-quality", "90", "--force"]) == 1
    assert src.read_bytes() == before
    assert "overwrite the input" in capsys.readouterr().err
    assert main(["restore", str(src), "-o", str(src)]) == 2  # a JPEG output needs --output-quality
    assert src.read_bytes() == before


def test_colliding_output_names_are_refused(tmp_path, monkeypatch):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a, b = _jpeg(tmp_path / "x" / "s.jpg"), _jpeg(tmp_path / "y" / "s.jpg")
    assert main(["restore", str(a), str(b), "-o", str(tmp_path / "out")]) == 2


def test_exif_orientation_applied_after_restoring(tmp_path, monkeypatch, shared_data):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    upright = tmp_path / "u.png"
    main(["restore", str(shared_data / "jpeg" / "real" / "pillow__hopper.jpg"), "-o", str(upright)])
    for o in (3, 6, 8):
        out = tmp_path / f"o{o}.png"
        src = shared_data / "jpeg" / "real" / f"pillow__hopper_orientation_{o}.jpg"
        assert main(["restore", str(src), "-o", str(out)]) == 0
        a = np.asarray(Image.open(out), dtype=float)
        b = np.asarray(Image.open(upright), dtype=float)
        assert a.shape == b.shape and np.abs(a - b).mean() < 10


def test_model_choice_for_a_custom_zoo_goes_by_declared_metadata():
    """Without the reviewed table's models (a custom zoo, or records given),
    restore picks by what the records declare, never by measurements."""
    def rec(name, gray, lo, hi, codec="jpeg", model=None):
        return WeightsRecord.new(name=name, model=model or ("resunet-gray" if gray else "dagn-small"), model_kwargs={},
                                 gray=gray, qualities=[lo, hi], sha256="", codec=codec)
    records = [rec("a", True, 10, 10), rec("b", True, 10, 40), rec("c", False, 10, 95)]
    # covering models: the most specialised (narrowest range) first
    assert choose_model(True, 10, records).model == "a"
    assert choose_model(True, 30, records).model == "b"
    # color files: a color model before a gray one through Y
    plan = choose_model(False, 38, records)
    assert plan.model == "c" and plan.mode == "color" and "trained for QF 10..95" in plan.reason
    plan = choose_model(False, 30, records[:2])
    assert plan.model == "b" and plan.mode == "color-via-Y"
    # unknown quality (invalid tables): the blind model, the widest trained range
    plan = choose_model(False, None, records)
    assert plan.model == "c" and "quality unknown" in plan.reason
    assert choose_model(True, None, records).model == "b"
    # a restorer trained on another codec's output (a residual hiding baseline) never restores JPEGs
    j2k = rec("j", True, 10, 40, codec="jpeg2000")
    assert j2k.trained_codec == "jpeg2000" and records[1].trained_codec == "jpeg"
    assert choose_model(True, 20, [j2k, records[1]]).model == "b"
    assert choose_model(True, 48, records[:2]).model == "b"  # within the margin
    assert choose_model(True, 90, records[:2]).mode == "passthrough"
    # a codec's block predictor is never an artifact remover
    predictor = rec("p", True, 5, 90, model="blockcnn-predictor")
    assert choose_model(True, 10, [*records, predictor]).model == "a"
    assert choose_model(True, 80, [predictor]).mode == "passthrough"


def test_weights_are_checked(tmp_path, monkeypatch):
    zoo = make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    load_pretrained("tiny-gray")
    data = bytearray((zoo / "tiny-gray.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (zoo / "tiny-gray.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_pretrained("tiny-gray")
    with pytest.raises(ModelError, match="no shipped weights"):
        weights_record("nothing")


@pytest.mark.slow
def test_24_megapixel_jpeg_within_4_gb(tmp_path):
    """Tiled restoring keeps peak memory bounded (measured in a fresh process)."""
    make_tiny_zoo(tmp_path / "zoo")
    script = textwrap.dedent(f"""
        import resource, numpy as np
        from PIL import Image
        import carkit.zoo.registry as zoo
        zoo.WEIGHTS_DIR = __import__("pathlib").Path({str(tmp_path / "zoo")!r})
        from carkit.cli import main
        h, w = 4000, 6000
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) % 256)], -1).astype(np.uint8)
        Image.fromarray(img).save({str(tmp_path / "big.jpg")!r}, quality=30)
        del img, x, y
        code = main(["restore", {str(tmp_path / "big.jpg")!r}, "-o", {str(tmp_path / "big.png")!r},
                     "--model", "tiny-gray"])
        print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    code, maxrss_kb = out.stdout.split()[-2:]
    assert code == "0"
    assert int(maxrss_kb) < 4 * 1024 * 1024, f"peak RSS {int(maxrss_kb) / 1024:.0f} MiB"
    assert Image.open(tmp_path / "big.png").size == (6000, 4000)


def test_bf16_restore_agrees_with_fp32(tmp_path, monkeypatch):
    from carkit.nn.precision import resolve_precision
    from carkit.restoration.restorer import Restorer, restore_jpeg

    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    data = _jpeg(tmp_path / "a.jpg", size=(96, 80), quality=20).read_bytes()
    fp32 = restore_jpeg(Restorer(precision="fp32"), data).pixels
    bf16 = restore_jpeg(Restorer(precision="bf16"), data).pixels
    assert fp32.shape == bf16.shape
    mse = np.mean((fp32.astype(float) - bf16.astype(float)) ** 2)
    assert mse == 0 or 10 * np.log10(255 ** 2 / mse) > 45  # bf16 rounding only
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(Exception, match="precision"):
        Restorer(precision="fp8")


def test_models_conditioned_on_tables_get_the_files_tables(tmp_path, monkeypatch):
    """A table-conditioned restorer (JpegNet) sees the file's own luma and
    chroma tables, gray or color, on the 16-px MCU grid."""
    import torch

    from carkit.models.registry import create_model, describe
    from carkit.restoration.restorer import Restorer, RestorePlan, restore_jpeg

    seen = []
    net = create_model("jpegnet")
    real_forward = net.forward

    def forward(x, luma_table=None, chroma_table=None):
        seen.append((x.shape[1], luma_table, chroma_table))
        return real_forward(x, luma_table, chroma_table)

    net.forward = forward
    restorer = Restorer(precision="fp32")  # bf16 (auto, on CPUs with native bf16) moves pixels by a few levels
    restorer.add("jpegnet-test", net, describe("jpegnet"))
    monkeypatch.setattr(Restorer, "plan", lambda self, gray, q: RestorePlan(q, None, "jpegnet-test", "color", "test"))
    for mode, quality in (("RGB", 30), ("L", 70)):
        path = _jpeg(tmp_path / f"{mode}.jpg", size=(70, 50), quality=quality, mode=mode)
        with Image.open(path) as im:
            tables = {k: np.asarray(v) for k, v in im.quantization.items()}
        out = restore_jpeg(restorer, path.read_bytes()).pixels
        assert out.shape == np.asarray(Image.open(path)).shape
        channels, luma, chroma = seen[-1]
        assert channels == (3 if mode == "RGB" else 1)
        assert torch.equal(luma, torch.as_tensor(tables[0], dtype=torch.float32))
        assert torch.equal(chroma, torch.as_tensor(tables[1 if mode == "RGB" else 0], dtype=torch.float32))
        # a fresh JpegNet is the identity: the restore path changes nothing
        assert np.abs(out.astype(int) - np.asarray(Image.open(path)).astype(int)).max() <= 1


def test_progress_is_reported_per_tile(tmp_path, monkeypatch):
    from carkit.restoration.restorer import Restorer, restore_jpeg
    from carkit.nn.tiling import count_tiles

    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    data = _jpeg(tmp_path / "a.jpg", size=(200, 150), quality=20).read_bytes()
    ticks = []
    out = restore_jpeg(Restorer(tile=96), data, progress=ticks.append).pixels
    assert out.shape == (150, 200, 3)
    assert len(ticks) == count_tiles(150, 200, 96, 32) > 1
