"""Residual hiding (the Residual hiding paper): E and D, the Strategy I
simulator, the compression proxies and losses of sections 3.3-3.4 as a
training task, and the encode/decode product."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from carkit.codecs import get_codec
from carkit.codecs.jpeg import JpegCodec
from carkit.errors import CodecError
from carkit.io import to_tensor, to_uint8
from carkit.metrics import score
from carkit.models.registry import create_model, model_config
from carkit.models.residual_hiding import CodecSimulator, ResidualHiding
from carkit.training import hiding_tasks as ht

TINY = {"channels": [4, 8, 16], "blocks": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _image(h=40, w=56, color=True, seed=0) -> np.ndarray:
    """Smooth structure plus texture: JPEG leaves a real residual."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 128 + 70 * np.sin(x / 5.0) * np.cos(y / 4.0) + np.random.default_rng(seed).normal(0, 12, (h, w))
    if not color:
        return np.clip(base, 0, 255).astype(np.uint8)
    return np.clip(np.stack([base, 255 - base, base * 0.5 + 60], -1), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- networks

def test_networks_shapes_parameters_and_identity_start():
    net = create_model("hiding-color")
    assert isinstance(net, ResidualHiding) and model_config("hiding-color").kind == "hiding"
    assert (_count(net.encoder), _count(net.decoder), _count(net)) == (1_007_587, 1_006_723, 2_014_310)
    assert _count(create_model("hiding-gray")) == 2_011_426
    assert net.encoder.head.in_channels == 6 and net.encoder.tail.out_channels == 3
    ih = torch.rand(2, 3, 37, 29)
    ir = torch.rand(2, 3, 37, 29) - 0.5
    enc = net.hide(ih, ir)
    assert enc.shape == ih.shape and net.reveal(enc).shape == ih.shape
    # zero-initialised corrections: an untrained pair is the plain codec
    assert torch.equal(enc, ih) and torch.equal(net.reconstruct(enc), enc) and not net.reveal(enc).any()
    with torch.no_grad():
        net.decoder.tail.weight.normal_(0, 0.1)
    il_enc = torch.rand(1, 3, 21, 18)
    assert torch.allclose(net.reconstruct(il_enc), il_enc + net.reveal(il_enc))      # I'H = IL_enc + I'R


def test_decoder_can_be_a_registered_restorer_started_from_its_weights(monkeypatch):
    """hiding-color-dagn: D is the dagn-small restorer (awareness encoders
    frozen, as DAGN's stage two), and ``init_from`` + ``init_into`` load a
    restorer's weights into D alone, so the untrained pair is codec + that
    restorer."""
    import carkit.training.engine as engine

    torch.manual_seed(0)
    restorer = create_model("dagn-small").eval()
    source = {k: v.clone() for k, v in restorer.state_dict().items()}
    net = create_model("hiding-color-dagn")
    assert _count(net.encoder) == 1_007_587 and _count(net.decoder) == _count(restorer)
    assert all(not p.requires_grad for p in net.decoder.ci_encoder.parameters())
    net.train()
    assert not net.decoder.ci_encoder.training and net.decoder.base_encoder.training
    net.eval()

    # the zoo's weights stand in for shipped dagn-small here (a run folder works the same way)
    monkeypatch.setattr(engine, "_init_state", lambda name, part="model", runs_root=None: source)
    counts = engine.init_from_run(net, "zoo:dagn-small", into="decoder")
    assert counts["missing"] == sum(1 for k in net.state_dict() if k.startswith("encoder."))
    assert counts["unused"] == 0
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        assert torch.equal(net.hide(x, torch.rand_like(x)), x)                  # untrained E: identity
        assert torch.equal(net.reconstruct(x), restorer(x))                     # D: the restorer
        assert torch.allclose(net.reveal(x), restorer(x) - x)                   # I'R = D(IL_enc) - IL_enc
    with pytest.raises(Exception, match="not a restorer"):
        ResidualHiding(decoder="hiding-sim-color")


def test_simulator_is_eight_conv_relu_blocks_without_downsampling():
    sim = create_model("hiding-sim-color")
    assert isinstance(sim, CodecSimulator) and model_config("hiding-sim-color").kind == "codec-sim"
    convs = [m for m in sim.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 9 and all(c.stride == (1, 1) for c in convs)      # 8 blocks + the output conv
    assert sum(isinstance(m, torch.nn.ReLU) for m in sim.modules()) == 8
    assert _count(sim) == 262_019 and _count(create_model("hiding-sim-gray")) == 259_713
    x = torch.rand(1, 3, 19, 23)
    assert torch.equal(sim(x), x)                                           # starts as the identity


# ---------------------------------------------------------------- compression proxies

def test_skip_component_forward_is_the_real_codec_and_its_gradient_the_identity():
    codec = get_codec("jpeg")
    x = to_tensor(_image()).repeat(2, 1, 1, 1).requires_grad_(True)
    real = ht.codec_batch(codec, x, 50)
    assert torch.equal(real[0], to_tensor(codec.roundtrip(_image(), 50).decoded)[0])
    y = ht.skip_component(real, x)
    assert torch.equal(y, real)
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.equal(x.grad, g)


def test_strategy_I_jpeg_proxy_tracks_the_real_jpeg_and_carries_gradients():
    from carkit.metrics import psnr

    task = ht.ResidualHidingTask(strategy="I")
    assert task.simulator == "proxy" and task.optimizers == ("main",)
    x = to_tensor(_image(48, 64)).requires_grad_(True)
    simulated = task.simulate(x, {})
    assert psnr(to_uint8(simulated), task.codec.roundtrip(_image(48, 64), 50).decoded) > 40.0
    out = task.compress(x, {})
    assert torch.equal(out, ht.codec_batch(task.codec, x, 50))             # D sees the real codec
    out.square().sum().backward()
    assert x.grad.abs().sum() > 0 and not torch.allclose(x.grad, 2 * out.detach())  # through the proxy, not identity
    # the autoencoder simulator (other codecs; here on JPEG): same forward, its own L_sim optimizer
    auto = ht.ResidualHidingTask(strategy="I", simulator="autoencoder", sim_features=4, sim_blocks=2)
    assert auto.optimizers == ("main", "sim")
    extras = {"sim": CodecSimulator(3, 4, 2)}
    assert torch.equal(auto.compress(x, extras), out)


def test_task_arguments_are_checked():
    from carkit.training.recipe import RecipeError

    with pytest.raises(RecipeError, match="strategy"):
        ht.ResidualHidingTask(strategy="III")
    with pytest.raises(RecipeError, match="simulator='autoencoder'"):
        ht.ResidualHidingTask(strategy="I", codec="webp", simulator="proxy")
    with pytest.raises(RecipeError, match="quality"):
        ht.ResidualHidingTask(quality=0)
    assert ht.ResidualHidingTask(strategy="I", codec="webp").simulator == "autoencoder"
    with pytest.raises(RecipeError, match="Strategy II only"):
        ht.ResidualHidingTask(strategy="I", quality=[30, 70])
    with pytest.raises(RecipeError, match="lo <= hi"):
        ht.ResidualHidingTask(quality=[70, 30])
    with pytest.raises(RecipeError, match="quality"):
        ht.ResidualHidingTask(quality=[30, 101])
    assert ht.ResidualHidingTask(quality=[30, 70]).qualities == (30, 70)


def test_quality_range_draws_per_image_qualities_by_step_and_checks_validation():
    """A range task gives every image of a step its own quality, the same for
    its residual and for IL_enc (an untrained pair's loss is then
    5 * MSE of each image's own JPEG), the same draws for the same step (so a
    resumed run repeats them), and refuses validation outside the range."""
    from types import SimpleNamespace

    from carkit.training.recipe import RecipeError

    task = ht.ResidualHidingTask(strategy="II", quality=[20, 80])
    task.prepare(None, {}, SimpleNamespace(name="r", val_qualities=[20, 50, 80], seed=0))
    task.begin_step(5, None, {})
    draws = task.draw_qualities(16)
    assert all(20 <= q <= 80 for q in draws) and len(set(draws)) > 1
    assert task.draw_qualities(16) == draws
    task.begin_step(6, None, {})
    assert task.draw_qualities(16) != draws
    task.begin_step(5, None, {})
    gt = torch.cat([to_tensor(_image()), to_tensor(_image()[::-1].copy())])
    qualities = task.draw_qualities(2)
    net = ResidualHiding(3, **TINY)
    plain = torch.cat([ht.codec_batch(task.codec, gt[i:i + 1], q) for i, q in enumerate(qualities)])
    assert torch.allclose(task.loss("main", net, {}, {"gt": gt}, None), 5.0 * ((plain - gt) ** 2).mean())
    with pytest.raises(RecipeError, match="range 20..80"):
        task.prepare(None, {}, SimpleNamespace(name="r", val_qualities=[90], seed=0))
    with pytest.raises(RecipeError, match=r"val.qualities = \[50\]"):
        ht.ResidualHidingTask(quality=50).prepare(None, {}, SimpleNamespace(name="r", val_qualities=[40], seed=0))



def test_validation_baseline_is_the_tasks_own_codec(tmp_path):
    """The log's baseline column: JPEG for JPEG tasks (the default), the task's
    codec at its quality otherwise (JPEG 2000 at 28 is not JPEG at 28)."""
    from carkit.training.validate import ValidationSet

    rng = np.random.default_rng(3)
    img = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    assert ht.ResidualHidingTask(codec="jpeg", quality=50).val_degradation() is None
    task = ht.ResidualHidingTask(codec="jpeg2000", quality=28)
    vs = ValidationSet.build(tmp_path, [28], False, 32, degrade=task.val_degradation())
    lq, gt = vs.pairs[28][0]
    assert np.array_equal(lq, get_codec("jpeg2000").roundtrip(gt, 28).decoded)
    jpeg = ValidationSet.build(tmp_path, [28], False, 32).pairs[28][0][0]
    assert not np.array_equal(lq, jpeg)

def test_loss_is_lambda_rec_plus_con():
    """An untrained pair: IH_enc = IH (L_con = 0) and I'H = JPEG(IH), so the
    loss is 5 * MSE(JPEG(IH), IH); a changed encoder adds L_con."""
    task = ht.ResidualHidingTask(strategy="II")
    net = ResidualHiding(3, **TINY)
    gt = to_tensor(_image())
    expected = 5.0 * ((ht.codec_batch(task.codec, gt, 50) - gt) ** 2).mean()
    assert torch.allclose(task.loss("main", net, {}, {"gt": gt}, None), expected)
    with torch.no_grad():
        net.encoder.tail.bias.fill_(0.01)
    enc = net.hide(gt, gt - ht.codec_batch(task.codec, gt, 50))
    rec = net.reconstruct(ht.codec_batch(task.codec, enc, 50))
    want = 5.0 * ((rec - gt) ** 2).mean() + ((enc - gt) ** 2).mean()
    assert torch.allclose(task.loss("main", net, {}, {"gt": gt}, None), want)


def test_validation_logs_what_a_plain_viewer_shows():
    """val_extra has the PSNR of JPEG(IH_enc) without D (an ordinary viewer's
    picture) beside the codec's own on the originals, and both rates."""
    gt = to_tensor(_image())
    net = ResidualHiding(3, **TINY)
    with torch.no_grad():
        net.encoder.tail.bias.fill_(0.01)
    task = ht.ResidualHidingTask(strategy="II")
    task.infer(net, None, gt, 50)
    extra = task.val_extra(50)
    coded = ht.codec_batch(task.codec, net.hide(gt, gt - ht.codec_batch(task.codec, gt, 50)), 50)
    plain = ht.codec_batch(task.codec, gt, 50)
    assert extra["plain_psnr"] == pytest.approx(float(-10 * torch.log10(((coded - gt) ** 2).mean())), abs=1e-3)
    assert extra["codec_psnr"] == pytest.approx(float(-10 * torch.log10(((plain - gt) ** 2).mean())), abs=1e-3)
    assert set(extra) == {"bpp", "codec_bpp", "plain_psnr", "codec_psnr"}


def test_rate_term_adds_the_jpeg_rate_proxy_of_ih_enc_and_reaches_e():
    """rate_weight > 0 adds rate_weight * R(IH_enc); R orders images as the
    real JPEG bytes do, and its gradient reaches E."""
    from carkit.jpeg.proxy import DiffJPEG
    from carkit.training.recipe import RecipeError

    rng = np.random.default_rng(0)
    smooth = _image(64, 64)
    noisy = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)
    dj = DiffJPEG()
    for q in (20, 75):
        real = [get_codec("jpeg").roundtrip(im, q).nbytes for im in (smooth, noisy)]
        proxy = [float(ht.jpeg_rate_proxy(to_tensor(im), q, dj)) for im in (smooth, noisy)]
        assert real[0] < real[1] and proxy[0] < proxy[1]
    gt = to_tensor(_image())
    net = ResidualHiding(3, **TINY)
    with torch.no_grad():
        net.encoder.tail.bias.fill_(0.01)
    plain = ht.ResidualHidingTask(strategy="II").loss("main", net, {}, {"gt": gt}, None)
    task = ht.ResidualHidingTask(strategy="II", rate_weight=0.5)
    loss = task.loss("main", net, {}, {"gt": gt}, None)
    enc = net.hide(gt, gt - ht.codec_batch(task.codec, gt, 50))
    assert torch.allclose(loss, plain + 0.5 * ht.jpeg_rate_proxy(enc, 50, task.jpeg_proxy()).mean())
    net.zero_grad()
    ht.jpeg_rate_proxy(net.hide(gt, gt - ht.codec_batch(task.codec, gt, 50)), 50, task.jpeg_proxy()).sum().backward()
    assert net.encoder.tail.weight.grad.abs().sum() > 0 and net.decoder.tail.weight.grad is None
    with pytest.raises(RecipeError, match="JPEG only"):
        ht.ResidualHidingTask(codec="jpeg2000", quality=28, rate_weight=0.1)
    ht.ResidualHidingTask(codec="jpegli", quality=[10, 80], rate_weight=0.01)  # jpegli writes JPEG files too
    # the proxy's rate is per image
    two = torch.cat([to_tensor(smooth), to_tensor(noisy)])
    per = ht.jpeg_rate_proxy(two, 50, task.jpeg_proxy())
    alone = [ht.jpeg_rate_proxy(to_tensor(im), 50, task.jpeg_proxy()) for im in (smooth, noisy)]
    assert per.shape == (2,) and torch.allclose(per, torch.cat(alone))


def _tiny_recipe(shared_data, strategy, iterations, **task_kwargs):
    from carkit.training.recipe import Recipe

    return Recipe(name=f"hiding-{strategy}", model="hiding-color", model_kwargs=TINY, data_root=str(shared_data),
                  train_dirs=["val/cid22"], gray=False, patch_size=32, batch_size=2, qualities=[50],
                  val_dir="val/cid22", val_qualities=[50], val_crop=48, val_limit=1, val_every=iterations,
                  task="residual-hiding", task_kwargs={"strategy": strategy, **task_kwargs}, iterations=iterations,
                  lr=1e-3, schedule="constant", ema=0.9, bf16=False, channels_last=False, checkpoint_every=3,
                  log_every=1, threads=1)


@pytest.mark.parametrize("strategy,kwargs", [("II", {}), ("II", {"quality": [40, 60]}),
                                             ("I", {"simulator": "autoencoder", "sim_features": 4, "sim_blocks": 2})])
def test_task_trains_e_d_and_simulator_and_resumes_bit_identically(strategy, kwargs, tmp_path, shared_data):
    from safetensors.torch import load_file

    from carkit.training.engine import train

    recipe = _tiny_recipe(shared_data, strategy, 6, **kwargs)
    train(recipe, tmp_path / "a", progress=False)
    a = load_file(str(tmp_path / "a" / "last.safetensors"))
    torch.manual_seed(recipe.seed)
    init = create_model("hiding-color", **TINY).state_dict()
    for part in ("encoder", "decoder"):
        assert not torch.equal(a[f"model.{part}.tail.weight"], init[f"{part}.tail.weight"])
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    if "simulator" in kwargs:
        assert {"main", "sim"} <= set(log[0]["losses"]) and "sim.out.weight" in a
        assert a["sim.out.weight"].abs().sum() > 0                         # L_sim trained the simulator
    val = log[-1]["val"]["q50"]
    # the rates beside the gain: IL_enc's real bits and the codec's alone on the same crop
    from carkit.data.folders import load_images
    from carkit.training.validate import center_crop

    crop = load_images(shared_data / "val" / "cid22", gray=False)[0]

    plain = get_codec("jpeg").roundtrip(center_crop(crop, 48), 50)
    assert val["codec_bpp"] == pytest.approx(8 * plain.nbytes / plain.decoded.shape[0] / plain.decoded.shape[1])
    assert val["bpp"] > 0 and set(val) == {"psnr", "jpeg", "gain", "bpp", "codec_bpp", "plain_psnr", "codec_psnr"}

    train(recipe, tmp_path / "b", progress=False, max_steps=3)
    train(recipe, tmp_path / "b", progress=False)
    b = load_file(str(tmp_path / "b" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_direct_strategy_trains_through_the_learned_codec_itself(tmp_path, shared_data, monkeypatch):
    """The paper's deep-codec route (Fig. 2): forward the real codec's IL_enc,
    gradients through the frozen learned codec to E; a standard codec is a
    one-line recipe error before any step."""
    import carkit.zoo.registry as zoo
    from carkit.training.engine import train
    from carkit.training.recipe import RecipeError

    from .test_learned_codec import _add_tiny

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    (tmp_path / "zoo").mkdir()
    _add_tiny(tmp_path / "zoo")
    task = ht.ResidualHidingTask(strategy="direct", codec="factorized", quality=50)
    task.prepare(None, {}, _tiny_recipe(shared_data, "direct", 1, codec="factorized"))
    enc = to_tensor(_image(32, 32)).requires_grad_(True)
    out = task.compress(enc, {})
    assert torch.equal(out, ht.codec_batch(task.codec, enc, 50))          # the real codec's output
    out.sum().backward()
    assert enc.grad.abs().sum() > 0 and not torch.allclose(enc.grad, torch.ones_like(enc.grad))  # not Strategy II's

    recipe = _tiny_recipe(shared_data, "direct", 3, codec="factorized")
    train(recipe, tmp_path / "run", progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert "q50" in log[-1]["val"]
    with pytest.raises(RecipeError, match="not differentiable"):
        train(_tiny_recipe(shared_data, "direct", 3), tmp_path / "jpeg", progress=False)
    with pytest.raises(RecipeError, match="leave out simulator"):
        ht.ResidualHidingTask(strategy="direct", codec="factorized", simulator="autoencoder")


def test_simulator_pretrains_alone_on_ih_il_pairs_first(tmp_path, shared_data):
    """Strategy I with the autoencoder (the paper's section 4.2): during
    ``sim_pretrain`` steps only the simulator learns, on (IH, IL); E and D wait."""
    from safetensors.torch import load_file

    from carkit.training.engine import train
    from carkit.training.recipe import RecipeError

    with pytest.raises(RecipeError, match="sim_pretrain"):
        ht.ResidualHidingTask(strategy="II", sim_pretrain=2)
    task = ht.ResidualHidingTask(strategy="I", simulator="autoencoder", sim_pretrain=2)
    assert [task.optimizers_at(s) for s in range(3)] == [("sim",), ("sim",), ("main", "sim")]
    gt, sim = to_tensor(_image()), CodecSimulator(3, 4, 2)
    with torch.no_grad():
        sim.out.bias.fill_(0.1)
    task.begin_step(0, None, {})
    want = ((sim(gt) - ht.codec_batch(task.codec, gt, 50)) ** 2).mean()
    assert torch.allclose(task.loss("sim", None, {"sim": sim}, {"gt": gt}, None), want)

    recipe = _tiny_recipe(shared_data, "I", 2, simulator="autoencoder", sim_features=4, sim_blocks=2,
                          sim_pretrain=2)
    train(recipe, tmp_path / "p", progress=False)
    a = load_file(str(tmp_path / "p" / "last.safetensors"))
    torch.manual_seed(recipe.seed)
    init = create_model("hiding-color", **TINY).state_dict()
    assert all(torch.equal(a[f"model.{k}"], v) for k, v in init.items())   # E/D untouched
    assert a["sim.out.weight"].abs().sum() > 0
    log = [json.loads(line) for line in (tmp_path / "p" / "log.jsonl").read_text().splitlines()]
    assert set(log[0]["losses"]) == {"sim"}


def test_simulator_starts_from_a_run_or_the_zoo_once(tmp_path, shared_data):
    """``sim_init``: a Strategy I run goes on from another run's simulator or
    the zoo's; a resume keeps its own checkpoint's simulator."""
    from safetensors.torch import load_file

    from carkit.training.engine import train
    from carkit.training.recipe import RecipeError
    from carkit.zoo.registry import load_pretrained

    with pytest.raises(RecipeError, match="sim_init"):
        ht.ResidualHidingTask(strategy="II", sim_init="zoo:hiding-sim-heif-q39-long")
    kwargs = {"simulator": "autoencoder", "sim_features": 4, "sim_blocks": 2}
    train(_tiny_recipe(shared_data, "I", 3, **kwargs), tmp_path / "a", progress=False)
    a = {k[4:]: v for k, v in load_file(str(tmp_path / "a" / "last.safetensors")).items() if k.startswith("sim.")}
    task = ht.ResidualHidingTask(strategy="I", sim_init=str(tmp_path / "a"), **kwargs)
    model = create_model("hiding-color", **TINY)
    recipe = _tiny_recipe(shared_data, "I", 3, **kwargs)
    extras = task.extras(model, recipe)
    task.prepare(model, extras, recipe)
    assert all(torch.equal(extras["sim"].state_dict()[k], v) for k, v in a.items())
    with torch.no_grad():                       # as a checkpoint loaded before the engine's second prepare
        extras["sim"].out.weight.add_(1.0)
    changed = extras["sim"].out.weight.clone()
    task.prepare(model, extras, recipe)
    assert torch.equal(extras["sim"].out.weight, changed)

    zoo = load_pretrained("hiding-sim-heif-q39-long")          # the HEIF simulator (the repository's weights/bench)
    task = ht.ResidualHidingTask(strategy="I", codec="webp", sim_init="zoo:hiding-sim-heif-q39-long")
    extras = task.extras(model, recipe)
    task.prepare(model, extras, recipe)
    assert all(torch.equal(extras["sim"].state_dict()[k], v) for k, v in zoo.state_dict().items())
    with pytest.raises(RecipeError, match="sim init: .* does not exist"):
        ht.ResidualHidingTask(strategy="I", simulator="autoencoder",
                              sim_init=str(tmp_path / "gone")).extras(model, recipe)


def test_simulator_ships_to_the_zoo_as_its_own_model(tmp_path, shared_data, monkeypatch, capsys):
    """`carkit zoo export --part sim`: the zoo holds Strategy I's simulation
    network as a registered ``hiding-sim-*`` model; a run without one says so."""
    from safetensors.torch import load_file

    import carkit.zoo.registry as zoo
    from carkit.cli import main
    from carkit.training.engine import train

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    recipe = _tiny_recipe(shared_data, "I", 2, simulator="autoencoder", sim_features=4, sim_blocks=2,
                          codec="webp")
    train(recipe, tmp_path / "s1", progress=False)
    assert main(["zoo", "export", str(tmp_path / "s1"), "tiny-sim", "--part", "sim"]) == 0
    record = zoo.weights_record("tiny-sim")
    assert record.model == "hiding-sim-color" and record.model_kwargs == {"features": 4, "blocks": 2}
    assert record.training["weights"] == "raw" and record.training["steps"] == 2
    sim = zoo.load_pretrained("tiny-sim")
    assert isinstance(sim, CodecSimulator)
    saved = {k[4:]: v for k, v in load_file(str(tmp_path / "s1" / "last.safetensors")).items() if k.startswith("sim.")}
    assert saved and all(torch.allclose(v, saved[k].float(), rtol=1e-3, atol=1e-4) for k, v in sim.state_dict().items())

    train(_tiny_recipe(shared_data, "II", 1), tmp_path / "s2", progress=False)
    capsys.readouterr()
    assert main(["zoo", "export", str(tmp_path / "s2"), "no-sim", "--part", "sim"]) != 0
    err = capsys.readouterr().err.strip()
    assert "no exportable part 'sim'" in err and "\n" not in err and not (tmp_path / "zoo" / "no-sim.json").exists()


def test_recipes_name_the_papers_settings():
    from pathlib import Path

    from carkit.training.engine import get_task
    from carkit.training.recipe import load_recipe

    root = Path(__file__).resolve().parents[2] / "recipes" / "hiding"
    for strategy in ("II", "I"):
        recipe = load_recipe(root / f"hiding-jpeg-q50-s{len(strategy)}.toml")
        task = get_task(recipe.task, **recipe.task_kwargs)
        assert (task.strategy, task.codec_name, task.quality, task.rec_weight) == (strategy, "jpeg", 50, 5.0)
        assert (recipe.lr, recipe.schedule, recipe.weight_decay) == (1e-4, "constant", 0.0)
        assert recipe.model == "hiding-color" and recipe.val_qualities == [50] and recipe.bf16
        assert (recipe.patch_size, recipe.batch_size) == (64, 8)


# ---------------------------------------------------------------- the product: encode / decode

def add_tiny_hiding(directory, name, gray=False, quality=50, seed=0, codec="jpeg"):
    """An untrained-but-visible tiny E/D pair in the zoo in ``directory``."""
    import carkit.zoo.registry as zoo
    from safetensors.torch import save_file

    from carkit.zoo.registry import WeightsRecord, save_record, sha256_of

    directory.mkdir(parents=True, exist_ok=True)
    old, zoo.WEIGHTS_DIR = zoo.WEIGHTS_DIR, directory
    try:
        torch.manual_seed(seed)
        model = create_model("hiding-gray" if gray else "hiding-color", **TINY)
        with torch.no_grad():
            model.encoder.tail.weight.normal_(0, 0.02)
            model.decoder.tail.weight.normal_(0, 0.02)
        path = directory / f"{name}.safetensors"
        save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
        save_record(WeightsRecord.new(name=name, model="hiding-gray" if gray else "hiding-color", model_kwargs=TINY,
                                  gray=gray, qualities=[quality, quality], sha256=sha256_of(path), description="test",
                                  training={"recipe": {"task_kwargs": {"codec": codec, "quality": quality}}},
                                  codec=codec))
    finally:
        zoo.WEIGHTS_DIR = old


@pytest.fixture
def hiding_zoo(tmp_path, monkeypatch):
    import carkit.zoo.registry as zoo

    directory = tmp_path / "zoo"
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", directory)
    add_tiny_hiding(directory, "tiny-hiding-color-q50", gray=False, quality=50)
    add_tiny_hiding(directory, "tiny-hiding-color-q20", gray=False, quality=20, seed=1)
    add_tiny_hiding(directory, "tiny-hiding-gray-q50", gray=True, quality=50, seed=2)
    return directory


def _strip_comment(data: bytes) -> bytes:
    i = data.index(b"\xff\xfe")
    return data[:i] + data[i + 2 + int.from_bytes(data[i + 2:i + 4], "big"):]


def test_encode_writes_a_standard_marked_jpeg_and_decode_applies_d(hiding_zoo, tmp_path, capsys):
    from carkit.cli import main
    from carkit.codecs.hiding.codec import read_marker
    from carkit.nn.precision import resolve_precision, run_at
    from carkit.zoo.registry import load_pretrained

    for name, img in (("c", _image(37, 50)), ("g", _image(37, 50, color=False))):
        src, out, rec = tmp_path / f"{name}.png", tmp_path / f"{name}.jpg", tmp_path / f"{name}-rec.png"
        Image.fromarray(img).save(src)
        before = src.read_bytes()
        assert main(["encode", "--method", "hiding", "--codec", "jpeg", "-q", "50", str(src), str(out)]) == 0
        data = out.read_bytes()
        with Image.open(out) as im:                                          # any reader opens it
            assert im.format == "JPEG" and im.size == (50, 37) and im.mode == ("L" if name == "g" else "RGB")
            shown = np.array(im)
        marker = read_marker(data)
        model = "tiny-hiding-gray-q50" if name == "g" else "tiny-hiding-color-q50"
        assert marker == {"model": model, "sha256": marker["sha256"], "codec": "jpeg", "quality": 50}
        net = load_pretrained(model)
        # the file is exactly JPEG(IH_enc) plus the COM segment, IH_enc = E(IH, IH - JPEG(IH)), E and D at
        # the precision "auto" picks on this CPU
        precision = resolve_precision("auto")
        with torch.no_grad():
            ih = to_tensor(img)
            enc = to_uint8(run_at(precision, net.hide, ih, ih - to_tensor(JpegCodec().roundtrip(img, 50).decoded)))
        assert not np.array_equal(enc, img)
        assert _strip_comment(data) == JpegCodec().encode(enc, 50)
        assert np.array_equal(shown, JpegCodec().decode(_strip_comment(data)))
        assert main(["decode", str(out), "-o", str(rec)]) == 0
        with torch.no_grad():
            want = to_uint8(run_at(precision, net.reconstruct, to_tensor(shown)))
        assert np.array_equal(np.asarray(Image.open(rec)), want)
        assert not np.array_equal(want, shown)                               # D did something
        assert src.read_bytes() == before
    assert "bpp (hiding, quality 50)" in capsys.readouterr().out


def _default_model(img, quality):
    from carkit.codecs.hiding.codec import HidingCodec, read_marker

    return read_marker(HidingCodec().encode(img, quality))["model"]


def test_codec_registry_round_trip_and_availability(hiding_zoo, tmp_path, monkeypatch):
    import carkit.zoo.registry as zoo
    from carkit.codecs import available_codecs, canonical_name, codec_info

    assert canonical_name("residual-hiding") == "hiding" and "hiding" in available_codecs()
    codec = get_codec("hiding", model="tiny-hiding-color-q20")
    img = _image(24, 40)
    rt = codec.roundtrip(img, 30)
    assert rt.decoded.shape == img.shape and b"tiny-hiding-color-q20" in rt.data
    settings = codec.settings()
    assert (settings["codec"], settings["base_codec"], settings["subsampling"]) == ("hiding", "jpeg", "4:2:0")
    assert "torch" in settings["library"] and "jpeg" in settings["library"]
    assert np.array_equal(get_codec("hiding").decode(rt.data), rt.decoded)
    assert _default_model(img, 22) == "tiny-hiding-color-q20"           # nearest trained quality
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "empty")
    assert "hiding" not in available_codecs()
    assert {r["name"]: r["reason"] for r in codec_info()}["hiding"] == "no residual-hiding weights in the zoo"


def test_gray_image_goes_through_the_color_pair_when_no_gray_pair_exists(tmp_path, monkeypatch):
    import carkit.zoo.registry as zoo
    from carkit.codecs.hiding.codec import HidingCodec, read_marker

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    add_tiny_hiding(tmp_path / "zoo", "tiny-hiding-color-q50", gray=False, quality=50)
    img = _image(33, 45, color=False)
    data = HidingCodec().encode(img, 50)
    assert read_marker(data) == {"model": "tiny-hiding-color-q50", "sha256": read_marker(data)["sha256"],
                                 "codec": "jpeg", "quality": 50, "gray": True}
    with Image.open(__import__("io").BytesIO(data)) as im:
        assert im.mode == "RGB"                                              # coded as three equal planes
    net = zoo.load_pretrained("tiny-hiding-color-q50")
    with torch.no_grad():
        color = to_uint8(net.reconstruct(to_tensor(JpegCodec().decode(_strip_comment(data)))))
    out = HidingCodec(precision="fp32").decode(data)   # compared with fp32 D exactly
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, np.round(color.astype(np.float32).mean(axis=2)).astype(np.uint8))


@pytest.mark.parametrize("codec", ["jpegli", "jpeg2000", "heif", "factorized"])
def test_other_codecs_carry_the_marker_and_decode_with_d(codec, tmp_path, monkeypatch):
    """jpegli (a JPEG file: its COM segment), JPEG 2000 (a COM segment in the
    codestream), HEIF (a uuid box) and the
    learned factorized-prior codec (a chunk after the .ckfp container): the
    file is the codec's own file plus the marker, the codec's reader opens it,
    and decode finds the marker by content and applies D."""
    import carkit.zoo.registry as zoo
    from carkit.codecs import available_codecs
    from carkit.codecs.markers import CARRIERS
    from carkit.codecs.hiding.codec import HidingCodec, read_marker
    from carkit.zoo.registry import load_pretrained

    from .test_learned_codec import _add_tiny

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    if codec == "factorized":
        (tmp_path / "zoo").mkdir()
        _add_tiny(tmp_path / "zoo")                                        # the learned codec's own weights
    if codec not in available_codecs():
        pytest.skip(f"{codec} is not available here")
    add_tiny_hiding(tmp_path / "zoo", f"tiny-hiding-{codec}", quality=40, codec=codec)
    add_tiny_hiding(tmp_path / "zoo", "tiny-hiding-jpeg", quality=40, seed=3)
    img, base = _image(37, 50), get_codec(codec)
    data = HidingCodec(codec=codec).encode(img, 40)
    marker = read_marker(data)
    assert (marker["model"], marker["codec"], marker["quality"]) == (f"tiny-hiding-{codec}", codec, 40)
    shown = base.decode(data)                                              # a standard file
    assert shown.shape == img.shape
    with torch.no_grad():
        want = to_uint8(load_pretrained(f"tiny-hiding-{codec}").reconstruct(to_tensor(shown)))
    assert np.array_equal(HidingCodec(precision="fp32").decode(data), want)   # any HidingCodec decodes it
    # a marker naming another codec than the file's format is damage, not a silent wrong decode
    forged = CARRIERS[codec].write(base.encode(img, 40), b'carkit-hiding {"model":"tiny-hiding-jpeg",'
                                   b'"sha256":"0","codec":"jpeg","quality":40}')
    with pytest.raises(CodecError, match="damaged carkit-hiding marker"):
        read_marker(forged)
    with pytest.raises(CodecError, match="trained for jpeg"):
        HidingCodec(codec=codec, model="tiny-hiding-jpeg").encode(img, 40)


def test_plain_jpeg_falls_back_to_the_blind_restorer_and_says_so(hiding_zoo, tmp_path, capsys):
    from carkit.api import decode_file
    from carkit.cli import main
    from carkit.codecs.hiding.codec import HidingCodec

    from ..helpers import make_tiny_zoo

    make_tiny_zoo(hiding_zoo)                                                # tiny-gray restores QF 10..40
    img = _image(32, 40, color=False)
    plain = tmp_path / "plain.jpg"
    Image.fromarray(img).save(plain, quality=30)
    assert main(["restore", str(plain), "-o", str(tmp_path / "restored.png")]) == 0
    capsys.readouterr()
    assert main(["decode", "--method", "hiding", str(plain), "-o", str(tmp_path / "d.png")]) == 0
    err = capsys.readouterr().err
    assert "no carkit-hiding marker" in err and "tiny-gray" in err and err.count("\n") == 1
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d.png")), np.asarray(Image.open(tmp_path / "restored.png")))
    decoded = decode_file(plain.read_bytes(), method="hiding")
    assert np.array_equal(decoded.pixels, np.asarray(Image.open(tmp_path / "restored.png")))
    assert decoded.kind == "jpeg-restored" and "tiny-gray" in decoded.note
    # the codec itself decodes marked files only (restoration sits above the codecs)
    with pytest.raises(CodecError, match="no carkit-hiding marker"):
        HidingCodec().decode(plain.read_bytes())
    # without --method hiding a plain JPEG still decodes to its own pixels
    assert main(["decode", str(plain), "-o", str(tmp_path / "p.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png")), np.asarray(Image.open(plain)))


def test_tiled_networks_equal_untiled():
    from carkit.codecs.hiding.codec import hide, reconstruct

    torch.manual_seed(0)
    net = ResidualHiding(3, [4, 8, 16], [1, 2, 2]).eval()
    with torch.no_grad():
        for part in (net.encoder, net.decoder):
            part.tail.weight.normal_(0, 0.1)
        ih, ir = torch.rand(1, 3, 230, 190), torch.rand(1, 3, 230, 190) - 0.5
        assert torch.allclose(hide(net, ih, ir, tile=128, overlap=96), net.hide(ih, ir), atol=1e-6)
        assert not torch.allclose(hide(net, ih, ir, tile=64, overlap=16), net.hide(ih, ir), atol=1e-6)
        assert torch.allclose(reconstruct(net, ih, tile=128, overlap=96), net.reconstruct(ih), atol=1e-6)


def test_strength_scales_what_e_changes_and_decode_needs_no_setting(hiding_zoo, tmp_path, monkeypatch, capsys):
    """``strength`` codes IH + s * (E(IH, IR) - IH): 0 is the codec's own file
    of the original (plus the marker), 1 the paper's E; a pair's reviewed
    value is its default; D decodes any of them without being told."""
    import carkit.codecs.hiding.codec as hc
    from carkit.cli import main
    from carkit.codecs.hiding.codec import HidingCodec

    img = _image(40, 48)
    files = {s: HidingCodec(codec="jpeg", model="tiny-hiding-color-q50", precision="fp32", strength=s).encode(img, 50)
             for s in (0.0, 0.5, 1.0)}
    assert _strip_comment(files[0.0]) == JpegCodec().encode(img, 50)
    shown = {s: JpegCodec().decode(d).astype(float) for s, d in files.items()}
    far = np.abs(shown[1.0] - shown[0.0]).mean()
    assert 0 < np.abs(shown[0.5] - shown[0.0]).mean() < far
    assert _strip_comment(HidingCodec(codec="jpeg", precision="fp32").encode(img, 50)) == _strip_comment(files[1.0])
    monkeypatch.setitem(hc.HIDING_STRENGTH, "tiny-hiding-color-q50", 0.5)     # a reviewed value is the default
    codec = HidingCodec(codec="jpeg", precision="fp32")
    assert codec.encode(img, 50) == files[0.5] and codec.settings()["strength"] is None
    assert HidingCodec(codec="jpeg", model="tiny-hiding-color-q50").settings()["strength"] == 0.5
    for data in files.values():
        assert HidingCodec(precision="fp32").decode(data).shape == img.shape
    with pytest.raises(CodecError, match="0..1"):
        HidingCodec(strength=1.5)
    src = tmp_path / "a.png"
    Image.fromarray(img).save(src)
    assert main(["encode", "--method", "hiding", "--codec", "jpeg", "--strength", "0", "-q", "50", str(src),
                 str(tmp_path / "a.jpg")]) == 0
    assert _strip_comment((tmp_path / "a.jpg").read_bytes()) == JpegCodec().encode(img, 50)
    assert main(["encode", "--method", "jpeg", "--strength", "0.5", "-q", "50", str(src), str(tmp_path / "b.jpg")]) == 2
    assert "--strength applies to --method hiding" in capsys.readouterr().err


def _refine_objective(net, x, pixels, codec, quality) -> float:
    """The refinement's L, written out untiled: D's squared error on the real
    decode, plus the plain decode's and the JPEG rate estimate, weighted as
    ``codecs.hiding.refine`` weights them."""
    from carkit.codecs.hiding import refine as rf
    from carkit.jpeg.proxy import DiffJPEG, jpeg_rate_proxy

    y = to_tensor(pixels)
    decoded = to_tensor(codec.roundtrip(pixels, quality).decoded)
    with torch.no_grad():
        rec = ((net.reconstruct(decoded) - x) ** 2).mean() + rf.PLAIN * ((decoded - x) ** 2).mean()
        return float(rec + rf.RATE * jpeg_rate_proxy(y, quality, DiffJPEG()).sum())


@pytest.mark.parametrize("gray,tile", [(False, 512), (False, 48), (True, 512)])
def test_refinement_never_raises_its_objective(hiding_zoo, gray, tile):
    """Encoder-side refinement keeps the best of its steps, the unrefined
    image among them: its L is never above the start's, and here (a pair with
    a visible D) below it; 0 steps is the unrefined image; one progress call
    a step; tiles smaller than the image work alike."""
    from carkit.codecs.hiding.codec import load_weights
    from carkit.codecs.hiding.refine import refine_coded_image

    net, _ = load_weights("tiny-hiding-gray-q50" if gray else "tiny-hiding-color-q50")
    img, codec = _image(64, 80, color=not gray, seed=3), JpegCodec()
    x = to_tensor(img)
    with torch.no_grad():
        coded = net.hide(x, x - to_tensor(codec.roundtrip(img, 50).decoded))
    start = to_uint8(coded)
    assert np.array_equal(refine_coded_image(net, x, coded, codec, 50, 0), start)
    calls = []
    out = refine_coded_image(net, x, coded, codec, 50, 6, tile=tile, overlap=32, progress=calls.append)
    assert out.shape == img.shape and out.dtype == np.uint8 and calls == [1] * 6
    assert _refine_objective(net, x, out, codec, 50) < _refine_objective(net, x, start, codec, 50)


def test_refined_files_decode_as_usual_and_refine_is_checked(hiding_zoo, tmp_path, capsys):
    """A refined file is a marked JPEG like any other (the same marker, D
    decodes it without a setting); refine needs a JPEG carrier and a step
    count of 0 or more, and the CLI's --refine is for --method hiding."""
    from carkit.cli import main
    from carkit.codecs.hiding.codec import HidingCodec, read_marker

    img = _image(40, 48)
    plain = HidingCodec(codec="jpeg", model="tiny-hiding-color-q50", precision="fp32").encode(img, 50)
    codec = HidingCodec(codec="jpeg", model="tiny-hiding-color-q50", precision="fp32", refine=3)
    data = codec.encode(img, 50)
    assert data != plain and read_marker(data) == read_marker(plain) and codec.settings()["refine"] == 3
    assert HidingCodec(precision="fp32").decode(data).shape == img.shape
    for bad in (-1, 1.5, True):
        with pytest.raises(CodecError, match="refine is a number of steps"):
            HidingCodec(codec="jpeg", refine=bad)
    with pytest.raises(CodecError, match="refine needs a JPEG carrier"):
        HidingCodec(codec="jpeg2000", refine=2)
    src = tmp_path / "a.png"
    Image.fromarray(img).save(src)
    assert main(["encode", "--method", "hiding", "--codec", "jpeg", "--refine", "2", "-q", "50", str(src),
                 str(tmp_path / "a.jpg")]) == 0
    assert read_marker((tmp_path / "a.jpg").read_bytes())["model"] == "tiny-hiding-color-q50"
    assert main(["encode", "--method", "jpeg", "--refine", "2", "-q", "50", str(src), str(tmp_path / "b.jpg")]) == 2
    assert "--refine applies to --method hiding" in capsys.readouterr().err
    assert not (tmp_path / "b.jpg").exists()


def test_bf16_and_fp32_files_decode_alike_either_way(hiding_zoo):
    """E and D in bf16 (the default where the CPU computes it natively) give
    files and reconstructions within bf16 rounding of fp32's, and a file
    written at one precision decodes at the other."""
    from carkit.codecs.hiding.codec import HidingCodec

    img = _image(64, 80)
    fp32, bf16 = HidingCodec(precision="fp32"), HidingCodec(precision="bf16")
    assert fp32.settings()["precision"] == "fp32" and bf16.settings()["precision"] == "bf16"
    files = {p: c.encode(img, 50) for p, c in (("fp32", fp32), ("bf16", bf16))}
    shown = {p: JpegCodec().decode(d) for p, d in files.items()}
    assert score(shown["bf16"], shown["fp32"])["psnr_rgb"] > 40      # E's rounding, under JPEG's quantization
    for data in files.values():
        a, b = fp32.decode(data), bf16.decode(data)
        assert a.shape == img.shape and score(a, b)["psnr_rgb"] > 40
    with pytest.raises(Exception, match="precision"):
        HidingCodec(precision="fp16")


def test_bad_input_gives_one_line_errors_and_never_overwrites(hiding_zoo, tmp_path, monkeypatch, capsys):
    import carkit.zoo.registry as zoo
    from carkit.cli import main

    src = tmp_path / "in.png"
    Image.fromarray(_image(24, 24)).save(src)
    gray = tmp_path / "g.png"
    Image.fromarray(_image(24, 24, color=False)).save(gray)
    good = tmp_path / "good.jpg"
    assert main(["encode", "--method", "hiding", "-q", "50", str(src), str(good)]) == 0
    data = good.read_bytes()
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(data.replace(b'"codec":"jpeg"', b'"codec":"nope"'))
    before = src.read_bytes()
    capsys.readouterr()
    # exit 2: the request is wrong, nothing was tried; exit 1: the input failed
    cases = [
        (["encode", "--method", "hiding", "-q", "0", str(src), str(tmp_path / "x1.jpg")], "quality", 2),
        (["encode", "--method", "hiding", "--codec", "webp", "-q", "50", str(src), str(tmp_path / "x2.jpg")],
         "cannot carry the hiding marker", 2),
        (["encode", "--method", "jpeg", "--codec", "jpeg", "-q", "50", str(src), str(tmp_path / "x3.jpg")],
         "--codec applies to --method hiding", 2),
        (["encode", "--method", "hiding", "--model", "tiny-hiding-color-q50", "-q", "50", str(gray),
          str(tmp_path / "x4.jpg")], "codes color images", 1),
        (["encode", "--method", "hiding", "-q", "50", str(tmp_path / "missing.png"), str(tmp_path / "x5.jpg")], "", 1),
        (["encode", "--method", "hiding", "-q", "50", str(src), str(src), "--force"], "would overwrite the input", 2),
        (["decode", str(good), "-o", str(good), "--force"], "would overwrite the input", 2),
        (["decode", str(damaged), "-o", str(tmp_path / "x6.png")], "damaged carkit-hiding marker", 1),
        (["decode", str(good), "-o", str(tmp_path / "x7.png"), "--restore", "tiny-gray"], "drop --restore", 2),
        (["decode", "--method", "hiding", str(src), "-o", str(tmp_path / "x8.png")], "not a JPEG", 1),
    ]
    for argv, text, expected in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == expected, (argv, err)
        assert text in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert src.read_bytes() == before and good.read_bytes() == data
    # weights that changed since encoding
    add_tiny_hiding(hiding_zoo, "tiny-hiding-color-q50", seed=7)
    assert main(["decode", str(good), "-o", str(tmp_path / "x9.png")]) == 1
    assert "other tiny-hiding-color-q50 weights" in capsys.readouterr().err
    # no weights at all
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "empty")
    assert main(["encode", "--method", "hiding", "-q", "50", str(src), str(tmp_path / "x10.jpg")]) == 1
    assert "no residual-hiding weights" in capsys.readouterr().err
    assert not any((tmp_path / f"x{i}.{e}").exists() for i in range(11) for e in ("jpg", "png"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
