"""Virtual codec (Zhao et al. 2017): the three networks of section II-B, the
losses of eqs. (2-7) and Algorithm 1 as a training task."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from carkit.codecs.jpeg import JpegCodec
from carkit.models.registry import create_model
from carkit.models.virtual_codec import FeatureDescription, PostProcessing, VirtualCodec, upsample_description
from carkit.training import vcodec_tasks as vt


def _convs(module):
    return [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


def test_networks_are_the_papers():
    """FDNN: 8 convs, 9x9 first and last, 3x3 between, stride 2 in the second,
    128 maps, ReLU after all but the last; PPNN: 9x9 + six 3x3 convs with ReLU,
    then a 9x9 stride-2 transposed conv."""
    fdnn = FeatureDescription(1, 128)
    convs = _convs(fdnn)
    assert [c.kernel_size[0] for c in convs] == [9, 3, 3, 3, 3, 3, 3, 9]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 1, 1, 1, 1, 1]
    assert [c.out_channels for c in convs] == [128] * 7 + [1]
    assert sum(isinstance(m, torch.nn.ReLU) for m in fdnn.modules()) == 7
    assert not isinstance(list(fdnn.body)[-1], torch.nn.ReLU)
    ppnn = PostProcessing(1, 128)
    convs = _convs(ppnn)
    assert [c.kernel_size[0] for c in convs] == [9, 3, 3, 3, 3, 3, 3, 9]
    assert isinstance(convs[-1], torch.nn.ConvTranspose2d) and convs[-1].stride == (2, 2)
    assert sum(isinstance(m, torch.nn.ReLU) for m in ppnn.modules()) == 7
    assert isinstance(create_model("vcodec-color").fdnn.body[0], torch.nn.Conv2d)
    assert create_model("vcodec-color").fdnn.body[0].in_channels == 3


@pytest.mark.parametrize("h,w", [(32, 32), (33, 21)])
def test_description_is_half_size_and_reconstruction_full_size(h, w):
    net = VirtualCodec(1, 8)
    y = net.describe(torch.rand(2, 1, h, w))
    assert y.shape == (2, 1, (h + 1) // 2, (w + 1) // 2)
    assert net.reconstruct(y, (h, w)).shape == (2, 1, h, w)
    assert upsample_description(y, (h, w)).shape == (2, 1, h, w)
    with pytest.raises(ValueError, match="does not belong"):
        net.reconstruct(y, (h + 4, w))


def test_skip_variant_adds_area_down_and_bilinear_up():
    """With ``skip`` (beyond the paper) and zeroed last layers, FDNN is area
    down-sampling and PPNN bilinear up-sampling."""
    import torch.nn.functional as F

    net = VirtualCodec(1, 8, skip=True)
    with torch.no_grad():
        for layer in (net.fdnn.body[-1], net.ppnn.up):
            layer.weight.zero_()
            layer.bias.zero_()
    x = torch.rand(1, 1, 32, 24)
    y = net.describe(x)
    assert torch.allclose(y, F.avg_pool2d(x, 2), atol=1e-6)
    assert torch.allclose(net.reconstruct(y, (32, 24)), F.interpolate(y, scale_factor=2, mode="bilinear"), atol=1e-6)


def test_algorithm_1_phases_cover_the_budget_in_the_papers_order():
    phases = vt.algorithm_1(1000, cycles=3)
    assert [p.name for p in phases] == ["init"] + 3 * ["ppnn", "vcnn", "fdnn"] + ["ppnn"]
    assert phases[0].start == 0 and sum(p.length for p in phases) == 1000
    assert all(a.start + a.length == b.start for a, b in zip(phases, phases[1:]))
    ppnn, vcnn, fdnn = phases[1:4]
    assert abs(ppnn.length - vcnn.length) <= 1 and abs(fdnn.length * 2 - ppnn.length) <= 2    # p = 60, q = 30
    direct = vt.algorithm_1(1000, cycles=2, bridge="direct")
    assert [p.name for p in direct] == ["init", "ppnn", "fdnn", "ppnn", "fdnn", "ppnn"]
    assert vt.phase_at(phases, 999) is phases[-1] and vt.phase_at(phases, 0).name == "init"
    with pytest.raises(Exception, match="too few"):
        vt.algorithm_1(5)


def test_learning_rate_steps_inside_each_phase():
    from carkit.training.recipe import Recipe

    task = vt.VirtualCodecTask()
    recipe = Recipe(name="t", model="vcodec-gray", qualities=[10], iterations=1000, lr=2e-4)
    task.prepare(None, {}, recipe)
    ppnn = task.phases()[1]
    lrs = [task.learning_rate(recipe, ppnn.start + int(f * ppnn.length)) for f in (0.0, 0.59, 0.61, 0.79, 0.81, 0.99)]
    assert lrs == pytest.approx([2e-4, 2e-4, 1e-4, 1e-4, 5e-5, 5e-5])
    assert task.optimizers_at(ppnn.start) == ("ppnn",)


def test_losses():
    a = torch.rand(2, 1, 24, 24)
    assert float(vt.gradient_difference(a, a)) == 0.0
    assert float(vt.gradient_difference(a, a + 0.3)) == pytest.approx(0.0, abs=1e-6)   # a shift has no gradient
    assert float(vt.gradient_difference(a, torch.flip(a, [-1]))) > 0.1
    assert float(vt.ssim_loss(a, a)) == pytest.approx(0.0, abs=1e-5)
    assert float(vt.ssim_loss(a, torch.rand(2, 1, 24, 24))) > 0.5


def test_codec_in_the_loop_is_the_real_jpeg_and_interpolations_are_pillows():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2, 1, 20, 30), dtype=np.uint8)
    t = torch.from_numpy(img).float() / 255
    z = vt.jpeg_code(t, [10, 40])
    for i, q in enumerate((10, 40)):
        want = JpegCodec().roundtrip(img[i, 0], q).decoded
        assert np.array_equal((z[i, 0] * 255).round().byte().numpy(), want)
    for method in vt.RESAMPLERS:
        down = vt.interpolate_down(t[:, :, :19], method)
        assert down.shape == (2, 1, 10, 15)
    box = vt.interpolate_down(t, "box")
    ref = np.asarray(Image.fromarray(img[0, 0]).resize((15, 10), Image.Resampling.BOX))
    assert np.array_equal((box[0, 0] * 255).round().byte().numpy(), ref)


def _tiny_recipe(tmp_path, shared_data, bridge, iterations):
    from carkit.training.recipe import Recipe

    return Recipe(name=f"vc-{bridge}", model="vcodec-gray", model_kwargs={"features": 8}, data_root=str(shared_data),
                  train_dirs=["val/cid22"], gray=True, patch_size=32, batch_size=2, qualities=[10],
                  val_dir="val/cid22", val_qualities=[10], val_crop=64, val_limit=1, val_every=iterations,
                  task="virtual-codec", task_kwargs={"bridge": bridge, "cycles": 1}, iterations=iterations,
                  lr=1e-3, ema=0.0, bf16=False, channels_last=False, checkpoint_every=5, log_every=1)


@pytest.mark.parametrize("bridge", ["vcnn", "direct"])
def test_algorithm_1_trains_only_the_phase_network_and_resumes(bridge, tmp_path, shared_data):
    """Each phase changes its own network only; stopped and resumed, the run
    ends where an uninterrupted one does."""
    from carkit.training.engine import train

    recipe = _tiny_recipe(tmp_path, shared_data, bridge, 12)
    phases = vt.algorithm_1(12, 1, bridge=bridge)
    snapshots = {}

    class Spy(vt.VirtualCodecTask):
        def begin_step(self, step, model, extras):
            snapshots[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            super().begin_step(step, model, extras)

    train(recipe, tmp_path / "a", progress=False, task=Spy(bridge=bridge, cycles=1))
    for phase in phases:
        end = phase.start + phase.length
        if end not in snapshots:
            continue
        before, after = snapshots[phase.start], snapshots[end]
        net = "ppnn" if phase.name == "ppnn" else "fdnn" if phase.name in ("init", "fdnn") else None
        for k in before:
            changed = not torch.equal(before[k], after[k])
            assert changed == (net is not None and k.startswith(net + ".")), (phase, k)
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert {name for e in log if "losses" in e for name in e["losses"]} == \
        ({"init", "ppnn", "vcnn", "fdnn"} if bridge == "vcnn" else {"init", "ppnn", "fdnn"})
    assert "q10" in log[-1]["val"]

    train(recipe, tmp_path / "b", progress=False, max_steps=7)
    train(recipe, tmp_path / "b", progress=False)
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "a" / "last.safetensors")), load_file(str(tmp_path / "b" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- the product: encode / decode

@pytest.fixture
def vcodec_zoo(tmp_path, monkeypatch):
    import carkit.zoo.registry as zoo
    from ..helpers import add_tiny_vcodec

    directory = tmp_path / "zoo"
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", directory)
    add_tiny_vcodec(directory, "tiny-vc-gray-q10", True, 10)
    add_tiny_vcodec(directory, "tiny-vc-gray-q40", True, 40, seed=1)
    add_tiny_vcodec(directory, "tiny-vc-color-q20", False, 20)
    return directory


def test_encode_writes_a_standard_half_size_jpeg_with_a_marker_and_decode_restores_full_size(vcodec_zoo, tmp_path):
    from carkit.cli import main
    from carkit.codecs.virtual.codec import read_marker

    rng = np.random.default_rng(0)
    for name, img in (("g", rng.integers(0, 256, (37, 50), dtype=np.uint8)),
                      ("c", rng.integers(0, 256, (37, 50, 3), dtype=np.uint8))):
        Image.fromarray(img).save(tmp_path / f"{name}.png")
        out = tmp_path / f"{name}.jpg"
        assert main(["encode", "--method", "vcnn", "-q", "12", str(tmp_path / f"{name}.png"), str(out)]) == 0
        with Image.open(out) as im:               # any viewer opens it: a half-size thumbnail
            assert im.format == "JPEG" and im.size == (25, 19)
            assert im.mode == ("L" if name == "g" else "RGB")
        marker = read_marker(out.read_bytes())
        assert marker["model"] == ("tiny-vc-gray-q10" if name == "g" else "tiny-vc-color-q20")   # nearest quality
        assert (marker["height"], marker["width"]) == (37, 50)
        rec = tmp_path / f"{name}-rec.png"
        assert main(["decode", str(out), "-o", str(rec)]) == 0
        assert np.asarray(Image.open(rec)).shape == img.shape


def test_codec_round_trip_is_deterministic_and_names_its_weights(vcodec_zoo):
    from carkit.codecs.registry import get_codec

    codec = get_codec("vcnn", model="tiny-vc-gray-q40")
    img = np.random.default_rng(1).integers(0, 256, (40, 24), dtype=np.uint8)
    rt = codec.roundtrip(img, 40)
    assert rt.decoded.shape == img.shape and rt.bpp == 8 * len(rt.data) / img.size
    assert b"tiny-vc-gray-q40" in rt.data
    assert np.array_equal(get_codec("vcnn").decode(rt.data), rt.decoded)


def test_default_weights_are_the_packages_and_others_are_used_by_name(vcodec_zoo, tmp_path, monkeypatch):
    """Weights outside the package (Jiang et al.'s baseline in weights/bench)
    are never a default, even when trained nearer the quality; named, they
    code and decode like any pair."""
    import carkit.zoo.registry as zoo
    from carkit.codecs.registry import get_codec
    from carkit.codecs.virtual.codec import choose_weights
    from ..helpers import add_tiny_vcodec

    extra = tmp_path / "extra"
    add_tiny_vcodec(extra, "jiang-gray-q12", True, 12, seed=3)
    monkeypatch.setenv(zoo.WEIGHTS_PATH_ENV, str(extra))
    assert choose_weights(True, 12) == "tiny-vc-gray-q10"
    img = np.random.default_rng(2).integers(0, 256, (24, 24), dtype=np.uint8)
    data = get_codec("vcnn", model="jiang-gray-q12").encode(img, 12)
    assert b"jiang-gray-q12" in data and get_codec("vcnn").decode(data).shape == img.shape


def test_tiled_networks_equal_untiled():
    """Overlaps wider than the receptive fields: tiles change nothing (and
    the tiling is real: a too-small overlap does change the result)."""
    from carkit.codecs.virtual.codec import describe, reconstruct

    torch.manual_seed(0)
    net = VirtualCodec(1, 16).eval()
    x = torch.rand(1, 1, 300, 230)
    with torch.no_grad():
        y = net.describe(x)
        assert y.std() > 1e-3
        # equal up to float rounding: oneDNN picks its convolution kernels by input size
        assert torch.allclose(describe(net, x, tile=64, overlap=32), y, atol=1e-6)
        assert not torch.allclose(describe(net, x, tile=16, overlap=8), y, atol=1e-6)
        full = net.reconstruct(y, (300, 230))
        assert torch.allclose(reconstruct(net, y, (300, 230), tile=128, overlap=64), full, atol=1e-6)
        assert not torch.allclose(reconstruct(net, y, (300, 230), tile=32, overlap=16), full, atol=1e-6)


def test_vcodec_errors_are_one_line(vcodec_zoo, tmp_path, monkeypatch, capsys):
    import carkit.zoo.registry as zoo
    from carkit.cli import main
    from carkit.errors import CodecError
    from carkit.codecs.virtual.codec import VirtualCodecCodec

    img = np.random.default_rng(2).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "g.png")
    # wrong mode for the named weights
    assert main(["encode", "--method", "vcnn", "--model", "tiny-vc-color-q20", "-q", "20",
                 str(tmp_path / "g.png"), str(tmp_path / "x.jpg")]) != 0
    assert "codes color images" in capsys.readouterr().err and not (tmp_path / "x.jpg").exists()
    # a plain JPEG is not a virtual-codec file
    Image.fromarray(img).save(tmp_path / "plain.jpg")
    with pytest.raises(CodecError, match="no carkit-vcodec marker"):
        VirtualCodecCodec().decode((tmp_path / "plain.jpg").read_bytes())
    # weights that changed since encoding
    assert main(["encode", "--method", "vcnn", "-q", "10", str(tmp_path / "g.png"), str(tmp_path / "v.jpg")]) == 0
    data = (tmp_path / "v.jpg").read_bytes()
    from ..helpers import add_tiny_vcodec

    add_tiny_vcodec(vcodec_zoo, "tiny-vc-gray-q10", True, 10, seed=5)
    assert main(["decode", str(tmp_path / "v.jpg"), "-o", str(tmp_path / "r.png")]) != 0
    assert "other tiny-vc-gray-q10 weights" in capsys.readouterr().err and not (tmp_path / "r.png").exists()
    # no weights at all
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "empty")
    assert main(["encode", "--method", "vcnn", "-q", "10", str(tmp_path / "g.png"), str(tmp_path / "y.jpg")]) != 0
    assert "virtual-codec weights" in capsys.readouterr().err
    # plain JPEG still decodes as an image
    assert main(["decode", str(tmp_path / "plain.jpg"), "-o", str(tmp_path / "p.png")]) == 0
    assert data  # the marked file was written whole
