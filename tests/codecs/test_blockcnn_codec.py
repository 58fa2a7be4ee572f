"""BlockCNN codec (issue 3): integer-exact predictor, .bcnn container, CLI.

Every model here is a small untrained, seeded BlockCNN, so the tests never
depend on shipped weights.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from carkit.cli import main
from carkit.restoration.codec import RestoredCodec
from carkit.codecs import canonical_name, get_codec, list_codecs
from carkit.errors import CodecError
from carkit.metrics import psnr
from carkit.models.blockcnn import BlockCNN, mask_causal
from carkit.models import exact as exact_module
from carkit.models.exact import ExactPredictor, calibration_windows, torch_threads
from carkit.jpeg import intdct
from carkit.codecs.blockcnn import codec as bc
from carkit.codecs.blockcnn.container import pack_container
from carkit.codecs.blockcnn.codec import (BcnnFormatError, BlockCNNCodec, PredictorMismatchError,
                                             read_header)

TINY = {"in_channels": 1, "width": 8, "num_res_blocks": 1, "causal": True, "color_space": "rgb"}


def tiny_predictor(seed: int = 0) -> BlockCNN:
    """An untrained tiny causal predictor with non-trivial BN statistics (so
    folding is exercised) and a tail that outputs mid-grey plus a little."""
    torch.manual_seed(seed)
    net = BlockCNN(**TINY)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        net.tail.bias.fill_(0.5)
    return net.eval()


def synthetic(h: int, w: int, color: bool = True, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 5.0) + 40 * (x > w / 2)
    base += np.random.default_rng(seed).normal(0, 4, size=(h, w))
    if not color:
        return np.clip(base, 0, 255).astype(np.uint8)
    return np.clip(np.stack([base, base * 0.8 + 30, 255 - base], axis=-1), 0, 255).astype(np.uint8)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def net():
    return tiny_predictor(0)


@pytest.fixture(scope="module")
def codec(net):
    return BlockCNNCodec(predictor=net)


@pytest.fixture(scope="module")
def kodak(shared_data):
    from carkit.io import read_image

    return read_image(shared_data / "eval" / "kodak" / "kodim23.png").pixels


def kodak_views(img: np.ndarray, n: int = 96) -> np.ndarray:
    """Causal views cut from the Y of a real image (uint8 (n, 16, 24))."""
    y = np.clip(np.rint(img.astype(np.float64) @ [0.299, 0.587, 0.114]), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    rs = rng.integers(0, y.shape[0] // 8 - 2, n)
    cs = rng.integers(0, y.shape[1] // 8 - 2, n)
    return np.stack([y[r * 8:r * 8 + 16, c * 8:c * 8 + 24] for r, c in zip(rs, cs)])


def make_predictor_zoo(directory, monkeypatch, seed: int = 0, name: str = "blockcnn-predictor"):
    """Point the zoo at ``directory`` and add a tiny predictor entry ``name``."""
    import carkit.zoo.registry as zoo

    directory.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", directory)
    model = tiny_predictor(seed)
    path = directory / f"{name}.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
    kwargs = {k: v for k, v in TINY.items() if k not in ("causal", "in_channels", "color_space")}
    zoo.save_record(zoo.WeightsRecord.new(name=name, model="blockcnn-predictor", model_kwargs=kwargs, gray=True,
                                      qualities=[1, 100], sha256=zoo.sha256_of(path), description="test"))
    return directory


# ---------------------------------------------------------------- exact predictor

def test_int_dct_matrix_is_the_rounded_float_matrix():
    from carkit.jpeg.dct import dct_matrix

    d = dct_matrix(dtype=torch.float64).numpy()
    assert np.array_equal(intdct._DCT_INT, np.rint(d * 65536).astype(np.int64))
    blocks = np.random.default_rng(0).integers(-255, 256, (50, 8, 8))
    back = intdct.inverse_dct_int(np.rint(intdct.forward_dct_int(blocks)).astype(np.int64))
    assert np.abs(back - blocks).max() <= 1


def test_calibration_windows_are_fixed():
    a, b = calibration_windows(), calibration_windows()
    assert a.dtype == np.uint8 and a.shape == (384, 16, 24) and np.array_equal(a, b)
    assert (a[:, 8:, 8:] == 0).all() and a.min() == 0 and a.max() == 255


def test_exact_predictor_matches_float_model(net, kodak):
    views = kodak_views(kodak)
    exact = ExactPredictor.from_model(net)
    with torch.no_grad():
        ref = net.forward_windows(mask_causal(torch.from_numpy(
            np.concatenate([views, np.zeros_like(views[:, :8])], 1)).float()[:, None] / 255))
    ref = np.clip(np.rint(ref[:, 0].numpy() * 255), 0, 255).astype(np.uint8)
    got = exact.predict(views)
    assert got.shape == (len(views), 8, 8) and got.dtype == np.uint8
    assert psnr(got.reshape(-1, 8), ref.reshape(-1, 8)) > 45
    assert np.abs(got.astype(int) - ref).max() <= 2
    # (N, 1, 16, 24) and torch input give the same, with the channel axis kept
    assert np.array_equal(exact.predict(torch.from_numpy(views[:, None]))[:, 0], got)


def test_exact_predictor_is_bit_identical_across_threads_and_batches(net, kodak, monkeypatch):
    views = kodak_views(kodak, 64)
    exact = ExactPredictor.from_model(net)
    monkeypatch.setattr(exact_module, "PREDICT_THREADS", None)  # really run on torch's 2 threads
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = exact.predict(views)
        torch.set_num_threads(2)
        two = exact.predict(views)
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(one, two)
    parts = [exact.predict(views[i:j]) for i, j in ((0, 1), (1, 8), (8, 64))]
    assert np.array_equal(np.concatenate(parts), one)
    perm = np.random.default_rng(1).permutation(64)
    assert np.array_equal(exact.predict(views[perm]), one[perm])
    mixed = np.concatenate([views[:5], calibration_windows()[:20]])
    assert np.array_equal(exact.predict(mixed)[:5], one[:5])


def test_exact_despite_a_global_bf16_setting(net, kodak):
    """oneDNN's fp32 mode is process-global; a bf16 setting would make the
    float32 sums inexact, so the predictor forces IEEE around its calls."""
    views = kodak_views(kodak, 16)
    exact = ExactPredictor.from_model(net)
    ref = exact.predict(views)
    backend = torch.backends.mkldnn
    try:
        backend.fp32_precision = "bf16"
        assert np.array_equal(exact.predict(views), ref)
        assert backend.conv.fp32_precision == "bf16"  # restored afterwards
    finally:
        backend.fp32_precision = "none"


def test_float64_route_gives_the_same_integers(net, kodak):
    views = kodak_views(kodak, 16)
    a = ExactPredictor.from_model(net)
    b = ExactPredictor.from_model(net, dtype=torch.float64)
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    assert a.weights_hash == b.weights_hash
    assert np.array_equal(a.predict(views), b.predict(views))


def test_weights_hash_follows_the_weights(net):
    h = ExactPredictor.from_model(net).weights_hash
    assert h == ExactPredictor.from_model(tiny_predictor(0)).weights_hash and len(h) == 64
    assert h != ExactPredictor.from_model(tiny_predictor(1)).weights_hash


def test_predictor_rejects_non_causal_models():
    from carkit.errors import ModelError

    with pytest.raises(ModelError, match="causal one-channel"):
        ExactPredictor.from_model(BlockCNN(in_channels=1, width=8, num_res_blocks=1))
    with pytest.raises(ValueError, match="uint8"):
        ExactPredictor.from_model(tiny_predictor()).predict(np.zeros((2, 16, 24), np.float32))


# ---------------------------------------------------------------- codec

@pytest.mark.parametrize("shape,min_psnr", [((37, 50, 3), 28), ((37, 50), 28), ((5, 3, 3), 20), ((16, 16), 28)],
                         ids=["color-odd", "gray-odd", "color-tiny", "gray-two-blocks"])
def test_decode_equals_encoder_reconstruction(codec, shape, min_psnr):
    img = synthetic(shape[0], shape[1], color=len(shape) == 3)
    data, rec = codec.encode_with_reconstruction(img, 50)
    assert data[:4] == b"BCNN"
    dec = codec.decode(data)
    assert dec.shape == img.shape and dec.dtype == np.uint8
    assert np.array_equal(dec, rec)
    assert psnr(dec, img) > min_psnr  # a 5x3 colour image loses much to 4:2:0
    assert codec.encode(img, 50) == data  # the encoder is deterministic too


def test_encoder_is_thread_independent(codec):
    img = synthetic(32, 40)
    torch.set_num_threads(2)  # the autouse fixture restores the count
    two = codec.encode_with_reconstruction(img, 30)
    torch.set_num_threads(1)
    one = codec.encode_with_reconstruction(img, 30)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])


def test_roundtrip_api_and_settings(codec):
    img = synthetic(45, 67)
    rt = codec.roundtrip(img, 75)
    assert rt.decoded.shape == img.shape and rt.bpp == pytest.approx(8 * len(rt.data) / (45 * 67))
    s = codec.settings()
    assert s["codec"] == "blockcnn" and s["model"] == "blockcnn-predictor" and "jpeglib" in s["library"]
    with pytest.raises(ValueError):
        codec.encode(img, 0)
    with pytest.raises(ValueError):
        codec.encode(img.astype(np.float32), 50)


def test_decode_identical_on_one_and_two_threads(codec, tmp_path):
    """A fresh process per thread count (torch's pool size is fixed once used)."""
    from pathlib import Path

    img = synthetic(40, 56)
    data, rec = codec.encode_with_reconstruction(img, 40)
    (tmp_path / "x.bcnn").write_bytes(data)
    root = Path(__file__).resolve().parents[2]
    script = textwrap.dedent("""
        import sys, numpy as np, torch
        threads, src, dst, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
        torch.set_num_threads(threads)
        sys.path.insert(0, root)
        from tests.codecs.test_blockcnn_codec import tiny_predictor
        from carkit.models import exact
        from carkit.codecs.blockcnn.codec import BlockCNNCodec
        codec = BlockCNNCodec(predictor=tiny_predictor(0))
        out = codec.decode(open(src, "rb").read())  # the product: predictions on one thread
        exact.PREDICT_THREADS = None  # and on the process's own count
        out_own = codec.decode(open(src, "rb").read())
        assert torch.get_num_threads() == threads
        np.save(dst, np.stack([out, out_own]))
    """)
    outs = []
    for threads in (1, 2):
        dst = tmp_path / f"dec{threads}.npy"
        subprocess.run([sys.executable, "-c", script, str(threads), str(tmp_path / "x.bcnn"), str(dst),
                        str(root)], check=True, cwd=root)
        outs.extend(np.load(dst))
    assert all(o.tobytes() == rec.tobytes() for o in outs)


class _ThreadSpy:
    """An ExactPredictor wrapper recording torch's thread count at each call
    (and raising at call ``fail_at``)."""

    def __init__(self, exact, fail_at: int | None = None):
        self.exact, self.fail_at, self.seen = exact, fail_at, []
        self.weights_hash = exact.weights_hash

    def predict(self, views):
        self.seen.append(torch.get_num_threads())
        if self.fail_at is not None and len(self.seen) > self.fail_at:
            raise RuntimeError("spy: failing on purpose")
        return self.exact.predict(views)


def test_codec_runs_predictions_on_one_thread_and_restores_the_count(codec):
    """Issue 34: the default thread count must not slow the codec down; the
    predictions run on one thread and the caller's count comes back, also
    when a prediction fails."""
    img = synthetic(24, 40)
    torch.set_num_threads(2)  # the autouse fixture restores the count
    spy = _ThreadSpy(codec.predictor)
    spied = BlockCNNCodec(predictor=codec.predictor)
    spied._exact = spy  # the predictor it encodes and decodes with
    data, rec = spied.encode_with_reconstruction(img, 40)
    assert torch.get_num_threads() == 2
    assert np.array_equal(spied.decode(data), rec) and torch.get_num_threads() == 2
    assert len(spy.seen) > 10 and set(spy.seen) == {1}
    assert data == codec.encode(img, 40)  # the same file as on one thread
    failing = BlockCNNCodec(predictor=codec.predictor)
    failing._exact = _ThreadSpy(codec.predictor, fail_at=3)
    with pytest.raises(RuntimeError, match="on purpose"):
        failing.decode(data)
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="on purpose"):
        failing.encode(img, 40)
    assert torch.get_num_threads() == 2
    # the predictor alone does the same
    codec.predictor.predict(np.zeros((3, 16, 24), np.uint8))
    assert torch.get_num_threads() == 2


def test_torch_threads_context():
    torch.set_num_threads(2)  # the autouse fixture restores the count
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 2
    with pytest.raises(KeyError):
        with torch_threads(1):
            raise KeyError("x")
    assert torch.get_num_threads() == 2


def test_payload_is_a_standard_jpeg(codec):
    from carkit.jpeg.coefficients import read_coefficients
    from carkit.jpeg.tables import ijg_tables

    for color, mode in ((True, "RGB"), (False, "L")):
        img = synthetic(37, 50, color=color)
        data = codec.encode(img, 60)
        h = read_header(data)
        payload = data[h.payload_offset:]
        assert len(payload) == h.payload_length and (h.width, h.height, h.quality) == (50, 37, 60)
        with Image.open(io.BytesIO(payload)) as im:
            im.load()
            assert im.format == "JPEG" and im.mode == mode
            assert im.size == ((64, 48) if color else (56, 40))  # padded to 16 (color) / 8 (gray)
        jc = read_coefficients(payload)
        luma, chroma = ijg_tables(60)
        assert np.array_equal(jc.quant_tables[0], luma)
        assert jc.subsampling == ("4:2:0" if color else "gray")
        if color:
            assert np.array_equal(jc.quant_tables[1], chroma)


def test_higher_quality_more_bytes_higher_psnr(codec, kodak):
    crop = np.ascontiguousarray(kodak[192:256, 320:400])
    results = []
    for q in (10, 50, 90):
        data, rec = codec.encode_with_reconstruction(crop, q)
        results.append((len(data), psnr(rec, crop)))
    sizes, scores = zip(*results)
    assert sizes[0] < sizes[1] < sizes[2], sizes
    assert scores[0] < scores[1] < scores[2], scores


def test_constant_predictor_is_plain_jpeg(kodak):
    """A predictor that always says 128 turns the codec into JPEG (the
    residual is the level-shifted block): the rate and the quality must then
    match Pillow's JPEG at the same quality closely (colour conversion,
    4:2:0, tables, DCT, coefficient layout all checked at once)."""
    const = BlockCNN(**TINY).eval()
    with torch.no_grad():
        for p in const.parameters():
            p.zero_()
        const.tail.bias.fill_(128 / 255)
    codec = BlockCNNCodec(predictor=const)
    jpeg = get_codec("jpeg")
    crop = np.ascontiguousarray(kodak[128:256, 256:448])
    for img in (crop, np.ascontiguousarray(crop[:, :, 1])):
        for q in (20, 75):
            data, rec = codec.encode_with_reconstruction(img, q)
            payload = len(data) - read_header(data).payload_offset
            ref = jpeg.roundtrip(img, q)
            assert abs(payload - ref.nbytes) < 0.02 * ref.nbytes, (q, payload, ref.nbytes)
            assert abs(psnr(rec, img) - psnr(ref.decoded, img)) < 0.1


# ---------------------------------------------------------------- container errors

def _recrc(data: bytes, header_change=None, payload=None) -> bytes:
    """Re-pack a .bcnn file with a changed header field or payload and a valid CRC."""
    h = read_header(data)
    fields = {"gray": h.gray, "quality": h.quality, "width": h.width, "height": h.height,
              "model": h.model, "weights_hash": h.weights_hash}
    fields.update(header_change or {})
    return pack_container(fields, data[h.payload_offset:] if payload is None else payload)


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


def test_bad_files_raise_one_line_errors(codec, net):
    data = codec.encode(synthetic(24, 40), 50)
    cases = [
        (b"", BcnnFormatError, "bad magic"),
        (b"\xff\xd8\xff\xe0" + data[4:], BcnnFormatError, "bad magic"),
        (data[:3], BcnnFormatError, "bad magic"),
        (data[:4], BcnnFormatError, "truncated"),
        (data[:12], BcnnFormatError, "truncated"),
        (data[:40], BcnnFormatError, "truncated"),
        (data[:-1], BcnnFormatError, "truncated"),
        (data + b"\0", BcnnFormatError, "after the payload"),
        (data[:4] + b"\x07" + data[5:], BcnnFormatError, "unsupported .bcnn format version 7"),
        (data[:-20] + bytes([data[-20] ^ 0x40]) + data[-19:], BcnnFormatError, "CRC"),
        (data[:9] + bytes([data[9] ^ 1]) + data[10:], BcnnFormatError, "CRC"),  # header byte
        (_recrc(data, payload=b"\xff\xd8garbage"), BcnnFormatError, "corrupted .bcnn payload"),
        (_recrc(data, payload=b"nonsense"), BcnnFormatError, "corrupted .bcnn payload"),
        (_recrc(data, {"width": 200}), BcnnFormatError, "does not match the header"),
        (_recrc(data, {"quality": 51}), BcnnFormatError, "quantization tables"),
        (_recrc(data, {"weights_hash": "00" * 32}), PredictorMismatchError, "another version"),
    ]
    for bad, kind, text in cases:
        with pytest.raises(kind) as info:
            codec.decode(bad)
        assert text in _one_line(info), (text, str(info.value))
        assert isinstance(info.value, CodecError)


def test_wrong_and_unknown_predictor(codec, tmp_path, monkeypatch):
    img = synthetic(24, 40)
    data = codec.encode(img, 50)
    other = BlockCNNCodec(predictor=tiny_predictor(1))
    with pytest.raises(PredictorMismatchError, match="another version of predictor 'blockcnn-predictor'") as info:
        other.decode(data)
    _one_line(info)
    # decode_bcnn (the CLI's path) takes the predictor the file names from the zoo
    make_predictor_zoo(tmp_path / "zoo", monkeypatch)
    with pytest.raises(PredictorMismatchError, match="'nope' is not in the zoo") as info:
        bc.decode_bcnn(_recrc(data, {"model": "nope"}))
    _one_line(info)
    with pytest.raises(PredictorMismatchError, match="'custom' is not in the zoo"):
        codec.decode(BlockCNNCodec(model="custom", predictor=tiny_predictor(0)).encode(img, 50))
    zoo_codec = BlockCNNCodec()  # the zoo's float16-stored copy: other weights, other hash
    zoo_data = zoo_codec.encode(img, 50)
    assert read_header(zoo_data).weights_hash != read_header(data).weights_hash
    assert np.array_equal(bc.decode_bcnn(zoo_data), zoo_codec.decode(zoo_data))
    with pytest.raises(PredictorMismatchError, match="another version"):
        codec.decode(zoo_data)


def test_codec_needs_a_zoo_predictor(tmp_path, monkeypatch):
    import carkit.zoo.registry as zoo

    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "empty")
    assert "blockcnn" in list_codecs() and canonical_name("bcnn") == "blockcnn"
    assert "no trained predictor" in BlockCNNCodec.unavailable_reason()
    with pytest.raises(CodecError, match="no trained predictor 'blockcnn-predictor'"):
        BlockCNNCodec()
    with pytest.raises(CodecError, match="no trained predictor"):
        get_codec("blockcnn")
    make_predictor_zoo(tmp_path / "zoo", monkeypatch)
    assert BlockCNNCodec.unavailable_reason() is None
    zoo_codec = get_codec("blockcnn")
    img = synthetic(20, 30)
    data, rec = zoo_codec.encode_with_reconstruction(img, 50)
    assert np.array_equal(zoo_codec.decode(data), rec)
    with pytest.raises(CodecError, match="restore model"):
        RestoredCodec(zoo_codec, "no-such-restorer")


def test_restore_after_decoding(tmp_path, monkeypatch):
    from ..helpers import make_tiny_zoo

    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    make_predictor_zoo(tmp_path / "zoo", monkeypatch)
    plain = BlockCNNCodec()
    restored = RestoredCodec(plain, "tiny-gray")
    img = synthetic(32, 48)
    data, plain_rec = plain.encode_with_reconstruction(img, 20)
    out = restored.decode(data)
    assert np.array_equal(out, restored.restore(plain_rec)) and out.shape == img.shape
    assert data == restored.encode(img, 20)  # restoration does not change the file
    assert not np.array_equal(out, plain.decode(data))


# ---------------------------------------------------------------- CLI

def test_cli_encode_decode_round_trip(tmp_path, monkeypatch, capsys):
    from ..helpers import make_tiny_zoo

    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    make_predictor_zoo(tmp_path / "zoo", monkeypatch)
    img = synthetic(37, 50)
    src = tmp_path / "in.png"
    Image.fromarray(img).save(src)
    out, rec = tmp_path / "out.bcnn", tmp_path / "rec.png"
    assert main(["encode", "--method", "blockcnn", "-q", "40", str(src), str(out)]) == 0
    data = out.read_bytes()
    assert data[:4] == b"BCNN"
    assert main(["decode", str(out), "-o", str(rec)]) == 0
    expected = BlockCNNCodec().decode(data)
    assert np.array_equal(np.asarray(Image.open(rec)), expected)
    # existing outputs need --force; the input is never overwritten
    capsys.readouterr()
    assert main(["decode", str(out), "-o", str(rec)]) == 2
    assert "already exists (use --force" in capsys.readouterr().err
    assert main(["decode", str(out), "-o", str(rec), "--force", "--restore", "tiny-gray"]) == 0
    assert main(["encode", "-q", "40", str(src), str(src), "--force"]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    # other registered codecs write their own format; decode reads them too
    assert main(["encode", "--method", "jpeg", "-q", "40", str(src), str(tmp_path / "o.jpg")]) == 0
    assert Image.open(tmp_path / "o.jpg").format == "JPEG"
    assert main(["decode", str(tmp_path / "o.jpg"), "-o", str(tmp_path / "o.png")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files


def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys):
    make_predictor_zoo(tmp_path / "zoo", monkeypatch)
    src = tmp_path / "in.png"
    Image.fromarray(synthetic(24, 24)).save(src)
    good = tmp_path / "good.bcnn"
    assert main(["encode", "-q", "50", str(src), str(good)]) == 0
    bad = tmp_path / "bad.bcnn"
    data = good.read_bytes()
    bad.write_bytes(data[:-5])
    capsys.readouterr()
    # exit 1: an input failed; exit 2: the request itself is wrong
    for argv, text, code in (
        (["decode", str(bad), "-o", str(tmp_path / "x.png")], "truncated", 1),
        (["decode", str(tmp_path / "missing.bcnn"), "-o", str(tmp_path / "y.png")], "no such file", 1),
        (["encode", "-q", "0", str(src), str(tmp_path / "z.bcnn")], "quality", 2),
        (["encode", "--method", "nope", "-q", "50", str(src), str(tmp_path / "z.bin")], "unknown codec", 2),
        (["decode", str(src), "-o", str(tmp_path / "w.png"), "--restore", "tiny-gray"], "not a .bcnn file", 2),
    ):
        assert main(argv) == code
        err = capsys.readouterr().err
        assert text in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not any((tmp_path / n).exists() for n in ("x.png", "y.png", "z.bcnn", "z.bin", "w.png"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
