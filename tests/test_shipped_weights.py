"""The weights shipped in the package: present, checked, recorded, and useful."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carkit.cli import main
from carkit.evaluation.metrics import psnr, psnr_y
from carkit.zoo.registry import list_weights, load_pretrained, weights_record

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHIPPED = ["arcnn-gray-q10", "resunet-gray-blind"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_have_a_full_record(name):
    assert name in list_weights()
    record = weights_record(name)
    assert record.path.stat().st_size < 16 * 2**20
    assert record.training["steps"] > 0 and record.training["wall_seconds"] > 0
    assert record.training["recipe"]["train_dirs"]
    assert {"live1_gray", "classic5"} <= set(record.results)
    assert record.results["live1_gray"]["q10"]["gain_psnr"] > 0
    load_pretrained(name)


def test_readme_example_restores_better_than_jpeg(tmp_path, shared_data):
    out = tmp_path / "restored.png"
    assert main(["restore", str(EXAMPLES / "kodim23_q15.jpg"), "-o", str(out), "--explain"]) == 0
    original = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))
    original = original[40:40 + 256, 200:200 + 384]
    decoded = np.asarray(Image.open(EXAMPLES / "kodim23_q15.jpg").convert("RGB"))
    restored = np.asarray(Image.open(out))
    assert restored.shape == original.shape
    assert psnr_y(restored, original) > psnr_y(decoded, original) + 0.3


def test_gray_example_restores_better_than_jpeg(tmp_path, shared_data):
    out = tmp_path / "peppers.png"
    assert main(["restore", str(EXAMPLES / "peppers_gray_q10.jpg"), "-o", str(out)]) == 0
    original = np.asarray(Image.open(shared_data / "eval" / "classic5" / "peppers.png"))[128:384, 128:384]
    decoded = np.asarray(Image.open(EXAMPLES / "peppers_gray_q10.jpg"))
    restored = np.asarray(Image.open(out))
    assert psnr(restored, original) > psnr(decoded, original) + 0.5


def test_dagn_small_is_shipped_color_blind_and_measured():
    record = weights_record("dagn-small")
    assert record.model == "dagn-small" and not record.gray and record.qualities == [10, 95]
    assert record.path.stat().st_size < 16 * 2**20
    stages = [s["run"] for s in record.training["stages"]]
    assert stages == ["dagn-small-qf-warmup", "dagn-small-stage1", "dagn-small-stage2"]
    assert {"live1_color_rgb", "bsds500_jpeg_rgb"} <= set(record.results)
    net = load_pretrained("dagn-small")
    assert net.use_cigm and net.use_csgm and net.use_cfm


def test_default_restorers_are_the_reviewed_table():
    """restore's automatic choice is the reviewed default table
    (carkit.zoo.defaults), whatever a bench last wrote into the records: every
    model it names is shipped, trained near the qualities it serves and, on
    color files, measured at least as well as the other fast candidates."""
    from carkit.pipelines.restore import _measured_gain, choose_model
    from carkit.zoo.defaults import RESTORE_DEFAULTS, UNKNOWN_QUALITY, default_restorer

    shipped = set(list_weights())
    for row in (*RESTORE_DEFAULTS, *UNKNOWN_QUALITY.values()):
        assert row.model in shipped and weights_record(row.model).kind == "restorer", row
    for gray in (False, True):
        for q in range(1, 101):
            plan, row = choose_model(gray, q), default_restorer(gray, q)
            assert (plan.model, plan.mode) == ((row.model, row.mode) if row else (None, "passthrough")), (gray, q)
    assert choose_model(False, None).model == "dagn-small" and choose_model(True, None).model == "dncnn3-gray-blind"
    # blockcnn-color measures well but restores at about 600 s/MP: never an automatic choice
    assert all(choose_model(False, q).model != "blockcnn-color" for q in range(1, 101))
    # on color sets the chosen model measures within 0.05 dB of the best of dagn-small and resunet via Y
    for q in (10, 20, 30, 40):
        chosen = _measured_gain(weights_record(choose_model(False, q).model), q, color=True)[0]
        others = [_measured_gain(weights_record(n), q, color=True)[0] for n in ("dagn-small", "resunet-gray-blind")]
        assert chosen >= max(g for g in others if g is not None) - 0.05, q


def test_blockcnn_remover_is_shipped_and_restores(tmp_path, shared_data):
    record = weights_record("blockcnn-color")
    assert record.model == "blockcnn-color" and not record.gray and record.kind == "restorer"
    assert record.path.stat().st_size < 16 * 2**20 and record.training["steps"] > 0
    assert len(load_pretrained("blockcnn-color").body) == 9  # the paper's nine residual blocks
    original = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))
    original = original[40:40 + 256, 200:200 + 384]
    Image.fromarray(original).save(tmp_path / "q10.jpg", quality=10)
    out = tmp_path / "restored.png"
    assert main(["restore", str(tmp_path / "q10.jpg"), "-o", str(out), "--model", "blockcnn-color"]) == 0
    decoded = np.asarray(Image.open(tmp_path / "q10.jpg").convert("RGB"))
    assert psnr(np.asarray(Image.open(out)), original) > psnr(decoded, original) + 0.5


def test_blockcnn_codec_round_trips_with_the_shipped_predictor(shared_data):
    from carkit.codecs import get_codec

    record = weights_record("blockcnn-predictor")
    assert record.kind == "predictor" and record.training["steps"] > 0
    image = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))[:64, :96]
    codec = get_codec("blockcnn")
    data, reconstruction = codec.encode_with_reconstruction(image, 20)
    assert np.array_equal(codec.decode(data), reconstruction)
    assert psnr(reconstruction, image) > 25


HRCNN_SHIPPED = ["hrcnn-q10", "hrcnn-q30", "hrcnn-q50"]


@pytest.mark.parametrize("name", HRCNN_SHIPPED)
def test_hrcnn_is_shipped_per_quality_and_restores_from_coefficients(name, tmp_path, shared_data):
    """The paper's HR-CNN (507,157 parameters) at its own quality: restored
    straight from a gray JPEG's coefficients, clearly better than JPEG."""
    record = weights_record(name)
    assert record.kind == "kspace" and record.gray and record.training["steps"] > 0
    assert record.path.stat().st_size < 16 * 2**20
    net = load_pretrained(name)
    assert sum(p.numel() for p in net.parameters()) == 507_157
    quality = record.qualities[0]
    rgb = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))
    green = np.ascontiguousarray(rgb[40:40 + 256, 200:200 + 384, 1])
    Image.fromarray(green).save(tmp_path / "in.jpg", quality=quality)
    out = tmp_path / "restored.png"
    assert main(["restore", str(tmp_path / "in.jpg"), "-o", str(out), "--model", name]) == 0
    decoded = np.asarray(Image.open(tmp_path / "in.jpg"))
    assert psnr(np.asarray(Image.open(out)), green) > psnr(decoded, green) + 0.3


@pytest.mark.parametrize("quality", [15, 45])
def test_shipped_blind_hrcnn_restores_gray_jpegs_of_any_quality(quality, tmp_path, shared_data):
    """hrcnn-blind (beyond the paper): one model, dequantized coefficients in,
    better than JPEG at qualities it has no per-quality model for."""
    record = weights_record("hrcnn-blind")
    assert record.kind == "kspace" and record.gray and record.training["steps"] > 0
    rgb = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))
    green = np.ascontiguousarray(rgb[40:40 + 256, 200:200 + 384, 1])
    Image.fromarray(green).save(tmp_path / "in.jpg", quality=quality)
    out = tmp_path / "restored.png"
    assert main(["restore", str(tmp_path / "in.jpg"), "-o", str(out), "--model", "hrcnn-blind"]) == 0
    decoded = np.asarray(Image.open(tmp_path / "in.jpg"))
    assert psnr(np.asarray(Image.open(out)), green) > psnr(decoded, green) + 0.3


def test_shipped_color_hrcnn_restores_a_color_jpeg_from_its_coefficients(tmp_path, shared_data):
    """hrcnn-color (beyond the paper): Y, Cb and Cr coefficients of a 4:2:0
    file in, RGB out, better than libjpeg-turbo's own decode."""
    record = weights_record("hrcnn-color")
    assert record.kind == "kspace" and not record.gray and record.training["steps"] > 0
    rgb = np.ascontiguousarray(np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))[40:296, 200:584])
    Image.fromarray(rgb).save(tmp_path / "in.jpg", quality=20, subsampling="4:2:0")
    out = tmp_path / "restored.png"
    assert main(["restore", str(tmp_path / "in.jpg"), "-o", str(out), "--model", "hrcnn-color"]) == 0
    restored = np.asarray(Image.open(out))
    assert restored.shape == rgb.shape
    decoded = np.asarray(Image.open(tmp_path / "in.jpg").convert("RGB"))
    assert psnr(restored, rgb) > psnr(decoded, rgb) + 0.1


def test_shipped_dncnn_is_the_papers_depth_and_restores_gray_jpegs(tmp_path, shared_data):
    """DnCNN-3 (the baseline of HR-CNN's Table III and of residual hiding):
    20 conv layers of 64 maps, blind over QF 10..50, better than JPEG."""
    import torch

    record = weights_record("dncnn3-gray-blind")
    assert record.gray and record.qualities == [10, 50] and record.training["steps"] > 0
    net = load_pretrained("dncnn3-gray-blind")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 20
    rgb = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))
    green = np.ascontiguousarray(rgb[40:40 + 256, 200:200 + 384, 1])
    for quality in (15, 45):
        Image.fromarray(green).save(tmp_path / "in.jpg", quality=quality)
        out = tmp_path / f"restored{quality}.png"
        assert main(["restore", str(tmp_path / "in.jpg"), "-o", str(out), "--model", "dncnn3-gray-blind"]) == 0
        decoded = np.asarray(Image.open(tmp_path / "in.jpg"))
        assert psnr(np.asarray(Image.open(out)), green) > psnr(decoded, green) + 0.3


@pytest.mark.parametrize("name", ["vcodec-gray-q10", "jiang-gray-q10"])
def test_shipped_virtual_codec_beats_jpeg_at_very_low_rate(name, tmp_path, shared_data):
    """The file is smaller than JPEG at quality 1 yet decodes better than JPEG
    at quality 5; PPNN beats bicubic up-sampling of the same description."""
    import io

    from carkit.pipelines.vcodec_codec import read_marker

    record = weights_record(name)
    assert record.kind == "vcodec" and record.gray and record.training["steps"] > 0
    rgb = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))
    gray = np.ascontiguousarray(rgb[40:40 + 256, 200:200 + 384, 1])
    Image.fromarray(gray).save(tmp_path / "in.png")
    assert main(["encode", "--method", "vcnn", "--model", name, "-q", "10", str(tmp_path / "in.png"),
                 str(tmp_path / "v.jpg")]) == 0
    assert main(["decode", str(tmp_path / "v.jpg"), "-o", str(tmp_path / "rec.png")]) == 0
    data = (tmp_path / "v.jpg").read_bytes()
    assert read_marker(data)["model"] == name
    rec = np.asarray(Image.open(tmp_path / "rec.png"))

    def jpeg(q):
        buf = io.BytesIO()
        Image.fromarray(gray).save(buf, "JPEG", quality=q)
        return len(buf.getvalue()), np.asarray(Image.open(buf))

    assert len(data) < jpeg(1)[0]
    assert psnr(rec, gray) > psnr(jpeg(5)[1], gray)
    thumb = Image.open(io.BytesIO(data))
    upsampled = np.asarray(thumb.resize((gray.shape[1], gray.shape[0]), Image.Resampling.BICUBIC))
    assert psnr(rec, gray) > psnr(upsampled, gray) + 1.0


@pytest.mark.parametrize("model", [None, "vcodec-gray-q10", "vcodec-color-q10"])
def test_shipped_virtual_codec_codes_color(model, tmp_path, shared_data):
    """A color image: by default with a shipped gray pair in luma mode (the
    gray pair on the luma, chroma averaged into the description; the package
    ships no color pair, docs/notes/zoo.md), or with the color pair from the
    repository's weights/bench (an RGB description). Either way a color
    half-size JPEG whose marker says which, decoding to full-size color that
    beats bicubic up-sampling of the same description and beats JPEG at
    quality 5 at a smaller size."""
    import io

    from carkit.pipelines.vcodec_codec import read_marker

    rgb = np.ascontiguousarray(np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png")
                                          .convert("RGB"))[40:40 + 256, 200:200 + 385])
    Image.fromarray(rgb).save(tmp_path / "in.png")
    argv = ["encode", "--method", "vcnn", "-q", "10", str(tmp_path / "in.png"), str(tmp_path / "v.jpg")]
    assert main(argv + (["--model", model] if model else [])) == 0
    assert main(["decode", str(tmp_path / "v.jpg"), "-o", str(tmp_path / "rec.png")]) == 0
    data = (tmp_path / "v.jpg").read_bytes()
    marker = read_marker(data)
    if model == "vcodec-color-q10":
        assert marker["model"] == "vcodec-color-q10" and "planes" not in marker
    else:
        assert marker["planes"] == "luma" and marker["model"] == "vcodec-gray-q10"
    thumb = Image.open(io.BytesIO(data))
    assert thumb.mode == "RGB" and thumb.size == (193, 128)
    rec = np.asarray(Image.open(tmp_path / "rec.png"))
    assert rec.shape == rgb.shape
    upsampled = np.asarray(thumb.resize((rgb.shape[1], rgb.shape[0]), Image.Resampling.BICUBIC))
    assert psnr_y(rec, rgb) > psnr_y(upsampled, rgb) + 1.0
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=5)
    assert len(data) < len(buf.getvalue())
    assert psnr(rec, rgb) > psnr(np.asarray(Image.open(buf)), rgb)
    assert psnr_y(rec, rgb) > psnr_y(np.asarray(Image.open(buf)), rgb)


def test_virtual_codec_default_weights_are_the_virtual_codec_at_the_nearest_quality():
    """The package ships the paper's gray pairs at its four description
    qualities; Jiang et al.'s baseline and the color pairs live in the
    repository's weights/bench (benches and --model), so color images take
    the gray pair in luma mode."""
    from carkit.pipelines.vcodec_codec import choose_weights, vcodec_weights

    gray = vcodec_weights(True)
    assert sorted(gray) == sorted(f"vcodec-gray-q{q}" for q in (5, 10, 20, 40))
    assert vcodec_weights(False) == []
    extra = list_weights(include_extra=True)
    assert {"jiang-gray-q10", "vcodec-color-q10"} <= set(extra) - set(list_weights())
    for q in (1, 5, 10, 20, 40, 90):
        name = choose_weights(True, q)
        best = min(abs(weights_record(n).qualities[0] - q) for n in gray)
        assert abs(weights_record(name).qualities[0] - q) == best
        assert choose_weights(False, q) == name


def test_residual_hiding_default_is_the_pair_measured_best(monkeypatch):
    """Shipped pairs carry their measured Kodak row (``carkit bench hiding``
    stores it, sha256-checked; a pair shipped since its codec's last bench has
    none yet), and ``carkit encode`` picks, among the pairs trained at the
    nearest quality (a range holding it is nearest), the one with the
    best measured BD-rate against the codec, unmeasured pairs last
    (pipelines/hiding_codec.choose_weights)."""
    from carkit.pipelines import hiding_codec
    from carkit.pipelines.hiding_codec import (choose_weights, hiding_weights, measured_bd_rate, measured_gain,
                                               quality_distance, trained_for)

    for codec in ("jpeg", "jpeg2000", "heif", "factorized"):
        names = hiding_weights(codec, False)
        assert any(measured_gain(weights_record(n), codec) is not None for n in names), codec
    names = hiding_weights("jpeg", False)
    assert names == ["hiding-jpeg-q10-80-s2-dagn-rate-p128"]   # the paper's q50 pairs are in weights/bench
    assert trained_for(weights_record("hiding-jpeg-q50-s1")) == ("jpeg", (50, 50))
    for q in (10, 50, 90):
        distance = {n: quality_distance(trained_for(weights_record(n))[1], q) for n in names}
        nearest = [n for n in names if distance[n] == min(distance.values())]
        measured = [n for n in nearest if measured_bd_rate(weights_record(n), "jpeg") is not None]
        best = min(measured, key=lambda n: measured_bd_rate(weights_record(n), "jpeg")) if measured else min(nearest)
        assert choose_weights("jpeg", False, q) == best, q
    # HEIF: the continued Strategy I pair is best by BD-rate though its Fix-Q gain is the smaller (its
    # matched baseline quality spends 5% more bits than it); the Strategy II pair (weights/bench) stands
    # in as the other candidate
    s2, long = weights_record("hiding-heif-q39-s2"), weights_record("hiding-heif-q39-s1-long")
    assert measured_gain(long, "heif") < measured_gain(s2, "heif")
    assert measured_bd_rate(long, "heif") < measured_bd_rate(s2, "heif")
    assert hiding_weights("heif", False) == ["hiding-heif-q39-s1-long"]
    monkeypatch.setattr(hiding_codec, "hiding_weights", lambda codec, gray: [s2.name, long.name])
    assert choose_weights("heif", False, 39) == "hiding-heif-q39-s1-long"
