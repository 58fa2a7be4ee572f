"""The factorized-prior learned codec (Ballé et al. 2018): GDN, the entropy
bottleneck, range coding with constriction, the .ckfp container, the
'factorized' codec and its training task. Tiny, seeded, untrained models."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from carkit.errors import CodecError
from carkit.nn.entropy_bottleneck import MAX_SYMBOL, EntropyBottleneck
from carkit.models.factorized_prior import FactorizedPrior, latent_size
from carkit.nn.gdn import GDN
from carkit.models.registry import create_model
from carkit.codecs.factorized import entropy_coding as ec
from carkit.codecs.factorized import codec as fc

TINY = {"n": 8, "m": 12}


pytestmark = pytest.mark.usefixtures("one_thread")


def _image(h=37, w=29, color=True, seed=0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 128 + 60 * np.sin(x / 5.0) * np.cos(y / 4.0) + np.random.default_rng(seed).normal(0, 6, (h, w))
    img = np.stack([base, base * 0.7 + 40, 255 - base], -1) if color else base
    return np.clip(img, 0, 255).astype(np.uint8)


def _tiny_net(seed=0) -> FactorizedPrior:
    torch.manual_seed(seed)
    return create_model("factorized-small", **TINY).eval()


def _add_tiny(directory, name="tiny-fp", qualities=(1, 100), seed=0) -> None:
    """An untrained tiny factorized prior as a zoo entry (float16, as `zoo export` writes)."""
    import carkit.zoo.registry as zoo

    net = _tiny_net(seed)
    path = directory / f"{name}.safetensors"
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(path))
    zoo.save_record(zoo.WeightsRecord.new(name=name, model="factorized-small", model_kwargs=TINY, gray=False,
                                      qualities=list(qualities), sha256=zoo.sha256_of(path), description="test"))


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    import carkit.zoo.registry as zoo

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    _add_tiny(tmp_path)
    return tmp_path


# -- the model ---------------------------------------------------------------
def test_transforms_are_the_papers_and_parameter_counts_as_documented():
    net = create_model("factorized-prior")
    convs = [m for m in net.g_a if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in net.g_s if isinstance(m, torch.nn.ConvTranspose2d)]
    for layers in (convs, deconvs):
        assert [c.kernel_size for c in layers] == [(5, 5)] * 4 and [c.stride for c in layers] == [(2, 2)] * 4
    assert [c.out_channels for c in convs] == [128, 128, 128, 192]
    assert [c.out_channels for c in deconvs] == [128, 128, 128, 3]
    assert [g.inverse for g in net.g_a if isinstance(g, GDN)] == [False] * 3
    assert [g.inverse for g in net.g_s if isinstance(g, GDN)] == [True] * 3
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(net), count(net.entropy_bottleneck)) == (2_994_691, 8_256)
    small = create_model("factorized-small")
    assert (count(small), count(small.entropy_bottleneck)) == (755_971, 4_128)


def test_gdn_is_the_formula_and_its_parameters_stay_non_negative():
    torch.manual_seed(0)
    gdn = GDN(4)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand(4, 4))
    x = torch.randn(2, 4, 5, 3)
    beta, gamma = gdn.beta_param(gdn.beta), gdn.gamma_param(gdn.gamma)
    expect = x / torch.sqrt(beta.view(1, 4, 1, 1) + torch.einsum("ij,njhw->nihw", gamma, x * x))
    assert torch.allclose(gdn(x), expect, atol=1e-6)
    inverse = GDN(4, inverse=True)
    inverse.load_state_dict(gdn.state_dict())
    assert torch.allclose(inverse(x), x * x / expect, atol=1e-5)
    with torch.no_grad():  # stored values below the floor still read back at the floor
        gdn.beta.fill_(-3.0)
        gdn.gamma.fill_(-3.0)
    assert (gdn.beta_param(gdn.beta) >= 1e-6 - 1e-12).all() and (gdn.gamma_param(gdn.gamma) >= 0).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gdn(x.bfloat16()).dtype == torch.float32


def test_density_medians_and_tables_are_consistent():
    torch.manual_seed(0)
    eb = EntropyBottleneck(5)
    m = eb.medians()
    cdf = torch.sigmoid(eb.logits_cumulative(m.double()[:, None, None]))
    assert torch.allclose(cdf.flatten(), torch.full((5,), 0.5, dtype=torch.float64), atol=1e-6)
    t = eb.pmf_table()
    assert np.allclose(t["pmf"].sum(1) + t["tail"], 1.0, atol=1e-9)
    assert (t["lo"] <= 0).all() and (t["lo"] + t["length"] - 1 >= 0).all()
    assert (t["tail"] < 1e-8).all()


def test_training_adds_noise_eval_rounds_around_the_medians():
    torch.manual_seed(0)
    eb = EntropyBottleneck(3)
    y = 5 * torch.randn(2, 3, 4, 4)
    noisy, lik = eb.train()(y)
    assert (noisy - y).abs().max() <= 0.5 and not torch.equal(noisy, torch.round(noisy))
    assert lik.shape == y.shape and (lik > 0).all() and (lik <= 1).all()
    rounded, _ = eb.eval()(y)
    m = eb.medians().view(1, 3, 1, 1)
    assert torch.equal(rounded, torch.round(y - m) + m)
    assert torch.equal(eb.symbols(y), torch.round(y - m).to(torch.int32))


# -- entropy coding ----------------------------------------------------------
def test_cdf_tables_are_deterministic_and_normalised():
    net = _tiny_net()
    a = ec.build_tables(net.entropy_bottleneck)
    torch.set_num_threads(2)
    b = ec.build_tables(_tiny_net().entropy_bottleneck)
    torch.set_num_threads(1)
    assert a.digest == b.digest and np.array_equal(a.freqs, b.freqs) and np.array_equal(a.lo, b.lo)
    assert np.array_equal(a.medians, b.medians)
    for c in range(a.channels):
        n = a.length[c]
        assert a.freqs[c, :n + 1].sum() == 1 << ec.PRECISION and (a.freqs[c, :n + 1] >= 1).all()
        assert (a.freqs[c, n + 1:] == 0).all()
        cdf = a.cdf(c)
        assert cdf[0] == 0 and cdf[-1] == 1 << ec.PRECISION and (np.diff(cdf) > 0).all()
    other = ec.build_tables(_tiny_net(seed=1).entropy_bottleneck)
    assert other.digest != a.digest


def test_entropy_coded_round_trip_recovers_the_symbols_exactly_escapes_included():
    tables = ec.build_tables(_tiny_net().entropy_bottleneck)
    rng = np.random.default_rng(0)
    symbols = rng.integers(-30, 30, size=(tables.channels, 57))
    # far outside every support: escapes of many Exp-Golomb lengths, both signs, the clamp edges
    symbols[0, :6] = [5000, -5000, MAX_SYMBOL, -MAX_SYMBOL, tables.lo[0] - 1, tables.lo[0] + tables.length[0]]
    symbols[3, 10] = 123_456
    data = ec.encode_symbols(symbols, tables)
    assert np.array_equal(ec.decode_symbols(data, tables, 57), symbols)
    with pytest.raises(CodecError, match="32-bit words"):
        ec.decode_symbols(data[:-1], tables, 57)


def test_real_bits_are_the_tables_information_content():
    tables = ec.build_tables(_tiny_net().entropy_bottleneck)
    rng = np.random.default_rng(1)
    n = 4000
    symbols, ideal = [], 0.0
    for c in range(tables.channels):
        f = tables.freqs[c, :tables.length[c]].astype(np.float64)
        idx = rng.choice(len(f), size=n, p=f / f.sum())
        ideal += -np.log2(f[idx] / (1 << ec.PRECISION)).sum()
        symbols.append(idx + tables.lo[c])
    bits = 8 * len(ec.encode_symbols(np.stack(symbols), tables))
    assert ideal <= bits <= 1.001 * ideal + 64


def test_rate_falls_with_a_larger_quantization_step():
    """Latents divided by a larger step before rounding cost fewer bytes."""
    net = _tiny_net()
    tables = ec.build_tables(net.entropy_bottleneck)
    z = torch.randn(1, 12, 8, 8, generator=torch.Generator().manual_seed(0))
    m = torch.from_numpy(tables.medians).view(1, -1, 1, 1)
    sizes = []
    for step in (1, 2, 4, 8, 16):
        s = net.entropy_bottleneck.symbols(m + 40 * z / step, torch.from_numpy(tables.medians))
        sizes.append(len(ec.encode_symbols(s[0].reshape(12, -1).numpy(), tables)))
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes


# -- the codec ---------------------------------------------------------------
@pytest.mark.parametrize("h,w", [(37, 29), (16, 16), (1, 1), (50, 17)])
def test_decoded_image_is_the_models_rounded_latent_reconstruction(tiny_zoo, h, w):
    from carkit.codecs import get_codec
    from carkit.io import to_tensor, to_uint8
    from carkit.zoo.registry import load_pretrained

    codec = get_codec("factorized")
    image = _image(h, w)
    rt = codec.roundtrip(image, 50)
    net = load_pretrained("tiny-fp")
    with torch.no_grad():
        own, lik = net(to_tensor(image), return_likelihoods=True)
    assert np.array_equal(rt.decoded, to_uint8(own))
    assert rt.decoded.shape == image.shape and rt.decoded.dtype == np.uint8
    # the rate is the real bytes; they hold the model's estimated bits plus a small overhead
    assert rt.bpp == 8 * len(rt.data) / (h * w)
    estimated = float(-torch.log2(lik).sum())
    header = 4 + 1 + 4 + 4 + 1 + 1 + len("tiny-fp") + 8 + 4 + 4 + 4
    assert 8 * header + 0.98 * estimated <= 8 * len(rt.data) <= 8 * header + 1.02 * estimated + 64


def test_differentiable_form_is_the_decoder_in_value_and_passes_gradients(tiny_zoo):
    """Residual hiding's deep-codec proxy: the frozen codec with straight-through
    rounding gives what decode gives (before 8-bit rounding), and gradients
    reach the input; gray goes through three equal planes; JPEG has none."""
    from carkit.codecs import get_codec
    from carkit.io import to_tensor, to_uint8

    codec = get_codec("factorized")
    image = _image(37, 29)
    code = codec.differentiable(50)
    x = to_tensor(image).requires_grad_(True)
    out = code(x)
    assert np.array_equal(to_uint8(out.detach()), codec.roundtrip(image, 50).decoded)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in codec.load("tiny-fp")[0].parameters())   # the codec stays frozen
    gray = _image(37, 29, color=False)
    assert np.array_equal(to_uint8(code(to_tensor(gray)).detach()), codec.roundtrip(gray, 50).decoded)
    with pytest.raises(CodecError, match="not differentiable"):
        get_codec("jpeg").differentiable(50)


def test_decoding_is_repeatable_and_needs_no_encoder_state(tiny_zoo):
    from carkit.codecs import get_codec

    image = _image(40, 33)
    data = get_codec("factorized").encode(image, 30)
    first = get_codec("factorized").decode(data)
    torch.set_num_threads(2)
    second = fc.FactorizedCodec().decode(data)
    torch.set_num_threads(1)
    assert np.array_equal(first, second)
    assert data == get_codec("factorized").encode(image, 30)


def test_gray_images_are_coded_as_rgb_and_decode_gray(tiny_zoo):
    from carkit.io import to_tensor, to_uint8
    from carkit.zoo.registry import load_pretrained

    codec = fc.FactorizedCodec()
    gray = _image(33, 21, color=False)
    data = codec.encode(gray, 50)
    assert fc.unpack(data)["planes"] == 1
    out = codec.decode(data)
    assert out.shape == gray.shape and out.dtype == np.uint8
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    with torch.no_grad():
        expect = to_uint8(load_pretrained("tiny-fp")(to_tensor(rgb)).mean(1, keepdim=True))
    assert np.array_equal(out, expect)
    assert codec.roundtrip(gray, 50).decoded.shape == gray.shape


def test_damaged_files_are_codec_errors(tiny_zoo):
    codec = fc.FactorizedCodec()
    data = codec.encode(_image(), 50)
    head = fc.unpack(data)
    bad = {
        "bad magic": b"XXXX" + data[4:],
        "truncated": data[:-7],
        "too short": data[:10],
        "empty": b"",
        "payload flip": data[:40] + bytes([data[40] ^ 0x55]) + data[41:],
        "a JPEG": b"\xff\xd8\xff\xe0" + b"\0" * 60,
    }
    for what, blob in bad.items():
        with pytest.raises(CodecError) as info:
            codec.decode(blob)
        assert "\n" not in str(info.value), what

    def repack(**changes) -> bytes:  # a well-formed file (valid CRC) with other fields
        f = {**head, **changes}
        return fc.pack(f["height"], f["width"], f["planes"], f["model"], f["sha256"], f["tables"], f["payload"])

    body = bytearray(data[:-4])
    body[4] = 9  # version
    with pytest.raises(CodecError, match="version 9"):
        codec.decode(bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "big"))
    with pytest.raises(CodecError, match="other tiny-fp weights"):
        codec.decode(repack(sha256="0" * 16))
    with pytest.raises(CodecError, match="CDF tables differ"):
        codec.decode(repack(tables=b"\0\0\0\0"))
    with pytest.raises(CodecError, match="no shipped weights"):
        codec.decode(repack(model="nope"))


def test_marker_chunks_ride_after_the_container_and_decoding_skips_them(tiny_zoo):
    """The .ckfp carrier of ``codecs.markers`` (what residual hiding writes
    into a learned-codec file): payloads round-trip, pixels stay the same,
    damaged chunks read as no marker and make the file a one-line error."""
    from carkit.codecs.markers import CARRIERS, find_payload

    codec = fc.FactorizedCodec()
    data = codec.encode(_image(), 50)
    carrier = CARRIERS["factorized"]
    assert carrier.read(data) == []
    payload = b"carkit-test {}" + bytes(range(256))
    marked = carrier.write(carrier.write(data, payload), b"second")
    assert marked.startswith(data) and carrier.read(marked) == [payload, b"second"]
    assert find_payload(marked, b"carkit-test") == ("factorized", payload)
    assert np.array_equal(codec.decode(marked), codec.decode(data))
    for damaged in (marked[:-1], marked[:-3] + bytes([marked[-3] ^ 1]) + marked[-2:], marked + b"x",
                    marked[:len(data)] + b"CKMX" + marked[len(data) + 4:]):
        assert carrier.read(damaged) == []
        with pytest.raises(CodecError, match="truncated or padded") as info:
            codec.decode(damaged)
        assert "\n" not in str(info.value)
    with pytest.raises(CodecError, match="well-formed"):
        carrier.write(data[:-2], b"x")


def test_quality_picks_the_rate_point_and_no_weights_is_one_line(tmp_path, monkeypatch):
    import carkit.zoo.registry as zoo
    from carkit.codecs import codec_info, get_codec

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    reason = {r["name"]: r["reason"] for r in codec_info()}["factorized"]
    assert reason == "no factorized-prior weights in the zoo"
    with pytest.raises(CodecError, match="no factorized-prior weights"):
        get_codec("factorized")
    _add_tiny(tmp_path, "fp-low", (1, 40), seed=0)
    _add_tiny(tmp_path, "fp-high", (61, 100), seed=1)
    assert [fc.choose_weights(q) for q in (1, 40, 45, 55, 61, 100)] == \
        ["fp-low", "fp-low", "fp-low", "fp-high", "fp-high", "fp-high"]
    codec = get_codec("factorized")
    assert fc.unpack(codec.encode(_image(), 90))["model"] == "fp-high"
    assert fc.unpack(codec.encode(_image(), 10))["model"] == "fp-low"
    forced = get_codec("factorized", model="fp-high")
    assert fc.unpack(forced.encode(_image(), 10))["model"] == "fp-high"
    assert codec.settings()["codec"] == "factorized" and "constriction" in codec.settings()["library"]


def test_latent_size_and_any_input_size():
    net = _tiny_net()
    for h, w in [(1, 1), (16, 16), (17, 33), (37, 29)]:
        y = net.analysis(torch.rand(1, 3, h, w))
        assert y.shape[-2:] == latent_size(h, w)
        assert net.synthesis(y, (h, w)).shape == (1, 3, h, w)
    with pytest.raises(ValueError, match="does not belong"):
        net.synthesis(y, (80, 29))


# -- training ----------------------------------------------------------------
def test_rate_distortion_loss_and_the_task_lowers_it():
    from carkit.training.engine import get_task
    from carkit.training.learned_codec_tasks import rate_distortion

    task = get_task("learned-codec", lmbda=0.01)
    torch.manual_seed(0)
    net = create_model("factorized-small", **TINY).train()
    x = torch.rand(2, 3, 32, 32)
    x_hat, lik = net(x, return_likelihoods=True)
    loss, bpp, mse = rate_distortion(x_hat, x, lik, 0.01)
    assert torch.isclose(bpp, -torch.log2(lik).sum() / (2 * 32 * 32))
    assert torch.isclose(loss, 0.01 * 255 ** 2 * mse + bpp)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = task.loss("main", net, {}, {"gt": x}, None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.8 * losses[0]


def test_training_task_runs_in_the_engine(tmp_path):
    from PIL import Image

    from carkit.training.engine import train
    from carkit.training.recipe import Recipe

    folder = tmp_path / "data" / "train" / "tiny"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(_image(48, 40, seed=i)).save(folder / f"{i}.png")
    recipe = Recipe(name="tiny-fp", model="factorized-small", model_kwargs=TINY, train_dirs=["train/tiny"],
                    data_root=str(tmp_path / "data"), gray=False, patch_size=32, batch_size=2, quality_range=[1, 100],
                    val_every=0, task="learned-codec", task_kwargs={"lmbda": 0.01}, iterations=3, lr=1e-4,
                    grad_clip=1.0, bf16=True, threads=1, log_every=1, checkpoint_every=2)
    summary = train(recipe, tmp_path / "run", resume=False, progress=False)
    assert summary["step"] == 3 and (tmp_path / "run" / "last.safetensors").exists()


def test_cli_encodes_and_decodes_ckfp_files(tiny_zoo, tmp_path, capsys):
    """`carkit encode --method factorized` writes a .ckfp file; `carkit decode`
    recognises it by its magic and gives the codec's own decode."""
    from PIL import Image

    from carkit.cli import main
    from carkit.codecs import get_codec

    img = _image()
    src, out, rec = tmp_path / "a.png", tmp_path / "a.ckfp", tmp_path / "a-rec.png"
    Image.fromarray(img).save(src)
    assert main(["encode", "--method", "factorized", "-q", "50", str(src), str(out)]) == 0
    assert main(["decode", str(out), "-o", str(rec)]) == 0
    assert np.array_equal(np.asarray(Image.open(rec)), get_codec("factorized").decode(out.read_bytes()))
    assert main(["decode", str(out), "-o", str(tmp_path / "b.png"), "--restore", "blockcnn-color"]) == 2
    assert "--restore applies to .bcnn files" in capsys.readouterr().err
