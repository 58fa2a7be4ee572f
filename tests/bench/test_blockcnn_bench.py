"""BlockCNN compression bench pieces: windowed BD-rate, rate interpolation, the
restored-codec wrapper, the report section and its RD plot."""

from __future__ import annotations

import numpy as np
import pytest

from carkit import metrics
from carkit.bench.blockcnn_bench import format_blockcnn_tables, plot_rd, speed_summary
from carkit.bench.common import curve_at
from carkit.bench.codec_bench import bd_table


def _curve(rates, psnrs):
    return {"settings": {}, "points": [
        {"quality": i, "mean": {"bpp": r, "psnr_rgb": p, "ssim_rgb": 0.5 + p / 100},
         "per_image": {"encode_s": [0.1], "decode_s": [0.2 if i == 0 else None]}}
        for i, (r, p) in enumerate(zip(rates, psnrs))]}


def _payload():
    rates = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
    psnr = 25 + 4 * np.log2(rates / 0.1)
    # "better" saves 20 % at every quality below 0.5 bpp and nothing above.
    better = np.where(rates < 0.5, rates * 0.8, rates)
    payload = {
        "config": {"metrics": ["psnr_rgb", "ssim_rgb"], "qualities": [1, 2, 3, 4, 5],
                   "predictor": "p", "restorer": "r", "mode": "color", "data_dir": "/x/kodak"},
        "images": [{"name": "a.png", "height": 1000, "width": 1000}],
        "codecs": {"jpeg": _curve(rates, psnr), "better": _curve(better, psnr)},
        "provenance": {"dataset": {"name": "kodak"}},
    }
    payload["bd"] = bd_table(payload)
    payload["bd_window"] = bd_table(payload, rate_window=(0.15, 0.35))
    payload["at_bpp"] = {"bpp": 0.45, "codecs": {n: {m: curve_at(payload["codecs"][n], m, 0.45)
                                                      for m in ("psnr_rgb", "ssim_rgb")}
                                                  for n in payload["codecs"]}}
    payload["speed"] = {"jpeg": {"encode_s_per_mpix": 0.1, "decode_s_per_mpix": 0.2}}
    return payload


def test_rate_window_narrows_bd_rate():
    p = _payload()
    whole = p["bd"]["codecs"]["better"]["psnr_rgb"]["bd_rate"]
    window = p["bd_window"]["codecs"]["better"]["psnr_rgb"]["bd_rate"]
    assert window == pytest.approx(-20.0, abs=0.5)   # within 0.15-0.35 bpp the saving is 20 %
    assert whole > window + 3                          # the whole range dilutes it
    with pytest.raises(ValueError, match="rate window"):
        metrics.bd_rate([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], rate_window=(0.6, 0.15))


def test_curve_at_interpolates_on_log_rate():
    entry = _curve([0.1, 0.2, 0.4, 0.8], [25, 29, 33, 37])
    assert curve_at(entry, "psnr_rgb", 0.2) == pytest.approx(29)
    assert 29 < curve_at(entry, "psnr_rgb", 0.3) < 33
    assert curve_at(entry, "psnr_rgb", 0.05) is None


def test_speed_counts_only_timed_decodes():
    p = _payload()
    s = speed_summary({**p, "codecs": {"jpeg": p["codecs"]["jpeg"], "blockcnn": p["codecs"]["better"]}})
    assert s["blockcnn"]["encode_s_per_mpix"] == pytest.approx(0.1)
    assert s["blockcnn"]["decode_s_per_mpix"] == pytest.approx(0.2)


def test_tables_and_plot(tmp_path):
    p = _payload()
    text = format_blockcnn_tables(p)
    assert "Four combinations at 0.45 bpp" in text and "within 0.15-0.35 bpp" in text
    png = plot_rd(p, tmp_path / "fig" / "rd.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("fig/*.tmp.png"))


def test_restored_codec_keeps_the_bytes_and_restores(shared_data):
    from carkit.codecs import get_codec
    from carkit.codecs.registry import split_name
    from carkit.restoration.codec import RestoredCodec
    from carkit.metrics import psnr
    from carkit.io import read_image

    assert split_name("jpeg+dagn-small") == ("jpeg", "dagn-small") and split_name("jpeg") == ("jpeg", None)
    img = read_image(sorted((shared_data / "eval" / "live1_gray").iterdir())[0]).pixels[:96, :128]
    jpeg = get_codec("jpeg")
    both = RestoredCodec(jpeg, "resunet-gray-blind")
    assert both.encode(img, 10) == jpeg.encode(img, 10)
    assert psnr(both.decode(jpeg.encode(img, 10)), img) > psnr(jpeg.decode(jpeg.encode(img, 10)), img)
    assert both.settings()["restorer"]["name"] == "resunet-gray-blind"


def test_bench_blockcnn_end_to_end(tmp_path, monkeypatch, shared_data):
    """`carkit bench blockcnn` with a tiny predictor and a tiny remover in a temporary zoo."""
    import json

    from PIL import Image
    from safetensors.torch import save_file

    import carkit.zoo.registry as zoo
    from carkit.cli import main
    from carkit.models.blockcnn import BlockCNN
    from tests.codecs.test_blockcnn_codec import make_predictor_zoo

    make_predictor_zoo(tmp_path / "zoo", monkeypatch)
    kwargs = {"in_channels": 3, "width": 4, "num_res_blocks": 1, "color_space": "rgb"}
    remover = BlockCNN(**kwargs)
    path = tmp_path / "zoo" / "tiny-blockcnn.safetensors"
    save_file({k: v.half().contiguous() for k, v in remover.state_dict().items()}, str(path))
    zoo.save_record(zoo.WeightsRecord.new(name="tiny-blockcnn", model="blockcnn-color", model_kwargs=kwargs, gray=False,
                                      qualities=[10, 40], sha256=zoo.sha256_of(path), description="test"))
    images = tmp_path / "kodak"
    images.mkdir()
    src = sorted((shared_data / "eval" / "kodak").iterdir())[0]
    Image.open(src).convert("RGB").crop((0, 0, 64, 48)).save(images / "a.png")
    Image.open(src).convert("RGB").crop((64, 0, 128, 48)).save(images / "b.png")
    assert main(["bench", "blockcnn", "--data", str(images), "--qualities", "5,20,50,90", "--restorer",
                 "tiny-blockcnn", "--results", str(tmp_path / "res"), "--threads", "1"]) == 0
    payload = json.loads((tmp_path / "res" / "blockcnn_kodak.json").read_text())
    assert payload["config"]["codecs"] == ["jpeg", "jpeg+tiny-blockcnn", "blockcnn", "blockcnn+tiny-blockcnn"]
    assert set(payload["codecs"]) == set(payload["config"]["codecs"])
    jpeg, ar = payload["codecs"]["jpeg"]["points"], payload["codecs"]["jpeg+tiny-blockcnn"]["points"]
    # the untrained remover is the identity: same bytes, same pixels as JPEG
    assert [p["mean"]["bytes"] for p in jpeg] == [p["mean"]["bytes"] for p in ar]
    assert [p["mean"]["psnr_rgb"] for p in jpeg] == pytest.approx([p["mean"]["psnr_rgb"] for p in ar], abs=1e-3)
    assert payload["speed"]["blockcnn"]["decode_s_per_mpix"] > 0
    # every image is decoded from its bytes once, the qualities taken in turn
    timed = [[d is not None for d in p["per_image"]["decode_s"]] for p in payload["codecs"]["blockcnn"]["points"]]
    assert timed == [[True, False], [False, True], [False, False], [False, False]]
    assert "jpeg" in payload["bd"]["anchor"] and "bd_window" in payload and payload["at_bpp"]["bpp"] == 0.45
