"""The weights shipped in the package: present, checked, recorded, and useful."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carkit.cli import main
from carkit.metrics import psnr, psnr_y
from carkit.zoo.registry import list_weights, load_pretrained, weights_record

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: the repository's bench results (carkit bench writes them; records never hold measurements)
RESULTS = Path(__file__).resolve().parents[2] / "results"


def measured_rgb_gain(model: str, quality: int, result: str = "restore_live1_color_color.json") -> float | None:
    """A model's PSNR-RGB gain over JPEG at ``quality`` in a restore result file."""
    import json

    payload = json.loads((RESULTS / result).read_text())
    row = payload["rows"].get(model, {}).get(f"q{quality}")
    return None if row is None else row["psnr_rgb"] - payload["rows"]["jpeg"][f"q{quality}"]["psnr_rgb"]


def hiding_bd_rate(result: str, codec: str, model: str) -> float:
    """The windowed BD-rate (PSNR RGB) of a hiding pair against its codec alone in a hiding result file."""
    import json

    entry = json.loads((RESULTS / result).read_text())["codecs"][codec]
    return next(c["bd_window"]["psnr_rgb"]["bd_rate"] for c in entry["rd"]["comparisons"]
                if c["method"] == f"hiding+D ({model})" and c["against"] == codec)


def hiding_bd_rates(result: str, model: str) -> dict[str, float]:
    """A hiding pair's BD-rates (PSNR RGB, the standard-file targets' wide window) in a JPEG hiding
    result file: hiding+D against every reference curve, and its files in a plain viewer against
    libjpeg-turbo (lower is better for each)."""
    import json

    rd = json.loads((RESULTS / result).read_text())["codecs"]["jpeg"]["rd"]
    out = {c["against"]: c["bd_wide"]["psnr_rgb"]["bd_rate"] for c in rd["comparisons"]
           if c["method"] == f"hiding+D ({model})"}
    out["plain viewer"] = next(c["bd_wide"]["psnr_rgb"]["bd_rate"] for c in rd["comparisons"]
                               if c["method"] == f"hiding, plain viewer ({model})" and c["against"] == "jpeg")
    return out


SHIPPED = ["arcnn-gray-q10", "resunet-gray-blind"]

#: Pinned measurements hold within this many dB (CPU fp32 reproduces them to about 0.01 dB): a model
#: that loses part of its gain fails, and so does a silent change of the pipeline that raises it.
PIN_DB = 0.2
#: ... and rates within this fraction of the pinned bpp.
PIN_BPP = 0.05


def assert_pinned(measured: float, pinned: float, what: str, tolerance: float = PIN_DB) -> None:
    assert abs(measured - pinned) <= tolerance, f"{what}: measured {measured:+.3f}, pinned {pinned:+.3f} +- {tolerance}"


def crop(shared_data: Path, name: str, size: int) -> np.ndarray:
    """A fixed RGB crop of a real image: ``kodim23`` (Kodak) or ``parrots`` (LIVE1)."""
    path, (y, x) = {"kodim23": ("kodak/kodim23.png", (40, 200)), "parrots": ("live1_color/parrots.png", (200, 300))}[name]
    rgb = np.asarray(Image.open(shared_data / "eval" / path).convert("RGB"))
    return np.ascontiguousarray(rgb[y:y + size, x:x + size])


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """PROTOCOL.md's JPEG: libjpeg-turbo through Pillow, default settings (4:2:0 for RGB)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode_plain(data: bytes) -> np.ndarray:
    import io

    image = Image.open(io.BytesIO(data))
    return np.asarray(image if image.mode == "L" else image.convert("RGB"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_have_a_full_record(name):
    assert name in list_weights()
    record = weights_record(name)
    assert record.path.stat().st_size < 16 * 2**20
    assert record.training["steps"] > 0 and record.training["wall_seconds"] > 0
    assert record.training["recipe"]["train_dirs"]
    assert (record.role, record.input.value, record.codec) == ("restorer", "pixels", "jpeg")
    assert record.licence.startswith("MIT") and record.url is None
    load_pretrained(name)


def test_readme_example_restores_better_than_jpeg(tmp_path, shared_data):
    """The README's example (a QF 15 Kodak crop, restored by the default,
    jpegnet-v1d): its gain pinned within 0.2 dB of what it measures (+1.86 dB
    Y, +2.21 dB RGB: the chroma is restored too)."""
    out = tmp_path / "restored.png"
    assert main(["restore", str(EXAMPLES / "kodim23_q15.jpg"), "-o", str(out), "--explain",
                 "--precision", "fp32"]) == 0
    original = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))
    original = original[40:40 + 256, 200:200 + 384]
    decoded = np.asarray(Image.open(EXAMPLES / "kodim23_q15.jpg").convert("RGB"))
    restored = np.asarray(Image.open(out))
    assert restored.shape == original.shape
    assert_pinned(psnr_y(restored, original) - psnr_y(decoded, original), 1.860, "README example, Y")
    assert_pinned(psnr(restored, original) - psnr(decoded, original), 2.205, "README example, RGB")


def test_gray_example_restores_better_than_jpeg(tmp_path, shared_data):
    """The gray example (peppers at QF 10, the default resunet-gray-blind):
    +1.83 dB, pinned within 0.2 dB."""
    out = tmp_path / "peppers.png"
    assert main(["restore", str(EXAMPLES / "peppers_gray_q10.jpg"), "-o", str(out), "--precision", "fp32"]) == 0
    original = np.asarray(Image.open(shared_data / "eval" / "classic5" / "peppers.png"))[128:384, 128:384]
    decoded = np.asarray(Image.open(EXAMPLES / "peppers_gray_q10.jpg"))
    restored = np.asarray(Image.open(out))
    assert_pinned(psnr(restored, original) - psnr(decoded, original), 1.834, "gray example")


def test_dagn_small_is_shipped_color_blind_and_measured():
    record = weights_record("dagn-small")
    assert record.model == "dagn-small" and not record.gray and record.qualities == [10, 95]
    assert record.path.stat().st_size < 16 * 2**20
    stages = [s["run"] for s in record.training["stages"]]
    assert stages == ["dagn-small-qf-warmup", "dagn-small-stage1", "dagn-small-stage2"]
    net = load_pretrained("dagn-small")
    assert net.use_cigm and net.use_csgm and net.use_cfm


def test_default_restorers_are_the_reviewed_table():
    """restore's automatic choice is the reviewed default table
    (carkit.zoo.defaults), whatever a bench last wrote into the records: every
    model it names is shipped, trained near the qualities it serves and, on
    color files, measured at least as well as the other fast candidates."""
    from carkit.restoration.restorer import choose_model
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
    # on LIVE1 color the chosen model measures at least as well as the model it replaced (one run), which
    # measured at least as well as dagn-small and resunet via Y (an earlier run)
    for q in (10, 20, 30, 40):
        chosen = measured_rgb_gain(choose_model(False, q).model, q, "restore_live1_color_color_jpegnet-v1d.json")
        assert chosen >= measured_rgb_gain("jpegnet-v1c", q, "restore_live1_color_color_jpegnet-v1d.json"), q
        others = [measured_rgb_gain(n, q, "restore_live1_color_color_jpegnet.json")
                  for n in ("jpegnet-v1c", "dagn-small", "resunet-gray-blind")]
        assert others[0] >= max(others[1:]), q
    # above QF 95 the decoded JPEG passes through: no model gains there
    assert all(choose_model(gray, q).mode == "passthrough" for gray in (False, True) for q in (96, 98, 100))


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
    20 conv layers of 64 maps, blind over QF 10..50: its gain on a Kodak
    green-plane crop pinned within 0.2 dB (+1.25 dB at QF 15, +0.95 at QF 45)."""
    import torch

    record = weights_record("dncnn3-gray-blind")
    assert record.gray and record.qualities == [10, 50] and record.training["steps"] > 0
    net = load_pretrained("dncnn3-gray-blind")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 20
    rgb = np.asarray(Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB"))
    green = np.ascontiguousarray(rgb[40:40 + 256, 200:200 + 384, 1])
    for quality, pinned in ((15, 1.250), (45, 0.951)):
        Image.fromarray(green).save(tmp_path / "in.jpg", quality=quality)
        out = tmp_path / f"restored{quality}.png"
        assert main(["restore", str(tmp_path / "in.jpg"), "-o", str(out), "--model", "dncnn3-gray-blind",
                     "--precision", "fp32"]) == 0
        decoded = np.asarray(Image.open(tmp_path / "in.jpg"))
        assert_pinned(psnr(np.asarray(Image.open(out)), green) - psnr(decoded, green), pinned, f"dncnn3 QF {quality}")


@pytest.mark.parametrize("name", ["vcodec-gray-q10", "jiang-gray-q10"])
def test_shipped_virtual_codec_beats_jpeg_at_very_low_rate(name, tmp_path, shared_data):
    """The file is smaller than JPEG at quality 1 yet decodes better than JPEG
    at quality 5; PPNN beats bicubic up-sampling of the same description."""
    import io

    from carkit.codecs.virtual.codec import read_marker

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

    from carkit.codecs.virtual.codec import read_marker

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
    from carkit.codecs.virtual.codec import choose_weights
    from carkit.zoo.select import candidates

    gray = [r.name for r in candidates("vcodec", gray=True)]
    assert sorted(gray) == sorted(f"vcodec-gray-q{q}" for q in (5, 10, 20, 40))
    assert candidates("vcodec", gray=False) == []
    extra = list_weights(include_extra=True)
    assert {"jiang-gray-q10", "vcodec-color-q10"} <= set(extra) - set(list_weights())
    for q in (1, 5, 10, 20, 40, 90):
        name = choose_weights(True, q)
        best = min(abs(weights_record(n).qualities[0] - q) for n in gray)
        assert abs(weights_record(name).qualities[0] - q) == best
        assert choose_weights(False, q) == name


def test_residual_hiding_default_is_the_pair_measured_best():
    """``carkit encode --method hiding`` picks, among the pairs trained at the
    nearest quality (a range holding it is nearest), the codec's reviewed
    default (carkit.zoo.defaults.HIDING_DEFAULTS): shipped, a hiding pair of
    that codec, and measured best where a rival was benched."""
    from carkit.codecs.hiding.codec import choose_weights, default_carrier, trained_for
    from carkit.errors import CodecError
    from carkit.zoo.defaults import HIDING_CARRIERS, HIDING_DEFAULTS
    from carkit.zoo.select import candidates, select_weights

    for codec, name in HIDING_DEFAULTS.items():
        record = weights_record(name)
        assert name in list_weights() and record.role == "hiding" and record.codec == codec, codec
        assert choose_weights(codec, False, trained_for(record)[1][0]) == name
    # without --codec: jpegli, whose pair beats the libjpeg-turbo pair on Kodak in every comparison
    assert default_carrier() == HIDING_CARRIERS[0] == "jpegli"
    jpegli = hiding_bd_rates("hiding_kodak_color_jpegli-default.json", "hiding-jpegli-q10-80-s2-dagn-rate-p128c")
    turbo = hiding_bd_rates("hiding_kodak_color_jpegli-default.json", "hiding-jpeg-q10-80-s2-dagn-rate-p128")
    assert all(jpegli[k] < turbo[k] for k in turbo), (jpegli, turbo)
    # the standard-file targets it meets on Kodak: no worse than libjpeg-turbo in an ordinary viewer, and
    # better than jpegli followed by the default restorer
    assert jpegli["plain viewer"] <= 0 and jpegli["jpegli+default"] < 0, jpegli
    assert [r.name for r in candidates("hiding", codec="jpegli", gray=False)] == \
        ["hiding-jpegli-q10-80-s2-dagn-rate-p128c"]
    assert not candidates("hiding", codec="jpeg", gray=False)   # the libjpeg-turbo pairs: weights/bench
    with pytest.raises(CodecError, match="weights/bench has hiding-jpeg-"):
        choose_weights("jpeg", False, 50)
    assert trained_for(weights_record("hiding-jpeg-q50-s1")) == ("jpeg", (50, 50))
    # HEIF: the continued Strategy I pair beats the Strategy II pair (weights/bench) by BD-rate
    long = hiding_bd_rate("hiding_kodak_color_heif_s1long.json", "heif", "hiding-heif-q39-s1-long")
    s2 = hiding_bd_rate("hiding_kodak_color_heif.json", "heif", "hiding-heif-q39-s2")
    assert long < s2
    # with the bench pairs among the candidates, the reviewed default wins among equally near pairs
    both = {r.name for r in candidates("hiding", codec="heif", gray=False, include_extra=True)}
    assert {"hiding-heif-q39-s2", "hiding-heif-q39-s1-long"} <= both
    for q in (39, 80):
        assert select_weights("hiding", q, codec="heif", gray=False, prefer=HIDING_DEFAULTS["heif"],
                              include_extra=True) == "hiding-heif-q39-s1-long"
    assert choose_weights("heif", False, 80) == "hiding-heif-q39-s1-long"


#: Each default restorer of carkit.zoo.defaults (RESTORE_DEFAULTS; UNKNOWN_QUALITY names dagn-small and
#: dncnn3-gray-blind, pinned here at qualities they serve) on a 128x128 real-image crop: (crop, gray (the
#: green plane), QF, the model and mode restore chooses, its PSNR gain over the decoded JPEG, RGB for color).
DEFAULT_RESTORER_PINS = [
    ("parrots", False, 10, "jpegnet-v1d", "color", 2.643),
    ("kodim23", False, 10, "jpegnet-v1d", "color", 2.386),
    ("parrots", False, 30, "jpegnet-v1d", "color", 2.052),
    ("kodim23", False, 30, "jpegnet-v1d", "color", 1.202),
    ("parrots", False, 50, "jpegnet-v1d", "color", 1.682),
    ("kodim23", False, 50, "jpegnet-v1d", "color", 0.791),
    ("parrots", False, 90, "jpegnet-v1d", "color", 0.622),
    ("kodim23", False, 90, "jpegnet-v1d", "color", 0.296),
    ("parrots", True, 10, "resunet-gray-blind", "gray", 3.126),
    ("kodim23", True, 10, "resunet-gray-blind", "gray", 3.106),
    ("parrots", True, 50, "jpegnet-v1d", "gray", 1.168),
    ("kodim23", True, 50, "jpegnet-v1d", "gray", 0.570),
    ("parrots", True, 85, "jpegnet-v1d", "gray", 0.421),
    ("kodim23", True, 85, "jpegnet-v1d", "gray", 0.188),
]


@pytest.mark.parametrize("name,gray,quality,model,mode,pinned", DEFAULT_RESTORER_PINS)
def test_default_restorer_gain_is_pinned(name, gray, quality, model, mode, pinned, shared_data, one_thread):
    """What ``carkit restore`` does by default to a JPEG of this kind and
    quality (PROTOCOL.md's JPEG, fp32): the reviewed model and mode, and
    their gain over the decoded JPEG on a real-image crop within 0.2 dB of
    what it measured when pinned. Guards the shipped weights (a model that
    loses part of its gain fails) and the restore path (a change that moves
    the number either way fails too); re-pin with the measurement when a
    reviewed commit changes a default or its weights."""
    from carkit.restoration.restorer import Restorer, restore_jpeg

    image = crop(shared_data, name, 128)
    if gray:
        image = np.ascontiguousarray(image[:, :, 1])
    data = jpeg_bytes(image, quality)
    restored = restore_jpeg(Restorer(precision="fp32"), data)
    assert (restored.plan.model, restored.plan.mode) == (model, mode)
    assert restored.pixels.shape == image.shape
    gain = psnr(restored.pixels, image) - psnr(decode_plain(data), image)
    assert_pinned(gain, pinned, f"{model} on {name} QF {quality}")


#: UNKNOWN_QUALITY's blind models on a QF 20 file whose last luma table entry is zeroed (no conforming
#: encoder writes it; libjpeg-turbo decodes it, restore reads its quality as unknown): (crop, gray, model,
#: gain over that file's decode, dB).
UNKNOWN_QUALITY_PINS = [
    ("parrots", False, "dagn-small", 1.915),
    ("kodim23", False, "dagn-small", 1.021),
    ("parrots", True, "dncnn3-gray-blind", 1.367),
    ("kodim23", True, "dncnn3-gray-blind", 0.911),
]


@pytest.mark.parametrize("name,gray,model,pinned", UNKNOWN_QUALITY_PINS)
def test_unknown_quality_default_gain_is_pinned(name, gray, model, pinned, shared_data, one_thread):
    """A JPEG of unknown quality takes the blind model of its kind
    (carkit.zoo.defaults.UNKNOWN_QUALITY), and its gain on a real-image crop
    holds within 0.2 dB of what it measured when pinned."""
    from carkit.restoration.restorer import Restorer, restore_jpeg

    image = crop(shared_data, name, 128)
    if gray:
        image = np.ascontiguousarray(image[:, :, 1])
    data = bytearray(jpeg_bytes(image, 20))
    dqt = data.find(b"\xff\xdb")
    data[dqt + 5 + 63] = 0  # the last entry of the first table (after length and Pq/Tq)
    restored = restore_jpeg(Restorer(precision="fp32"), bytes(data))
    assert restored.plan.quality is None and "outside 1..65535" in restored.plan.quality_problem
    assert (restored.plan.model, restored.plan.mode) == (model, "gray" if gray else "color")
    gain = psnr(restored.pixels, image) - psnr(decode_plain(bytes(data)), image)
    assert_pinned(gain, pinned, f"{model} on {name}, quality unknown")


def jpeg_psnr_at_rate(image: np.ndarray, bpp: float) -> float:
    """Plain JPEG's PSNR at ``bpp`` on ``image``: its RD curve over qualities
    1..100 (bpp from the whole file), interpolated in log-rate. Below JPEG's
    lowest rate, JPEG at quality 1 (which spends more bits)."""
    rates, psnrs = [], []
    for q in range(1, 101):
        data = jpeg_bytes(image, q)
        rates.append(8 * len(data) / (image.shape[0] * image.shape[1]))
        psnrs.append(psnr(decode_plain(data), image))
    order = np.argsort(rates)
    return float(np.interp(np.log(bpp), np.log(np.asarray(rates)[order]), np.asarray(psnrs)[order]))


#: Each learned codec's default (what ``carkit encode --method M`` picks), 2 real-image crops x 2
#: qualities: (method, its options, gray (the green plane), crop, crop size, quality, the weights it picks
#: (named in the file), bpp, PSNR advantage over plain JPEG at the same rate, dB). blockcnn runs on 128x128 crops (about 3 s each on one thread),
#: the rest on 192x192.
CODEC_PINS = [
    ("blockcnn", {}, False, "parrots", 128, 20, "blockcnn-predictor", 0.5918, -1.974),
    ("blockcnn", {}, False, "parrots", 128, 50, "blockcnn-predictor", 0.7769, -1.223),
    ("blockcnn", {}, False, "kodim23", 128, 20, "blockcnn-predictor", 0.5825, -1.103),
    ("blockcnn", {}, False, "kodim23", 128, 50, "blockcnn-predictor", 0.7358, -0.782),
    ("hiding", {}, False, "parrots", 192, 20, "hiding-jpegli-q10-80-s2-dagn-rate-p128c", 0.4798, 3.123),
    ("hiding", {}, False, "parrots", 192, 50, "hiding-jpegli-q10-80-s2-dagn-rate-p128c", 0.6181, 2.944),
    ("hiding", {}, False, "kodim23", 192, 20, "hiding-jpegli-q10-80-s2-dagn-rate-p128c", 0.4156, 3.663),
    ("hiding", {}, False, "kodim23", 192, 50, "hiding-jpegli-q10-80-s2-dagn-rate-p128c", 0.5132, 2.869),
    ("vcnn", {}, True, "parrots", 192, 10, "vcodec-gray-q10", 0.1578, 5.883),
    ("vcnn", {}, True, "parrots", 192, 20, "vcodec-gray-q20", 0.1912, 6.756),
    ("vcnn", {}, True, "kodim23", 192, 10, "vcodec-gray-q10", 0.1530, 5.298),
    ("vcnn", {}, True, "kodim23", 192, 20, "vcodec-gray-q20", 0.1799, 7.093),
    ("factorized", {}, False, "parrots", 192, 50, "factorized-small-l0130", 0.4976, -0.938),
    ("factorized", {}, False, "parrots", 192, 80, "factorized-small-l0932", 0.9993, -4.257),
    ("factorized", {}, False, "kodim23", 192, 50, "factorized-small-l0130", 0.4499, -1.658),
    ("factorized", {}, False, "kodim23", 192, 80, "factorized-small-l0932", 0.9204, -5.466),
]


@pytest.mark.parametrize("method,options,gray,name,size,quality,weights,bpp,advantage", CODEC_PINS)
def test_codec_default_rate_distortion_is_pinned(method, options, gray, name, size, quality, weights, bpp, advantage,
                                                 shared_data, one_thread):
    """Each learned codec with its default weights against the plain codec
    (libjpeg-turbo JPEG, PROTOCOL.md settings) on a real-image crop: the rate
    from the real bytes within 5% of the pinned bpp, and the PSNR of its
    decode minus JPEG's PSNR at that rate within 0.2 dB of the pinned
    advantage. The pins are what the methods measure, not what their papers
    claim: residual hiding (its default, jpegli carrier) beats JPEG by 2.9-3.7 dB; the
    virtual codec at its very low rates beats JPEG at quality 1 (which
    spends more bits) by 5-7 dB; the block-prediction codec is 0.8-2.0 dB
    below JPEG at its rate on these crops, and the small factorized-prior
    codec 0.9-1.7 dB below at about 0.5 bpp and 4-5.5 dB below at about 1 bpp.
    Guards the shipped weights, each method's default choice of them and its
    container (a silent change of either, better or worse, fails)."""
    from carkit.api import encoder

    image = crop(shared_data, name, size)
    if gray:
        image = np.ascontiguousarray(image[:, :, 1])
    codec = encoder(method, **options)
    data = codec.encode(image, quality)
    assert weights.encode("ascii") in data, f"{method} q{quality}: default weights are not {weights}"
    decoded = codec.decode(data)
    assert decoded.shape == image.shape
    measured_bpp = 8 * len(data) / (image.shape[0] * image.shape[1])
    assert abs(measured_bpp - bpp) <= PIN_BPP * bpp, f"{method} {name} q{quality}: {measured_bpp:.4f} bpp, pinned {bpp}"
    assert_pinned(psnr(decoded, image) - jpeg_psnr_at_rate(image, measured_bpp), advantage,
                  f"{method} {name} q{quality} against JPEG at {measured_bpp:.3f} bpp")
