"""carkit.color against reference values: Pillow's JFIF YCbCr, MATLAB rgb2ycbcr,
scikit-image's Lab; round trips, shapes and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from carkit.color import (lab_to_rgb, rgb_to_lab, rgb_to_y_bt601, rgb_to_y_matlab,
                          rgb_to_y_matlab_uint8, rgb_to_ycbcr_bt601, rgb_to_ycbcr_jpeg,
                          ycbcr_bt601_to_rgb, ycbcr_jpeg_to_rgb)


def _hwc_to_t(arr_uint8, dtype=torch.float64):
    """uint8 (H, W, 3) -> (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(arr_uint8.transpose(2, 0, 1))).to(dtype)[None] / 255


def _t_to_hwc(t):
    return t[0].permute(1, 2, 0).numpy()


def _colors(n=4096, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (64, n // 64, 3), dtype=np.uint8)
    # make sure the corners of the cube and very dark values are in
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)], np.uint8)
    rgb[0, :8] = corners
    rgb[1, :16] = np.arange(16)[:, None]  # below the sRGB / Lab linear thresholds
    return rgb


@pytest.fixture(scope="module")
def photo(shared_data):
    with Image.open(shared_data / "eval" / "kodak" / "kodim23.png") as im:
        return np.asarray(im.convert("RGB"))[100:228, 200:360].copy()


# ------------------------------------------------------------------ JPEG YCbCr


def _within_one_level(ours, pillow):
    """Pillow's fixed-point conversion truncates (its values are about 0.5 level
    below the exact ones on average): ours, rounded, is within one level."""
    assert np.abs(np.rint(ours) - pillow).max() <= 1
    assert np.abs(ours - pillow).max() < 1.01
    assert abs(float(np.mean(ours - pillow)) - 0.5) < 0.1


def test_jpeg_ycbcr_matches_pillow():
    rgb = _colors()
    ours = _t_to_hwc(rgb_to_ycbcr_jpeg(_hwc_to_t(rgb))) * 255
    pillow = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.float64)
    _within_one_level(ours, pillow)


def test_jpeg_ycbcr_matches_pillow_on_photo(photo):
    ours = _t_to_hwc(rgb_to_ycbcr_jpeg(_hwc_to_t(photo))) * 255
    pillow = np.asarray(Image.fromarray(photo).convert("YCbCr"), dtype=np.float64)
    _within_one_level(ours, pillow)


def test_jpeg_ycbcr_to_rgb_matches_pillow():
    ycc = _colors(seed=3)
    # keep to colors inside the RGB cube, where Pillow's clipping does not act
    ours = _t_to_hwc(ycbcr_jpeg_to_rgb(_hwc_to_t(ycc))) * 255
    pillow = np.asarray(Image.frombytes("YCbCr", (ycc.shape[1], ycc.shape[0]), ycc.tobytes()).convert("RGB"), dtype=np.float64)
    inside = np.all((ours > 0.5) & (ours < 254.5), axis=2)
    assert inside.mean() > 0.2
    assert np.abs(ours - pillow)[inside].max() <= 1.0


def test_jpeg_ycbcr_known_values():
    c = 128 / 255
    px = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    out = rgb_to_ycbcr_jpeg(px.T.reshape(1, 3, 1, 5))[0, :, 0].T * 255
    want = torch.tensor([
        [255, 128, 128],
        [0, 128, 128],
        [76.245, 128 - 43.02768, 255.5],  # Cb = -0.168736 * 255 + 128
        [149.685, 128 - 84.47232, 128 - 106.76544],
        [29.07, 255.5, 128 - 20.73456],
    ], dtype=torch.float64)
    torch.testing.assert_close(out, want, atol=2e-3, rtol=0)
    assert abs(float(rgb_to_ycbcr_jpeg(torch.full((3, 1, 1), 0.5, dtype=torch.float64))[1]) - c) < 1e-12


# ------------------------------------------------------------------ BT.601 / MATLAB


def test_bt601_matlab_values():
    px = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    out = rgb_to_ycbcr_bt601(px.T.reshape(1, 3, 1, 5))[0, :, 0].T * 255
    want = torch.tensor([  # MATLAB: rgb2ycbcr(double([r g b])) * 255
        [235.0, 128.0, 128.0],
        [16.0, 128.0, 128.0],
        [81.481, 90.203, 240.0],
        [144.553, 53.797, 34.214],
        [40.966, 240.0, 109.786],
    ], dtype=torch.float64)
    torch.testing.assert_close(out, want, atol=1e-9, rtol=0)


def test_bt601_y_is_the_protocol_formula():
    rgb = _colors(seed=5)
    y_numpy = rgb_to_y_matlab(rgb)
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    np.testing.assert_allclose(y_numpy, 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255,
                               atol=1e-12, rtol=0)
    t = _hwc_to_t(rgb)
    y_torch = rgb_to_ycbcr_bt601(t)[0, 0].numpy() * 255
    np.testing.assert_allclose(y_torch, y_numpy, atol=1e-9, rtol=0)
    np.testing.assert_allclose(rgb_to_y_bt601(t)[0, 0].numpy() * 255, y_numpy, atol=1e-9, rtol=0)
    assert rgb_to_y_matlab(np.array([255, 255, 255], np.uint8)) == pytest.approx(235.0)
    assert rgb_to_y_matlab_uint8(np.array([[[255, 0, 0]]], np.uint8))[0, 0] == 81
    assert rgb_to_y_matlab_uint8(rgb).dtype == np.uint8


# ------------------------------------------------------------------ Lab


def test_lab_matches_skimage():
    from skimage.color import rgb2lab

    rgb = _colors(seed=7)
    ours = _t_to_hwc(rgb_to_lab(_hwc_to_t(rgb)))
    ref = rgb2lab(rgb)
    np.testing.assert_allclose(ours, ref, atol=1e-3, rtol=0)
    # float32 as models use it
    ours32 = _t_to_hwc(rgb_to_lab(_hwc_to_t(rgb, torch.float32)).double())
    np.testing.assert_allclose(ours32, ref, atol=1e-3, rtol=0)


def test_lab_matches_skimage_on_photo(photo):
    from skimage.color import lab2rgb, rgb2lab

    lab = rgb_to_lab(_hwc_to_t(photo))
    np.testing.assert_allclose(_t_to_hwc(lab), rgb2lab(photo), atol=1e-3, rtol=0)
    np.testing.assert_allclose(_t_to_hwc(lab_to_rgb(lab)), lab2rgb(rgb2lab(photo)), atol=1e-6)


def test_lab_known_values():
    white = rgb_to_lab(torch.ones(3, 1, 1, dtype=torch.float64)).flatten()
    # a*, b* of white are not exactly 0 (the matrix rows do not sum to the white
    # point exactly); skimage gives the same
    torch.testing.assert_close(white, torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64),
                               atol=1e-2, rtol=0)
    black = rgb_to_lab(torch.zeros(3, 1, 1, dtype=torch.float64)).flatten()
    torch.testing.assert_close(black, torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    red = rgb_to_lab(torch.tensor([1.0, 0, 0], dtype=torch.float64).view(3, 1, 1)).flatten()
    torch.testing.assert_close(red, torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64),
                               atol=0.01, rtol=0)


# ------------------------------------------------------------------ round trips, API


@pytest.mark.parametrize("fwd,inv", [(rgb_to_ycbcr_jpeg, ycbcr_jpeg_to_rgb),
                                     (rgb_to_ycbcr_bt601, ycbcr_bt601_to_rgb),
                                     (rgb_to_lab, lab_to_rgb)],
                         ids=["jpeg", "bt601", "lab"])
def test_round_trips(fwd, inv):
    x = _hwc_to_t(_colors(seed=11))
    torch.testing.assert_close(inv(fwd(x)), x, atol=1e-10, rtol=0)
    x32 = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(inv(fwd(x32)), x32, atol=2e-5, rtol=0)


@pytest.mark.parametrize("fn", [rgb_to_ycbcr_jpeg, ycbcr_jpeg_to_rgb, rgb_to_ycbcr_bt601,
                                ycbcr_bt601_to_rgb, rgb_to_lab, lab_to_rgb])
def test_shapes_dtypes_and_errors(fn):
    for shape in [(3, 5, 4), (2, 3, 5, 4), (2, 2, 3, 5, 4)]:
        x = torch.rand(shape, dtype=torch.float32)
        y = fn(x)
        assert y.shape == x.shape and y.dtype == torch.float32
    # batch elements are independent
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(fn(x)[1], fn(x[1]), atol=1e-4, rtol=1e-5)
    with pytest.raises(TypeError):
        fn(np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError):
        fn(torch.zeros(1, 4, 4, 4))
    with pytest.raises(TypeError):
        fn(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_gradients_finite_everywhere():
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    x[..., 0, :] = 0.0  # black and near-black rows hit the linear branches
    x[..., 1, :] = 1e-4
    x[..., 2, :] = 1.0
    x.requires_grad_(True)
    for fwd, inv in [(rgb_to_lab, lab_to_rgb), (rgb_to_ycbcr_jpeg, ycbcr_jpeg_to_rgb),
                     (rgb_to_ycbcr_bt601, ycbcr_bt601_to_rgb)]:
        x.grad = None
        inv(fwd(x)).sum().backward()
        assert torch.isfinite(x.grad).all()
        torch.testing.assert_close(x.grad, torch.ones_like(x), atol=1e-6, rtol=0)


def test_inputs_not_mutated():
    x = torch.rand(1, 3, 4, 4)
    before = x.clone()
    for fn in (rgb_to_ycbcr_jpeg, rgb_to_ycbcr_bt601, rgb_to_lab, lab_to_rgb):
        fn(x)
    torch.testing.assert_close(x, before, atol=0, rtol=0)
