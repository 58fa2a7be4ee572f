"""``carkit bench vcodec`` (Zhao et al. 2017, section III-B): RD curves of JPEG,
JPEG + restorer, the virtual codec and Jiang et al.'s baseline, on a tiny zoo
of untrained models and two small crops."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

from carkit.cli import main
from carkit.codecs.registry import get_codec
from carkit.bench import vcodec_bench as vb
from carkit.bench.report import build_report, write_report

from ..helpers import add_tiny_vcodec, make_tiny_zoo

DESCRIPTION_QUALITIES = (5, 10, 20, 40)
JPEG_QUALITIES = "3,5,8,12,20,30"


@pytest.fixture
def tiny(tmp_path, monkeypatch, shared_data):
    """A zoo with 'tiny-gray' (restorer), vcodec-gray-qQ and jiang-gray-qQ for
    the paper's four qualities, and a color one; a folder of two small gray
    crops of Classic5 (one with odd sides)."""
    zoo = make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    for i, q in enumerate(DESCRIPTION_QUALITIES):
        add_tiny_vcodec(zoo, f"vcodec-gray-q{q}", True, q, seed=i)
        add_tiny_vcodec(zoo, f"jiang-gray-q{q}", True, q, seed=10 + i)
    add_tiny_vcodec(zoo, "vcodec-color-q10", False, 10)
    return _crops(shared_data / "eval" / "classic5", {"lena.png": (48, 64), "baboon.png": (41, 37)},
                  (100, 200), tmp_path / "set")


def _crops(source, sizes: dict, corner: tuple[int, int], folder):
    """Small crops of real images (name -> (h, w)) at ``corner``, written to ``folder``."""
    folder.mkdir()
    y, x = corner
    for name, (h, w) in sizes.items():
        px = np.asarray(Image.open(source / name))
        Image.fromarray(px[y:y + h, x:x + w]).save(folder / name)
    return folder


def _models():
    return [f"{f}-gray-q{q}" for f in ("vcodec", "jiang") for q in DESCRIPTION_QUALITIES]


def test_payload_curves_rates_and_comparisons(tiny):
    payload = vb.bench_vcodec(tiny, _models(), restorer="tiny-gray", jpeg_qualities=[3, 5, 8, 12, 20, 30],
                              progress=False)
    assert payload["kind"] == "vcodec_bench" and payload["config"]["mode"] == "gray"
    users = ["jpegli", "jpegli+tiny-gray"] if _jpegli() else []    # what a user would write instead (issue 37)
    refs = ["jpeg", "jpeg+tiny-gray", *users]
    assert list(payload["codecs"]) == [*refs, "virtual codec", "Jiang et al."]
    assert payload["config"]["references"] == refs
    vc = payload["codecs"]["virtual codec"]
    assert [p["quality"] for p in vc["points"]] == list(DESCRIPTION_QUALITIES)
    assert [p["model"] for p in vc["points"]] == [f"vcodec-gray-q{q}" for q in DESCRIPTION_QUALITIES]
    assert len(payload["codecs"]["jpeg"]["points"]) == 6
    # the restorer is flagged outside the qualities it was trained for (10..40)
    assert [p["restorer_in_range"] for p in payload["codecs"]["jpeg+tiny-gray"]["points"]] == \
        [False, False, False, True, True, True]
    for entry in payload["codecs"].values():
        for p in entry["points"]:
            assert len(p["per_image"]["psnr"]) == 2 and len(p["per_image"]["ssim"]) == 2
            assert p["mean"]["psnr"] == pytest.approx(np.mean(p["per_image"]["psnr"]), abs=1e-4)
    assert payload["models"]["jiang-gray-q20"]["trained_quality"] == 20
    prov = payload["provenance"]
    assert prov["dataset"]["n_files"] == 2 and prov["dataset"]["file_list_hash"] and prov["versions"]["torch"]

    # bpp is the real codec file (marker included) over the FULL image's pixels
    img = np.array(Image.open(tiny / "baboon.png"))
    idx = [im["name"] for im in payload["images"]].index("baboon.png")
    data = get_codec("vcnn", model="vcodec-gray-q20").encode(img, 20)
    point = vc["points"][DESCRIPTION_QUALITIES.index(20)]
    assert point["per_image"]["bytes"][idx] == len(data)
    assert point["per_image"]["bpp"][idx] == pytest.approx(8 * len(data) / (41 * 37), abs=1e-6)
    jpeg = get_codec("jpeg").encode(img, 12)
    assert payload["codecs"]["jpeg"]["points"][3]["per_image"]["bytes"][idx] == len(jpeg)

    if users:   # jpegli's gray files, decoded by Pillow, and the same restorer after them
        jl = get_codec("jpegli").encode(img, 12)
        point = payload["codecs"]["jpegli"]["points"][3]
        assert point["per_image"]["bytes"][idx] == len(jl) and len(jl) != len(jpeg)
        assert payload["codecs"]["jpegli+tiny-gray"]["settings"]["restorer"] == "tiny-gray"
    pairs = [(c["method"], c["against"]) for c in payload["comparisons"]]
    assert pairs == [("jpeg+tiny-gray", "jpeg"), *[(u, "jpeg") for u in users],
                     *[(m, r) for m in ("virtual codec", "Jiang et al.") for r in refs],
                     ("virtual codec", "Jiang et al.")]
    for c in payload["comparisons"]:
        for table in (c["bd"], c["bd_window"]):
            assert set(table) >= {"psnr", "ssim"}
            assert all(("bd_rate" in r) != ("error" in r) for r in table.values())
        assert set(c["equal_rate"]) == {"psnr", "ssim"}
    text = vb.format_vcodec_tables(payload)
    assert "| virtual codec | vcodec-gray-q5 | 5 |" in text and "Target (equal-rate" in text
    json.dumps(payload)  # storable (write_result turns numpy into plain values)


def _jpegli() -> bool:
    from carkit.codecs.registry import available_codecs

    return "jpegli" in available_codecs()


def test_without_jpegli_its_curves_are_left_out_with_a_note(tiny, monkeypatch):
    from carkit.errors import CodecError

    def missing(name, **options):
        if name == "jpegli":
            raise CodecError("jpegli needs the ajpegli package")
        return get_codec(name, **options)

    monkeypatch.setattr(vb, "get_codec", missing)
    payload = vb.bench_vcodec(tiny, ["vcodec-gray-q10"], restorer="tiny-gray", jpeg_qualities=[5, 10, 20],
                              progress=False)
    assert "jpegli" not in payload["codecs"] and payload["config"]["references"] == ["jpeg", "jpeg+tiny-gray"]
    assert payload["notes"] == ["no jpegli curves (what a user would use instead): jpegli needs the ajpegli package"]
    assert vb.format_vcodec_tables(payload).startswith("- no jpegli curves")


def test_bd_and_equal_rate_gain_of_a_curve_against_itself_are_zero(tiny):
    payload = vb.bench_vcodec(tiny, ["vcodec-gray-q10"], restorer="tiny-gray",
                              jpeg_qualities=[3, 5, 8, 12, 20, 30], progress=False)
    payload["codecs"]["copy"] = copy.deepcopy(payload["codecs"]["jpeg"])
    c = vb.compare(payload, "copy", "jpeg")
    for m in ("psnr", "ssim"):
        assert c["bd"][m]["bd_rate"] == pytest.approx(0.0, abs=1e-9)
        er = c["equal_rate"][m]
        assert all(p["gain"] == pytest.approx(0.0, abs=1e-9) for p in er["at"]) and er["at"]
    assert c["bd"]["psnr"]["bd_psnr"] == pytest.approx(0.0, abs=1e-9)
    assert c["bd"]["ssim"]["bd_ssim"] == pytest.approx(0.0, abs=1e-9)
    # the restorer against JPEG: the same Bjontegaard numbers as `bench codecs`' table
    from carkit.bench.codec_bench import bd_table

    r = vb.compare(payload, "jpeg+tiny-gray", "jpeg")["bd"]["psnr"]
    assert r == bd_table(payload, anchor="jpeg")["codecs"]["jpeg+tiny-gray"]["psnr"]


def test_equal_rate_verdicts():
    def entry(rates, psnr):
        return {"points": [{"mean": {"bpp": r, "psnr": p}} for r, p in zip(rates, psnr)]}

    anchor = entry([0.05, 0.1, 0.2, 0.4, 0.8], [24, 26, 28, 30, 32])
    better = entry([0.08, 0.15, 0.3], [26, 28, 30])
    g = vb.equal_rate_gain(better, anchor, "psnr", (0.1, 0.3))
    assert g["window"]["verdict"] == "wins" and g["window"]["bpp"] == pytest.approx([0.1, 0.3])
    assert [p["bpp"] for p in g["at"]] == [0.08, 0.15, 0.3]
    assert vb.equal_rate_gain(anchor, better, "psnr", (0.1, 0.3))["window"]["verdict"] == "loses"
    one = vb.equal_rate_gain(entry([0.2], [29]), anchor, "psnr", (0.1, 0.3))   # a single point (one run)
    assert one["at"][0]["gain"] > 0 and one["window"]["verdict"] == "wins" and one["window"]["n_rates"] == 1
    far = entry([2.0, 3.0], [40, 41])
    assert "do not overlap" in vb.equal_rate_gain(far, anchor, "psnr")["error"]
    assert "error" in vb.equal_rate_gain(entry([0.5, 0.7], [31, 32]), anchor, "psnr", (0.1, 0.3))["window"]
    # below the anchor's lowest rate (JPEG at quality 1) with more quality than it has there: dominates
    low = entry([0.12, 0.2, 0.3], [23, 26, 28])
    jpeg = entry([0.14, 0.2, 0.3], [22, 25, 27])
    assert vb.equal_rate_gain(low, jpeg, "psnr", (0.1, 0.3))["window"]["verdict"] == "wins"   # they overlap
    lower = entry([0.11, 0.125], [24.5, 26])
    g = vb.equal_rate_gain(lower, jpeg, "psnr", (0.1, 0.3))
    assert "do not overlap" in g["error"] and g["window"]["verdict"] == "dominates"
    assert [d["margin"] for d in g["dominates"]] == pytest.approx([2.5, 4.0])
    assert "dominates" not in vb.equal_rate_gain(entry([0.12], [21]), jpeg, "psnr", (0.1, 0.3))


def test_cli_writes_result_figure_and_report_section(tiny, tmp_path, capsys):
    results, figures = tmp_path / "results", tmp_path / "figs"
    code = main(["bench", "vcodec", "--data", str(tiny), "--models", ",".join(_models()), "--restorer", "tiny-gray",
                 "--jpeg-qualities", JPEG_QUALITIES, "--results", str(results), "--figures", str(figures),
                 "--threads", "1", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "vcodec_set_gray.json" in out and "Target (equal-rate" in out
    payload = json.loads((results / "vcodec_set_gray.json").read_text())
    assert payload["config"]["jpeg_qualities"] == [3, 5, 8, 12, 20, 30]
    assert (figures / "vcodec_rd_set_gray.png").stat().st_size > 1000
    cmd = vb.command_line(payload)
    assert cmd.startswith("carkit bench vcodec --data ") and "--restorer tiny-gray" in cmd

    report = build_report(results)
    assert "## Virtual codec (Zhao et al. 2017)" in report and vb.PAPER_CLAIM in report
    assert "![RD curves](figures/vcodec_rd_set_gray.png)" in report and f"Command: `{cmd}`" in report
    assert "Provenance: carkit" in report
    assert report.index("| jpeg | - | 3 |") < report.index("| virtual codec | vcodec-gray-q5 |")  # measuring order
    md = write_report(results, tmp_path / "docs" / "RESULTS.md")
    assert (md.parent / "figures" / "vcodec_rd_set_gray.png").exists()


def test_cli_per_model_curves_with_qualities(tiny, tmp_path):
    results = tmp_path / "r"
    assert main(["bench", "vcodec", "--data", str(tiny), "--models", "vcodec-gray-q10,jiang-gray-q10",
                 "--qualities", "5,20", "--restorer", "tiny-gray", "--jpeg-qualities", JPEG_QUALITIES,
                 "--results", str(results), "--figures", "", "--no-progress"]) == 0
    payload = json.loads((results / "vcodec_set_gray.json").read_text())
    assert [p["quality"] for p in payload["codecs"]["vcodec-gray-q10"]["points"]] == [5, 20]
    assert ("vcodec-gray-q10", "jiang-gray-q10") in [(c["method"], c["against"]) for c in payload["comparisons"]]
    assert "--qualities 5,20" in vb.command_line(payload)


@pytest.mark.parametrize("args,message", [
    (["--models", "ghost"], "no shipped weights named 'ghost'"),
    (["--models", "tiny-gray"], "not a virtual-codec model"),
    (["--models", "vcodec-color-q10"], "codes color images"),
    (["--models", "vcodec-gray-q10", "--restorer", "vcodec-gray-q5"], "not a pixel artifact remover"),
    (["--models", "vcodec-gray-q10", "--window", "0.3,0.1"], "--window"),
])
def test_cli_errors_are_one_line(tiny, tmp_path, capsys, args, message):
    code = main(["bench", "vcodec", "--data", str(tiny), "--restorer", "tiny-gray", "--results",
                 str(tmp_path / "r"), "--figures", "", "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.fixture
def color_set(tmp_path, shared_data):
    return _crops(shared_data / "eval" / "kodak", {"kodim01.png": (40, 48), "kodim02.png": (33, 35)},
                  (200, 300), tmp_path / "rgb")


def test_color_sets_score_rgb_or_matlab_y_gray(tiny, color_set, tmp_path):
    results = tmp_path / "r"
    common = ["--data", str(color_set), "--restorer", "tiny-gray", "--jpeg-qualities", JPEG_QUALITIES,
              "--results", str(results), "--figures", str(tmp_path / "f"), "--no-progress"]
    assert main(["bench", "vcodec", "--models", "vcodec-color-q10", *common]) == 0
    payload = json.loads((results / "vcodec_rgb_color.json").read_text())
    assert payload["config"]["rd_metrics"] == ["psnr_rgb", "ssim_rgb"] and payload["restorer"]["mode"] == "color-via-Y"
    point = payload["codecs"]["virtual codec"]["points"][0]
    assert point["model"] == "vcodec-color-q10" and "psnr_y" in point["mean"]
    assert (tmp_path / "f" / "vcodec_rd_rgb_color.png").exists()
    # --gray: the MATLAB Y of the color crops, gray models
    assert main(["bench", "vcodec", "--gray", "--models", "vcodec-gray-q10", *common]) == 0
    payload = json.loads((results / "vcodec_rgb_gray.json").read_text())
    from carkit.color import rgb_to_y_matlab_uint8

    y = rgb_to_y_matlab_uint8(np.array(Image.open(color_set / "kodim02.png")))
    data = get_codec("jpeg").encode(y, 3)
    assert payload["codecs"]["jpeg"]["points"][0]["per_image"]["bytes"][1] == len(data)
    assert "--gray" in vb.command_line(payload)


def test_a_training_run_is_its_own_curve(tiny, tmp_path):
    """A run folder (last.safetensors + recipe.json) is coded by the product
    codec with the run's networks; its file names the run."""
    import torch
    from safetensors.torch import save_file

    from carkit.models.registry import create_model

    run = tmp_path / "runs" / "vc-ablation"
    run.mkdir(parents=True)
    torch.manual_seed(3)
    net = create_model("vcodec-gray", features=4)
    save_file({f"model.{k}": v.contiguous() for k, v in net.state_dict().items()}, str(run / "last.safetensors"))
    (run / "recipe.json").write_text(json.dumps({"name": "vc-ablation", "model": "vcodec-gray",
                                                 "model_kwargs": {"features": 4}, "gray": True, "qualities": [20],
                                                 "train_dirs": ["train/x"], "task_kwargs": {"bridge": "vcnn"}}))
    payload = vb.bench_vcodec(tiny, ["vcodec-gray-q10"], runs=[run], restorer="tiny-gray",
                              jpeg_qualities=[3, 5, 8, 12], progress=False)
    point = payload["codecs"]["vc-ablation"]["points"][0]
    assert point["quality"] == 20 and point["model"] == "vc-ablation"
    assert payload["models"]["vc-ablation"]["source"] == "run" and payload["models"]["vc-ablation"]["run"] == str(run)
    img = np.array(Image.open(tiny / "lena.png"))
    data = vb.RunCodec("vc-ablation", net.eval(), True, "0" * 64).encode(img, 20)
    assert b"vc-ablation" in data and point["per_image"]["bytes"][1] == len(data)
    assert "--runs " + str(run) in vb.command_line(payload)


def test_color_sets_code_gray_models_in_luma_mode(tiny, color_set, tmp_path):
    """On a color set gray models code the luma (their own curves, "(luma)"),
    beside color models; each luma curve is compared with its luma twin only."""
    payload = vb.bench_vcodec(color_set, ["vcodec-gray-q10", "jiang-gray-q10", "vcodec-color-q10"],
                              restorer="tiny-gray", jpeg_qualities=[3, 5, 8, 12], progress=False)
    luma = payload["codecs"]["virtual codec (luma)"]["points"][0]
    assert luma["model"] == "vcodec-gray-q10" and payload["models"]["vcodec-gray-q10"]["planes"] == "luma"
    assert payload["models"]["vcodec-color-q10"]["planes"] is None
    assert payload["codecs"]["virtual codec"]["points"][0]["model"] == "vcodec-color-q10"
    pairs = [(c["method"], c["against"]) for c in payload["comparisons"]]
    assert ("virtual codec (luma)", "Jiang et al. (luma)") in pairs
    assert ("virtual codec", "Jiang et al. (luma)") not in pairs
    img = np.array(Image.open(color_set / "kodim02.png"))
    data = get_codec("vcnn", model="vcodec-gray-q10").encode(img, 10)
    assert luma["per_image"]["bytes"][1] == len(data)
    assert set(vb.default_models(False)) == {"vcodec-color-q10", *_models()}
    assert any("virtual codec (luma)" in line for line in vb.target_verdict(payload))
