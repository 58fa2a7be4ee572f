"""carkit.jpeg.proxy: DiffJPEG against real libjpeg-turbo (Pillow) encode + decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from carkit.jpeg.coefficients import read_coefficients
from carkit.jpeg.proxy import DiffJPEG, diff_jpeg, quality_tables
from carkit.jpeg.tables import ijg_tables

QUALITIES = (10, 20, 30, 50, 75, 95)
_SUB = {"4:2:0": 2, "4:4:4": 0}


def _pillow_roundtrip(img: np.ndarray, q: int, subsampling: str) -> np.ndarray:
    """PROTOCOL.md degradation: Pillow baseline JPEG at q, then Pillow's decode."""
    buf = io.BytesIO()
    kw = {} if img.ndim == 2 else {"subsampling": _SUB[subsampling]}
    Image.fromarray(img).save(buf, format="JPEG", quality=q, **kw)
    with Image.open(buf) as im:
        return np.asarray(im)


def _to_tensor(imgs: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack([i[..., None] if i.ndim == 2 else i for i in imgs])
    return torch.from_numpy(arr.transpose(0, 3, 1, 2).copy()).float() / 255.0


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    a = t.detach().mul(255).round().clamp(0, 255).to(torch.uint8).numpy().transpose(0, 2, 3, 1)
    return a[..., 0] if a.shape[-1] == 1 else a


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


@pytest.fixture(scope="module")
def crops(shared_data):
    # Pillow directly (plain 8-bit RGB PNGs), so this test depends on jpeg/ only
    files = sorted((shared_data / "eval" / "kodak").glob("*.png"))[:8]
    assert len(files) == 8
    pix = []
    for f in files:
        with Image.open(f) as im:
            pix.append(np.asarray(im.convert("RGB")))
    return {
        "square": [p[:256, :256] for p in pix],          # 8 crops 256x256
        "odd": [pix[0][100:100 + 197, 50:50 + 253]],    # 197 rows x 253 columns
    }


def _mean_psnr(model, imgs, q, subsampling) -> float:
    out = _to_uint8(model(_to_tensor(imgs), q))
    return float(np.mean([_psnr(o, _pillow_roundtrip(i, q, subsampling))
                          for o, i in zip(out, imgs)]))


@pytest.mark.parametrize("mode", ["4:2:0", "4:4:4", "gray"])
def test_matches_libjpeg_turbo_at_least_40db(crops, mode):
    sub = "4:2:0" if mode == "gray" else mode
    model = DiffJPEG(subsampling=sub, rounding="ste")
    for key in ("square", "odd"):
        imgs = crops[key]
        if mode == "gray":
            imgs = [i[..., 1].copy() for i in imgs]
        for q in QUALITIES:
            p = _mean_psnr(model, imgs, q, sub)
            assert p >= 40.0, (mode, key, q, p)


def test_smooth_rounding_also_close(crops):
    """Shin & Song's cubic rounding changes forward values by <= 1/8 step."""
    model = DiffJPEG(rounding="smooth")
    for q in (10, 50, 95):
        assert _mean_psnr(model, crops["square"][:4], q, "4:2:0") >= 38.0


def test_coefficients_match_the_real_file(crops):
    img = crops["odd"][0]
    for sub in ("4:2:0", "4:4:4"):
        for q in (20, 90):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=q, subsampling=_SUB[sub])
            real = read_coefficients(buf.getvalue())
            code = DiffJPEG(sub).encode(_to_tensor([img]), q)
            for i in range(3):
                ref = real.coefficient_plane(i)
                prox = code.coefficients[i][0, 0, :ref.shape[0], :ref.shape[1]].numpy()
                assert (prox == ref).mean() > 0.97, (sub, q, i)


@pytest.mark.parametrize("rounding", ["ste", "smooth"])
@pytest.mark.parametrize("sub", ["4:2:0", "4:4:4"])
def test_gradients_reach_input(rounding, sub):
    torch.manual_seed(0)
    model = DiffJPEG(subsampling=sub, rounding=rounding)
    x = torch.rand(2, 3, 21, 35, requires_grad=True)
    x_before = x.detach().clone()
    y = model(x, torch.tensor([15, 80]))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    ((y - 0.5) ** 2).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.equal(x.detach(), x_before)  # never modified in place


def test_gray_gradients_and_shape():
    x = torch.rand(1, 1, 13, 30, requires_grad=True)
    y = DiffJPEG()(x, 30)
    y.sum().backward()
    assert y.shape == x.shape and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_tables_are_buffers_not_parameters():
    model = DiffJPEG()
    assert list(model.parameters()) == []
    names = {n for n, _ in model.named_buffers()}
    assert {"luma_base", "chroma_base", "dct"} <= names
    assert model.state_dict() == {} or all(not v.requires_grad for v in model.state_dict().values())
    for q in (1, 13, 50, 99, 100):
        luma, chroma = model.tables(q, 1)
        ref = ijg_tables(q)
        assert np.array_equal(luma[0].numpy(), ref[0]) and np.array_equal(chroma[0].numpy(), ref[1])
    l, c = quality_tables(torch.arange(1, 101))
    for q in range(1, 101):
        assert np.array_equal(l[q - 1].numpy(), ijg_tables(q)[0])
        assert np.array_equal(c[q - 1].numpy(), ijg_tables(q)[1])


def test_per_sample_quality_equals_separate_calls():
    torch.manual_seed(1)
    x = torch.rand(3, 3, 24, 24)
    model = DiffJPEG()
    batched = model(x, torch.tensor([5, 50, 100]))
    for i, q in enumerate((5, 50, 100)):
        assert torch.allclose(batched[i], model(x[i:i + 1], q)[0])
    assert torch.allclose(diff_jpeg(x, 50), model(x, 50))
    assert torch.allclose(model(x, torch.tensor(50)), model(x, 50))
    assert model(x.double(), 50).dtype == torch.float64


@pytest.mark.parametrize("q", [0, 101, 50.5, torch.tensor([10, 20]), torch.tensor([0.5, 1, 2])])
def test_bad_quality_raises(q):
    with pytest.raises(ValueError):
        DiffJPEG()(torch.rand(3, 3, 8, 8), q)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        DiffJPEG(subsampling="4:2:2")
    with pytest.raises(ValueError):
        DiffJPEG(rounding="floor")
    with pytest.raises(ValueError):
        DiffJPEG()(torch.rand(1, 2, 8, 8), 50)
    with pytest.raises(ValueError):
        DiffJPEG()(torch.randint(0, 255, (1, 3, 8, 8)), 50)
