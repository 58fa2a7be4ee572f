"""HR-CNN (issue 4): the paper's parameter count, its fixed coded masks, the
k-space code made the paper's way against real libjpeg-turbo files, the
JPEG-decoder initialisation, and one training step of its task."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from carkit.errors import ModelError
from carkit.jpeg.kspace import decode_kspace, encode_kspace, islow_fdct, read_kspace
from carkit.jpeg.tables import ijg_tables
from carkit.models.hrcnn import HRCNN, coded_masks
from carkit.models.registry import create_model


def _count(module, prefixes=()) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if not prefixes or n.startswith(prefixes))


def test_parameter_count_matches_table_iii():
    net = create_model("hrcnn")
    assert _count(net, ("decoder.",)) == 275_089                # decoding
    assert _count(net, ("details",)) == 232_068                 # detail enhancement
    assert _count(net) == 507_157
    assert not [n for n, _ in net.named_parameters() if "masks" in n]   # fixed, not trained
    assert not [n for n in net.state_dict() if "masks" in n]             # nor stored in weights
    assert _count(create_model("hrcnn-color")) == 2 * 275_089 + 4 * 73_539


def test_coded_masks_extract_one_coefficient_each():
    masks = coded_masks()
    assert masks.shape == (64, 1, 8, 8) and masks.sum() == 64
    assert torch.equal(masks.sum(0)[0], torch.ones(8, 8))        # every position exactly once
    assert masks[9, 0, 1, 1] == 1 and masks[10, 0, 2, 1] == 1   # eq. 2: row ch mod 8, column ch // 8
    code = torch.arange(64.0).view(1, 1, 8, 8).repeat(1, 1, 2, 3)
    snapshots = torch.nn.functional.conv2d(code, masks, stride=8)
    assert snapshots.shape == (1, 64, 2, 3)
    assert torch.equal(snapshots[0, 10], torch.full((2, 3), float(code[0, 0, 2, 1])))


def _green_crop(shared_data, size=128, offset=(0, 0)):
    path = sorted((shared_data / "val" / "cid22").iterdir())[0]
    y, x = offset
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[y:y + size, x:x + size, 1])


@pytest.mark.parametrize("quality", [10, 30, 50, 90])
def test_paper_code_equals_libjpeg_turbo_file(shared_data, quality):
    """DCT of the original, divided by the table, rounded == what Pillow's
    libjpeg-turbo wrote into the file (every level, not nearly)."""
    for offset in ((0, 0), (40, 88)):
        green = _green_crop(shared_data, 128, offset)
        buf = io.BytesIO()
        Image.fromarray(green).save(buf, "JPEG", quality=quality)
        levels, table, size = read_kspace(buf.getvalue())
        assert size == (128, 128) and np.array_equal(table, ijg_tables(quality)[0])
        ours = encode_kspace(torch.from_numpy(green).float().div(255)[None, None], table)
        assert np.array_equal(ours[0, 0].numpy().astype(np.int16), levels)


def test_islow_matches_exact_dct_closely():
    from carkit.jpeg.dct import dct_blocks

    rng = np.random.default_rng(0)
    blocks = rng.integers(-128, 128, size=(50, 8, 8))
    exact = dct_blocks(torch.from_numpy(blocks).double()).numpy() * 8   # islow is scaled by 8
    assert np.abs(islow_fdct(blocks) - exact).max() <= 4                 # a few units of 1/8


def test_read_kspace_errors(tmp_path):
    from carkit.errors import CarkitError

    with pytest.raises(CarkitError):
        read_kspace(b"not a jpeg")
    buf = io.BytesIO()
    Image.new("L", (16, 16)).save(buf, "JPEG")
    with pytest.raises(ValueError, match="component 1"):
        read_kspace(buf.getvalue(), component=1)


@pytest.mark.parametrize("blind", [False, True])
def test_initialised_network_is_the_jpeg_decoder(shared_data, blind):
    green = _green_crop(shared_data, 64)
    table = ijg_tables(20)[0]
    code = encode_kspace(torch.from_numpy(green).float().div(255)[None, None], table)
    net = HRCNN(dequantize=True) if blind else HRCNN(init_quality=20)
    with torch.no_grad():
        out = net(code, torch.from_numpy(table).float())
    reference = decode_kspace(code, table).clamp(0, 1)
    assert (out.clamp(0, 1) - reference).abs().max() * 255 < 2.0


def test_forward_errors():
    net = HRCNN()
    with pytest.raises(ModelError, match="multiples of 8"):
        net(torch.zeros(1, 1, 12, 16))
    with pytest.raises(ModelError, match="quantization table"):
        HRCNN(dequantize=True)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ModelError, match="inner_act"):
        HRCNN(inner_act="tanh")


def test_training_task_improves_on_one_batch(shared_data):
    """A few steps of the hrcnn-kspace task on one batch lower its loss."""
    from carkit.training.engine import get_task
    from carkit.training.recipe import Recipe

    green = torch.from_numpy(_green_crop(shared_data, 64)).float().div(255)[None, None]
    batch = {"gt": green.repeat(2, 1, 1, 1), "lq": green.repeat(2, 1, 1, 1), "quality": torch.tensor([10, 30])}
    recipe = Recipe(name="t", model="hrcnn-blind", qualities=[10], loss="l2", channels_last=False)
    task = get_task("hrcnn-kspace")
    torch.manual_seed(0)
    net = create_model("hrcnn-blind")
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    first = None
    for _ in range(5):
        loss = task.loss("main", net, {}, batch, recipe)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(task.loss("main", net, {}, batch, recipe).detach()) < first
    restored = task.infer(net.eval(), batch["lq"][:1], batch["gt"][:1], 10)
    assert restored.shape == (1, 1, 64, 64)


def test_green_plane_recipe_loads_green(tmp_path):
    from carkit.data.folders import as_mode

    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 1] = 200
    assert as_mode(rgb, gray=True, plane="green").max() == 200
    assert as_mode(rgb, gray=True).max() < 200
    with pytest.raises(ValueError, match="gray plane"):
        as_mode(rgb, gray=True, plane="red")


def _hrcnn_zoo(directory, monkeypatch, name="tiny-hrcnn", quality=20):
    """A zoo holding one HR-CNN entry that starts as the JPEG decoder of ``quality``."""
    from safetensors.torch import save_file

    import carkit.zoo.registry as zoo

    directory.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", directory)
    torch.manual_seed(0)
    net = HRCNN(init_quality=quality)
    path = directory / f"{name}.safetensors"
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(path))
    zoo.save_record(zoo.WeightsRecord.new(name=name, model="hrcnn", model_kwargs={"init_quality": quality}, gray=True,
                                      qualities=[quality, quality], sha256=zoo.sha256_of(path),
                                      description="test"))


def test_restore_reads_coefficients_never_pixels(tmp_path, monkeypatch, shared_data):
    """`carkit restore --model <hrcnn>` on a gray JPEG: no pixel decoder runs,
    and a network that is still the JPEG decoder reproduces the JPEG."""
    import carkit.io
    import carkit.jpeg.jpegfile
    from carkit.cli import main

    _hrcnn_zoo(tmp_path / "zoo", monkeypatch)
    green = _green_crop(shared_data, 100)[:, :90]            # not a multiple of 8
    src = tmp_path / "g.jpg"
    Image.fromarray(green).save(src, quality=20)
    jpeg = np.asarray(Image.open(src))

    def no_pixels(*a, **k):
        raise AssertionError("a pixel decoder was called")

    monkeypatch.setattr(carkit.io, "read_image", no_pixels)
    monkeypatch.setattr(carkit.io, "read_image_bytes", no_pixels)
    monkeypatch.setattr(carkit.jpeg.jpegfile, "read_image_bytes", no_pixels)
    dst = tmp_path / "out.png"
    assert main(["restore", "--model", "tiny-hrcnn", str(src), "-o", str(dst)]) == 0
    monkeypatch.undo()
    out = np.asarray(Image.open(dst))
    assert out.shape == green.shape
    assert np.abs(out.astype(int) - jpeg).max() <= 3


def test_restore_color_jpeg_with_gray_kspace_model_fails_cleanly(tmp_path, monkeypatch, shared_data, capsys):
    from carkit.cli import main

    _hrcnn_zoo(tmp_path / "zoo", monkeypatch)
    src = tmp_path / "c.jpg"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(src, quality=20)
    dst = tmp_path / "out.png"
    assert main(["restore", "--model", "tiny-hrcnn", str(src), "-o", str(dst)]) == 1
    assert "3 components" in capsys.readouterr().err
    assert not dst.exists()


def test_bench_restore_green_crops_scores_kspace_model_at_its_quality(tmp_path, monkeypatch, shared_data):
    """`carkit bench restore --plane green --crop 64`: HR-CNN read from the JPEG
    bytes, scored only at its own quality; a pixel model beside it everywhere."""
    import json

    from carkit.cli import main

    _hrcnn_zoo(tmp_path / "zoo", monkeypatch, quality=20)
    images = tmp_path / "imgs"
    images.mkdir()
    src = sorted((shared_data / "eval" / "kodak").iterdir())[0]
    Image.open(src).convert("RGB").crop((0, 0, 136, 64)).save(images / "a.png")   # two whole 64-crops
    assert main(["bench", "restore", "--data", str(images), "--models", "tiny-hrcnn", "--plane", "green",
                 "--crop", "64", "--qualities", "10,20", "--results", str(tmp_path / "res"),
                 "--threads", "1"]) == 0
    payload = json.loads((tmp_path / "res" / "restore_imgs_crops64_green.json").read_text())
    assert payload["plane"] == "green" and payload["rows"]["jpeg"]["q10"]["n"] == 2
    assert set(payload["rows"]["tiny-hrcnn"]) == {"q20"}
    assert payload["models"]["tiny-hrcnn"]["mode"] == "kspace"
    assert payload["models"]["tiny-hrcnn"]["params"] == 507_157
    # still the JPEG decoder: within a hair of JPEG's PSNR
    assert abs(payload["rows"]["tiny-hrcnn"]["q20"]["psnr"] - payload["rows"]["jpeg"]["q20"]["psnr"]) < 0.1
    assert main(["bench", "restore", "--data", str(images), "--models", "tiny-hrcnn", "--qualities", "20",
                 "--results", str(tmp_path / "res")]) == 2     # color set: a clear error


def test_report_prints_table_iii_for_green_live1_results():
    """A green-plane LIVE1 result at Q 10 gets HR-CNN's Table III: measured
    parameters and gains beside the paper's rows; other results do not."""
    from carkit.bench.report import _hrcnn_table_iii

    payload = {"gray": True, "plane": "green", "dataset": "live1_color", "qualities": [10, 30],
               "metrics": ["psnr"], "models": {"hrcnn-q10": {"params": 507_157}, "hrcnn-q30": {"params": 507_157}},
               "rows": {"jpeg": {"q10": {"psnr": 27.0}, "q30": {"psnr": 31.0}},
                        "hrcnn-q10": {"q10": {"psnr": 28.5}}, "hrcnn-q30": {"q30": {"psnr": 32.0}}}}
    text = "\n".join(_hrcnn_table_iii(payload))
    assert "| hrcnn-q10 | 507,157 | +1.50 | here |" in text
    assert "hrcnn-q30" not in text                       # not scored at Q 10
    assert "| DnCNN | 668,225 | +1.42 | paper |" in text
    assert _hrcnn_table_iii({**payload, "plane": "y"}) == []
    assert _hrcnn_table_iii({**payload, "dataset": "cid22_crops128"}) == []


def test_report_prints_table_ii_jpeg_and_hrcnn_psnr_ssim_beside_the_paper():
    """Green LIVE1 (Table II) and val crops (Table I): per quality, JPEG and
    the hrcnn models scored there, PSNR/SSIM and gains, and the paper's rows."""
    from carkit.bench.report import _hrcnn_table_ii

    payload = {"gray": True, "plane": "green", "dataset": "live1_color", "qualities": [10, 30],
               "metrics": ["psnr", "ssim"],
               "models": {"hrcnn-q10": {"architecture": "hrcnn"}, "arcnn-gray-q10": {"architecture": "arcnn-gray"}},
               "rows": {"jpeg": {"q10": {"psnr": 27.0, "ssim": 0.8}, "q30": {"psnr": 31.0, "ssim": 0.9}},
                        "hrcnn-q10": {"q10": {"psnr": 28.5, "ssim": 0.83}},
                        "arcnn-gray-q10": {"q10": {"psnr": 28.0, "ssim": 0.82}}}}
    text = "\n".join(_hrcnn_table_ii(payload))
    assert "Table II" in text
    assert ("| 10 | hrcnn-q10 | 27.00 / 0.8000 | 28.50 / 0.8300 | +1.50 / +0.0300 | 27.19 / 0.8732 | "
            "28.64 / 0.8982 | +1.45 / +0.0250 |") in text
    assert "arcnn" not in text and "| 30 |" not in text          # not HR-CNN; no HR-CNN row at Q 30
    assert "Table I " in "\n".join(_hrcnn_table_ii({**payload, "dataset": "cid22_crops128"}))
    assert _hrcnn_table_ii({**payload, "plane": "y"}) == []
    assert _hrcnn_table_ii({**payload, "metrics": ["psnr"]}) == []


def test_color_model_starts_as_the_jpeg_decoder_and_restores_files(tmp_path, monkeypatch, shared_data):
    """hrcnn-color at initialisation decodes a real 4:2:0 file's coefficients
    like libjpeg-turbo decodes its pixels; `carkit restore` runs it from the file."""
    from safetensors.torch import save_file

    import carkit.zoo.registry as zoo
    from carkit.cli import main
    from carkit.metrics import psnr_rgb
    from carkit.models.hrcnn import HRCNNColor
    from carkit.training.hrcnn_tasks import color_codes

    src = sorted((shared_data / "eval" / "kodak").iterdir())[3]
    rgb = np.asarray(Image.open(src).convert("RGB"))[:96, :120]           # 120: not a multiple of 16
    path = tmp_path / "c.jpg"
    Image.fromarray(rgb).save(path, quality=30)
    decoded = np.asarray(Image.open(path).convert("RGB"))

    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", zoo_dir)
    torch.manual_seed(0)
    weights = zoo_dir / "tiny-hrcnn-color.safetensors"
    save_file({k: v.half().contiguous() for k, v in HRCNNColor().state_dict().items()}, str(weights))
    zoo.save_record(zoo.WeightsRecord.new(name="tiny-hrcnn-color", model="hrcnn-color", model_kwargs={}, gray=False,
                                      qualities=[10, 60], sha256=zoo.sha256_of(weights), description="test"))
    dst = tmp_path / "out.png"
    assert main(["restore", "--model", "tiny-hrcnn-color", str(path), "-o", str(dst)]) == 0
    out = np.asarray(Image.open(dst))
    assert out.shape == rgb.shape
    assert abs(psnr_rgb(out, rgb) - psnr_rgb(decoded, rgb)) < 0.1
    assert np.abs(out.astype(int) - decoded).mean() < 1.0

    # training codes are a real file's: shapes per plane, tables per quality
    y, cb, cr, lt, ct = color_codes(torch.from_numpy(rgb[:96, :112].copy()).permute(2, 0, 1)[None].float() / 255, [30])
    assert y.shape == (1, 1, 96, 112) and cb.shape == cr.shape == (1, 1, 48, 56)
    assert np.array_equal(lt[0].numpy(), ijg_tables(30)[0]) and np.array_equal(ct[0].numpy(), ijg_tables(30)[1])


def test_report_prints_speed_ratios_beside_the_papers_claim():
    """The green LIVE1 section states seconds per megapixel: decode, HR-CNN
    from coefficients (no decode added) and decode + a pixel restorer."""
    from carkit.bench.report import _hrcnn_speed

    payload = {"threads": 2, "jpeg_decode_megapixels_per_second": 100.0,
               "models": {"hrcnn-q10": {"mode": "kspace", "megapixels_per_second": 1.0},
                          "arcnn-gray-q10": {"mode": "gray", "megapixels_per_second": 2.0}}}
    text = "\n".join(_hrcnn_speed(payload))
    assert "| Pillow/libjpeg-turbo JPEG decode | 0.0100 | 1.0x |" in text
    assert "| hrcnn-q10 from the coefficients | 1.0000 | 100.0x |" in text
    assert "| decode + arcnn-gray-q10 | 0.5100 | 51.0x |" in text
    assert "(2.24x)" in text
    assert _hrcnn_speed({**payload, "jpeg_decode_megapixels_per_second": None}) == []
