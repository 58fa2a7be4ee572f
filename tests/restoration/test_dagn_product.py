"""DAGN as a product: its own quality estimate in `restore --explain`, the
QF-predictor and complexity benches, the report sections, partial init for
ablation variants, and the QF warm-up task."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from carkit.cli import main
from carkit.bench.paper_numbers import DAGN_TABLE_I, paper_gains
from carkit.bench.report import build_report
from carkit.models.registry import create_model
from carkit.restoration.restorer import grid_aligned_crop, predict_quality
from carkit.training.engine import init_from_run, train
from carkit.training.recipe import RecipeError, load_recipe
from carkit.zoo.registry import load_pretrained

from ..helpers import add_tiny_dagn, make_tiny_zoo
from ..training.test_dagn_training import _recipe


def _zoo(tmp_path, monkeypatch):
    zoo = make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    add_tiny_dagn(zoo)
    return zoo


def _kodak_jpeg(shared_data, path, quality, crop=(0, 0, 96, 80)):
    img = Image.open(shared_data / "eval" / "kodak" / "kodim23.png").convert("RGB").crop(crop)
    img.save(path, quality=quality)
    return path


def test_grid_aligned_crop_keeps_the_8x8_grid():
    x = np.random.default_rng(0).integers(0, 255, (3000, 2001, 3)).astype(np.uint8)
    c = grid_aligned_crop(x, 1024)
    assert c.shape == (1024, 1024, 3)
    assert np.shares_memory(c, x)  # a view, no copy of a big image
    # centred to within one block, corner on the 8x8 grid: (3000-1024)/2 = 988 -> 984; (2001-1024)/2 = 488
    assert np.array_equal(c, x[984:984 + 1024, 488:488 + 1024])
    small = np.zeros((37, 29), np.uint8)
    assert grid_aligned_crop(small, 1024).shape == (37, 29)


def test_predict_quality_only_for_models_with_a_predictor(tmp_path, monkeypatch):
    _zoo(tmp_path, monkeypatch)
    dagn, gray = load_pretrained("tiny-dagn"), load_pretrained("tiny-gray")
    rgb = np.random.default_rng(0).integers(0, 255, (40, 56, 3)).astype(np.uint8)
    q = predict_quality(dagn, rgb)
    assert isinstance(q, float) and 1.0 <= q <= 100.0
    assert 1.0 <= predict_quality(dagn, rgb[:, :, 0]) <= 100.0  # gray given as RGB
    assert predict_quality(gray, rgb[:, :, 0]) is None


def test_explain_prints_tables_quality_model_estimate_and_model(tmp_path, monkeypatch, capsys, shared_data):
    _zoo(tmp_path, monkeypatch)
    src = _kodak_jpeg(shared_data, tmp_path / "k.jpg", 25)
    assert main(["restore", str(src), "-o", str(tmp_path / "k.png"), "--model", "tiny-dagn", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "quality 25 (standard IJG tables)" in out and "model's own estimate" in out
    assert "tiny-dagn [color]" in out
    # without --explain no estimate is computed and nothing is printed
    assert main(["restore", str(src), "-o", str(tmp_path / "k2.png"), "--model", "tiny-dagn"]) == 0
    assert capsys.readouterr().out == ""


def test_default_color_model_for_every_quality(tmp_path, monkeypatch, capsys, shared_data):
    """A color DAGN covering 10..95 is used for color JPEGs at any quality the
    zoo covers, without the user naming a quality or a model."""
    _zoo(tmp_path, monkeypatch)
    for q in (5, 12, 50, 90):
        src = _kodak_jpeg(shared_data, tmp_path / f"k{q}.jpg", q)
        assert main(["restore", str(src), "-o", str(tmp_path / f"k{q}.png"), "--explain"]) == 0
    out = capsys.readouterr().out
    assert out.count("tiny-dagn [color]") == 4  # q5 is outside 10..95 but within the margin


def test_qf_bench_and_report(tmp_path, monkeypatch, shared_data):
    _zoo(tmp_path, monkeypatch)
    real = tmp_path / "real"
    real.mkdir()
    for name in ("pillow__hopper.jpg", "pillow__hopper_gray.jpg"):
        (real / name).write_bytes((shared_data / "jpeg" / "real" / name).read_bytes())
    (real / "broken.jpg").write_bytes(b"\xff\xd8\xff\xdbnot a jpeg")
    data = tmp_path / "set"
    data.mkdir()
    for i in range(2):
        Image.open(shared_data / "eval" / "kodak" / "kodim23.png").crop((0, 0, 64 + 8 * i, 48)).save(data / f"{i}.png")
    results = tmp_path / "results"
    assert main(["bench", "qf", "--model", "tiny-dagn", "--real", str(real), "--data", str(data),
                 "--qualities", "10,50", "--results", str(results)]) == 0
    payload = json.loads((results / "qf_tiny-dagn.json").read_text())
    assert payload["kind"] == "qf" and payload["model"] == "tiny-dagn"
    files = {r["file"]: r for r in payload["real"]["files"]}
    assert set(files) == {"pillow__hopper.jpg", "pillow__hopper_gray.jpg"}
    assert [s["file"] for s in payload["real"]["skipped"]] == ["broken.jpg"]
    assert files["pillow__hopper_gray.jpg"]["gray"] is True
    known = payload["known"][0]
    assert known["per_quality"]["q10"]["n"] == 2 and known["all"]["n"] == 4
    s = known["per_quality"]["q50"]
    assert len(s["estimates"]) == 2
    assert s["mae"] == pytest.approx(np.mean([abs(e - 50) for e in s["estimates"]]), abs=0.01)
    assert s["bias"] == pytest.approx(s["mean_estimate"] - 50)
    report = build_report(results)
    assert "## Blind quality estimation" in report and "tiny-dagn" in report


def test_qf_bench_rejects_models_without_a_predictor(tmp_path, monkeypatch, capsys):
    _zoo(tmp_path, monkeypatch)
    assert main(["bench", "qf", "--model", "tiny-gray", "--real", "", "--data", str(tmp_path),
                 "--results", str(tmp_path / "r")]) == 2
    assert "no quality predictor" in capsys.readouterr().err


def test_complexity_bench_and_report(tmp_path, monkeypatch):
    _zoo(tmp_path, monkeypatch)
    results = tmp_path / "results"
    assert main(["bench", "complexity", "--models", "tiny-gray,tiny-dagn", "--architectures", "arcnn-color",
                 "--size", "64", "--repeats", "1", "--threads", "1", "--results", str(results)]) == 0
    payload = json.loads((results / "complexity.json").read_text())
    rows = payload["rows"]
    assert set(rows) == {"tiny-gray", "tiny-dagn", "arcnn-color"}
    assert rows["tiny-gray"]["in_channels"] == 1 and rows["tiny-dagn"]["in_channels"] == 3
    arcnn = create_model("arcnn-color")
    assert rows["arcnn-color"]["params"] == sum(p.numel() for p in arcnn.parameters())
    # ARCNN is four convolutions at full resolution: MACs = params-weights x pixels
    weights = sum(m.weight.numel() for m in arcnn.modules() if isinstance(m, torch.nn.Conv2d))
    assert rows["arcnn-color"]["macs"] == weights * 64 * 64
    assert all(r["seconds"] > 0 for r in rows.values())
    report = build_report(results)
    assert "## Model cost (DAGN Table III)" in report and "952.8" in report


def test_report_puts_paper_gains_beside_color_tables(tmp_path):
    assert paper_gains("live1_color")["DAGN"][10] == pytest.approx(2.26)
    assert paper_gains("live1_color")["FBCNN"][10] == pytest.approx(2.08)
    assert paper_gains("kodak") == {}
    for dataset, methods in DAGN_TABLE_I.items():
        assert set(methods) == {"JPEG", "ARCNN", "FBCNN", "DAGN"}
        assert all(set(rows) == {10, 20, 30, 40} for rows in methods.values())


def test_init_from_a_bigger_variant_loads_what_is_shared(tmp_path, shared_data):
    one = load_recipe(_recipe(tmp_path, "one", "dagn-stage1"), data_root=str(shared_data))
    train(one, tmp_path / "one", resume=False, progress=False)
    base = create_model("dagn-small", use_cigm=False, use_csgm=False, use_cfm=False)
    counts = init_from_run(base, tmp_path / "one")
    assert counts["loaded"] > 0 and counts["unused"] > 0 and counts["missing"] == 0
    state = load_file(str(tmp_path / "one" / "last.safetensors"))
    key = next(k for k in base.state_dict() if k.startswith("cs_encoder.") and k.endswith("weight"))
    assert torch.equal(base.state_dict()[key], state["model." + key])
    with pytest.raises(RecipeError, match="differ in shape"):
        init_from_run(create_model("dagn-small", channels=(16, 32, 64, 128)), tmp_path / "one")


def test_qf_warmup_trains_only_the_sensitive_branch(tmp_path, shared_data):
    warm = load_recipe(_recipe(tmp_path, "warm", "dagn-qf-warmup"), data_root=str(shared_data))
    train(warm, tmp_path / "warm", resume=False, progress=False)
    torch.manual_seed(warm.seed)
    fresh = create_model("dagn-small").state_dict()
    after = load_file(str(tmp_path / "warm" / "last.safetensors"))

    def changed(prefix):
        keys = [k for k in fresh if k.startswith(prefix) and k.endswith("weight")]
        return any(not torch.equal(fresh[k], after["model." + k]) for k in keys)

    assert changed("cs_encoder.") and changed("qf_predictor.")
    assert not changed("ci_encoder.") and not changed("decoder.") and not changed("base_encoder.")
