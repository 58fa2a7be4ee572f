"""carkit.metrics: values worked out by hand, agreement with
scikit-image's SSIM, Bjontegaard deltas on curves with known answers, and the
PROTOCOL.md check (plain JPEG at QF 10 on LIVE1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from carkit.color import rgb_to_y_matlab
from carkit.metrics import (bd_psnr, bd_rate, bef, bpp, psnr, psnr_b, psnr_b_rgb,
                                       psnr_b_y, psnr_rgb, psnr_y, score, ssim, ssim_rgb, ssim_y)


def _load(path):
    with Image.open(path) as im:
        return np.asarray(im).copy()


def _sk_ssim(a, b):
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255)


def _four_blocks():
    """16x16 image of four constant 8x8 blocks: 100 | 110 over 120 | 100."""
    img = np.empty((16, 16), np.uint8)
    img[:8, :8], img[:8, 8:], img[8:, :8], img[8:, 8:] = 100, 110, 120, 100
    return img


# ------------------------------------------------------------------ PSNR


def test_psnr_by_hand():
    a = np.zeros((4, 4), np.uint8)
    b = np.full((4, 4), 16, np.uint8)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 256))  # MSE = 16^2
    assert psnr(a, a) == math.inf
    assert psnr(a, b, peak=1.0) == pytest.approx(10 * math.log10(1 / 256))
    with pytest.raises(ValueError, match="shape"):
        psnr(a, np.zeros((4, 5), np.uint8))


def test_psnr_rgb_and_y():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    img = np.clip(ref.astype(int) + rng.integers(-6, 7, ref.shape), 0, 255).astype(np.uint8)
    mse = np.mean((img.astype(float) - ref) ** 2)
    assert psnr_rgb(img, ref) == pytest.approx(10 * math.log10(255 ** 2 / mse))
    assert psnr_rgb(img, ref) == pytest.approx(psnr(img, ref))
    # Y in float (not rounded) from the uint8 RGB
    ya, yb = rgb_to_y_matlab(img), rgb_to_y_matlab(ref)
    assert psnr_y(img, ref) == pytest.approx(10 * math.log10(255 ** 2 / np.mean((ya - yb) ** 2)))
    # gray inputs are already Y
    assert psnr_y(img[..., 0], ref[..., 0]) == pytest.approx(psnr(img[..., 0], ref[..., 0]))
    with pytest.raises(ValueError, match="RGB"):
        psnr_rgb(img[..., 0], ref[..., 0])


# ------------------------------------------------------------------ SSIM


def test_ssim_matches_skimage_on_real_images(shared_data):
    from carkit.codecs.jpeg import jpeg_roundtrip

    for name in ("bikes.png", "parrots.png", "womanhat.png"):
        ref = _load(shared_data / "eval" / "live1_gray" / name)
        for q in (10, 40):
            img = jpeg_roundtrip(ref, q)
            assert abs(ssim(img, ref) - _sk_ssim(img, ref)) < 1e-4
    ref = _load(shared_data / "eval" / "kodak" / "kodim05.png")[:200, :300]
    img = jpeg_roundtrip(ref, 20)
    want = np.mean([_sk_ssim(img[..., c], ref[..., c]) for c in range(3)])
    assert abs(ssim_rgb(img, ref) - want) < 1e-4
    ya, yb = rgb_to_y_matlab(img), rgb_to_y_matlab(ref)
    assert abs(ssim_y(img, ref) - _sk_ssim(ya, yb)) < 1e-4


def test_ssim_small_and_edge_cases():
    rng = np.random.default_rng(1)
    for shape in ((11, 11), (11, 30), (17, 12)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        b = rng.integers(0, 256, shape, dtype=np.uint8)
        assert abs(ssim(a, b) - _sk_ssim(a, b)) < 1e-4
        assert ssim(a, a) == pytest.approx(1.0)
        assert ssim(a, b) == pytest.approx(ssim(b, a))  # symmetric
    flat = np.full((12, 12), 77, np.uint8)
    assert ssim(flat, flat) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((10, 20), np.uint8), np.zeros((10, 20), np.uint8))
    with pytest.raises(ValueError, match="gray"):
        ssim(np.zeros((12, 12, 3), np.uint8), np.zeros((12, 12, 3), np.uint8))


# ------------------------------------------------------------------ BEF / PSNR-B


def test_bef_and_psnr_b_by_hand_16x16():
    img = _four_blocks()
    # H = W = 16, B = 8. Horizontal neighbour pairs: 15 a row, one (7|8) on a block
    # boundary; vertical likewise.
    #   boundary pairs     N_B  = 16 rows * 1 + 16 columns * 1 = 32
    #   non-boundary pairs N_Bc = 16 * 14 + 16 * 14           = 448
    # Blocks are flat, so every non-boundary difference is 0: D_Bc = 0.
    # Boundary squared differences:
    #   rows 0-7, 100|110: 10^2 = 100 (8 rows) -> 800
    #   rows 8-15, 120|100: 20^2 = 400 (8 rows) -> 3200
    #   cols 0-7, 100 over 120: 400 (8 cols)   -> 3200
    #   cols 8-15, 110 over 100: 100 (8 cols)  -> 800
    #   D_B = 8000 / 32 = 250 > D_Bc
    # eta = log2(8) / log2(16) = 3 / 4;  BEF = 0.75 * (250 - 0) = 187.5
    assert bef(img) == pytest.approx(187.5, abs=1e-12)
    # Reference differs by 10 on 32 pixels: MSE = 32 * 100 / 256 = 12.5
    ref = img.copy()
    ref[:4, :8] += 10
    assert np.mean((img.astype(float) - ref) ** 2) == 12.5
    # PSNR-B = 10 log10(255^2 / (12.5 + 187.5)) = 10 log10(325.125) = 25.1205 dB
    assert psnr_b(img, ref) == pytest.approx(25.12050, abs=1e-5)
    assert psnr_b(img, ref) == pytest.approx(10 * math.log10(65025 / 200), abs=1e-12)
    # while PSNR = 10 log10(65025 / 12.5) = 37.1617 dB
    assert psnr(img, ref) == pytest.approx(37.16171, abs=1e-5)


def test_bef_non_multiple_of_8_counts_summed_pairs():
    # H = 12, W = 20; value 10 * (j // 8) + 20 * (i // 8): flat 8x8 blocks.
    i, j = np.mgrid[:12, :20]
    img = (10 * (j // 8) + 20 * (i // 8)).astype(np.uint8)
    # Horizontal boundary pairs: columns (7|8) and (15|16) -> 2 per row, 12 rows = 24,
    #   each a step of 10: 24 * 100 = 2400.
    # Vertical boundary pairs: rows (7|8) only (15 > H - 1) -> 20 columns = 20,
    #   each a step of 20: 20 * 400 = 8000.
    # N_B = 44, D_B = 10400 / 44; all other differences are 0, so D_Bc = 0.
    # eta = log2(8) / log2(min(12, 20)) = 3 / log2(12).
    # BEF = 3 / 3.5849625 * 236.363636 = 0.8368283 * 236.363636 = 197.7959
    want = 3 / math.log2(12) * 10400 / 44
    assert bef(img) == pytest.approx(want, rel=1e-12)
    assert bef(img) == pytest.approx(197.7959, abs=1e-4)
    # (KAIR's count H (W // 8 - 1) + W (H // 8 - 1) = 12 would give 3 / log2(12) * 10400 / 12.)


def test_bef_zero_cases():
    # Ramp: every horizontal step is 10, vertical 0. D_B = 16*100/32 = 50 and
    # D_Bc = 224*100/448 = 50: D_B is not > D_Bc, so BEF = 0 and PSNR-B = PSNR.
    ramp = np.tile((np.arange(16) * 10).astype(np.uint8), (16, 1))
    assert bef(ramp) == 0.0
    ref = ramp.copy()
    ref[0, 0] = 5
    assert psnr_b(ramp, ref) == pytest.approx(psnr(ramp, ref))
    # No block boundary inside an 8x8 image
    assert bef(np.random.default_rng(0).integers(0, 256, (8, 8)).astype(np.uint8)) == 0.0
    # Flat image
    assert bef(np.full((16, 16), 3, np.uint8)) == 0.0


def test_psnr_b_takes_bef_of_image_under_test():
    blocky = _four_blocks()
    smooth = np.full((16, 16), 107, np.uint8)
    mse = np.mean((blocky.astype(float) - smooth) ** 2)
    assert psnr_b(blocky, smooth) == pytest.approx(10 * math.log10(65025 / (mse + 187.5)))
    assert psnr_b(smooth, blocky) == pytest.approx(psnr(smooth, blocky))  # BEF(smooth) = 0
    assert psnr_b(blocky, blocky) == pytest.approx(10 * math.log10(65025 / 187.5))


def test_color_psnr_b():
    y, x = np.mgrid[:24, :40]
    ref = np.stack([3 * x, 2 * y + 40, x + y + 90], axis=2).astype(np.uint8)  # smooth ramps
    img = ref.copy()
    img[:, 8:16] = np.clip(img[:, 8:16].astype(int) + 30, 0, 255)  # a step at a block edge
    y_img, y_ref = rgb_to_y_matlab(img), rgb_to_y_matlab(ref)
    mse_rgb = np.mean((img.astype(float) - ref) ** 2)
    assert bef(y_img) > 0
    assert psnr_b_rgb(img, ref) == pytest.approx(10 * math.log10(65025 / (mse_rgb + bef(y_img))))
    mse_y = np.mean((y_img - y_ref) ** 2)
    assert psnr_b_y(img, ref) == pytest.approx(10 * math.log10(65025 / (mse_y + bef(y_img))))
    with pytest.raises(ValueError, match="gray"):
        psnr_b(img, ref)


# ------------------------------------------------------------------ score, bpp


def test_score_keys_and_consistency():
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    img = np.clip(ref.astype(int) + rng.integers(-9, 10, ref.shape), 0, 255).astype(np.uint8)
    s = score(img, ref)
    assert set(s) == {"psnr_rgb", "ssim_rgb", "psnr_b_rgb", "psnr_y", "ssim_y", "psnr_b_y"}
    assert s["psnr_rgb"] == pytest.approx(psnr_rgb(img, ref))
    assert s["ssim_rgb"] == pytest.approx(ssim_rgb(img, ref))
    assert s["psnr_b_rgb"] == pytest.approx(psnr_b_rgb(img, ref))
    assert s["psnr_y"] == pytest.approx(psnr_y(img, ref))
    assert s["ssim_y"] == pytest.approx(ssim_y(img, ref))
    assert s["psnr_b_y"] == pytest.approx(psnr_b_y(img, ref))
    g = score(img[..., 1], ref[..., 1])
    assert set(g) == {"psnr", "ssim", "psnr_b"}
    assert g["psnr_b"] == pytest.approx(psnr_b(img[..., 1], ref[..., 1]))
    assert all(isinstance(v, float) for v in (*s.values(), *g.values()))
    with pytest.raises(TypeError, match="uint8"):
        score(img.astype(np.float32), ref)


def test_bpp():
    assert bpp(1000, 100, 80) == 1.0
    assert bpp(3, 2, 3) == 4.0
    with pytest.raises(ValueError):
        bpp(10, 0, 5)


# ------------------------------------------------------------------ Bjontegaard

RATES = [0.18, 0.31, 0.52, 0.83, 1.40, 2.1]
PSNRS = [27.1, 29.6, 32.2, 34.4, 37.0, 39.1]


def test_bd_rate_recovers_rate_scaling():
    # b reaches every PSNR of a with 0.8 times the rate: 20 % saved.
    assert bd_rate(RATES, PSNRS, [0.8 * r for r in RATES], PSNRS) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(RATES, PSNRS, [1.25 * r for r in RATES], PSNRS) == pytest.approx(25.0, abs=1e-9)
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-12)


def test_bd_psnr_recovers_quality_shift():
    assert bd_psnr(RATES, PSNRS, RATES, [p + 0.5 for p in PSNRS]) == pytest.approx(0.5, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, [p - 0.25 for p in PSNRS]) == pytest.approx(-0.25, abs=1e-9)


def test_bd_on_partly_overlapping_lines():
    # a: PSNR = 30 + 6 log2(r / 0.1), 5 points r = 0.1 .. 1.6 (PSNR 30 .. 54)
    # b: PSNR = 31 + 5 log2(r / 0.15), 4 points r = 0.15 .. 1.2 (PSNR 31 .. 46)
    # Both are straight lines in (PSNR, log r), which PCHIP reproduces exactly.
    ra = [0.1 * 2 ** k for k in range(5)]
    pa = [30 + 6 * k for k in range(5)]
    rb = [0.15 * 2 ** k for k in range(4)]
    pb = [31 + 5 * k for k in range(4)]
    # BD-rate: PSNR overlap [31, 46], mean PSNR 38.5, where
    #   ln r_b - ln r_a = ln(1.5) + ln2 * ((38.5 - 31) / 5 - (38.5 - 30) / 6) = ln(1.5) + ln2 / 12
    #   BD-rate = (1.5 * 2^(1/12) - 1) * 100 = 58.92 %
    assert bd_rate(ra, pa, rb, pb) == pytest.approx((1.5 * 2 ** (1 / 12) - 1) * 100, abs=1e-9)
    # BD-PSNR: log-rate overlap [ln 0.15, ln 1.2], mean Lm = ln 0.15 + 1.5 ln 2, where
    #   PSNR_b = 31 + 5 * 1.5 = 38.5 and PSNR_a = 30 + 6 * log2(Lm...) = 30 + 3 log2(18)
    assert bd_psnr(ra, pa, rb, pb) == pytest.approx(38.5 - (30 + 3 * math.log2(18)), abs=1e-9)
    # order of points does not matter
    assert bd_rate(ra[::-1], pa[::-1], rb, pb) == pytest.approx(bd_rate(ra, pa, rb, pb))
    # swapping the roles gives the inverse rate ratio
    inv = bd_rate(rb, pb, ra, pa)
    assert (1 + inv / 100) * (1 + bd_rate(ra, pa, rb, pb) / 100) == pytest.approx(1.0)


def test_bd_input_errors():
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(RATES[:3], PSNRS[:3], RATES, PSNRS)
    with pytest.raises(ValueError, match="at least 4"):
        bd_psnr(RATES, PSNRS, RATES[:3], PSNRS[:3])
    with pytest.raises(ValueError, match="overlap"):
        bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS])
    with pytest.raises(ValueError, match="overlap"):
        bd_psnr(RATES, PSNRS, [r * 100 for r in RATES], PSNRS)
    with pytest.raises(ValueError, match="> 0"):
        bd_rate([0.0, *RATES[1:]], PSNRS, RATES, PSNRS)
    with pytest.raises(ValueError, match="rates but"):
        bd_rate(RATES, PSNRS[:-1], RATES, PSNRS)
    with pytest.raises(ValueError, match="repeated"):
        bd_rate(RATES, [27.1, 27.1, 32.2, 34.4, 37.0, 39.1], RATES, PSNRS)


# ------------------------------------------------------------------ PROTOCOL check


def _jpeg_means(folder, metrics):
    from carkit.codecs.jpeg import jpeg_roundtrip

    files = sorted(folder.glob("*.png"))
    assert len(files) == 29
    rows = []
    for ref in map(_load, files):
        img = jpeg_roundtrip(ref, 10)
        rows.append({name: fn(img, ref) for name, fn in metrics.items()})
    return {k: float(np.mean([r[k] for r in rows])) for k in metrics}


def test_protocol_check_live1_gray(shared_data):
    m = _jpeg_means(shared_data / "eval" / "live1_gray", {"psnr": psnr, "ssim": ssim,
                                                          "psnr_b": psnr_b})
    # measured: 27.7698 / 0.77300 / 25.3386
    assert m["psnr"] == pytest.approx(27.77, abs=0.01)
    assert m["ssim"] == pytest.approx(0.773, abs=0.001)
    assert m["psnr_b"] == pytest.approx(25.34, abs=0.01)


def test_protocol_check_live1_color(shared_data):
    # (score() also gives the Y metrics, which the check does not need; score's
    # agreement with these functions is tested above)
    m = _jpeg_means(shared_data / "eval" / "live1_color", {
        "psnr_rgb": psnr_rgb, "ssim_rgb": ssim_rgb, "psnr_b_rgb": psnr_b_rgb})
    # measured: 25.6925 / 0.74334 / 24.2050
    assert m["psnr_rgb"] == pytest.approx(25.69, abs=0.01)
    assert m["ssim_rgb"] == pytest.approx(0.743, abs=0.001)
    assert m["psnr_b_rgb"] == pytest.approx(24.20, abs=0.01)
