"""Image-quality and rate metrics exactly as ../shared/docs/PROTOCOL.md defines them.

Images are numpy arrays on the 0..255 scale, (H, W) gray or (H, W, 3) RGB,
channels last, as carkit.io returns them. PROTOCOL.md scores uint8 images
(model outputs clipped to 0..255 and rounded first, see ``carkit.io.to_uint8``);
the single functions also accept float arrays on the same scale, :func:`score`
insists on uint8. The first argument is always the image under test (``img``:
the restored or decoded image), the second the reference (``ref``: the
original). All arithmetic is float64; results are Python floats. No border is
cropped.

Definitions
-----------
- **Y**: MATLAB ``rgb2ycbcr`` (BT.601 studio swing),
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, kept as float (not
  rounded to integers) from the uint8 RGB, as BasicSR's ``to_y_channel`` does.
  (KAIR's ``utils_image.rgb2ycbcr``, used by FBCNN's scripts, rounds Y to
  uint8 when given uint8 input; on LIVE1 JPEG the float-Y PSNR is higher by
  0.006 dB at QF 10, 0.025 dB at QF 40 and 0.15 dB at QF 90.) A gray (H, W)
  input to a ``*_y`` function is taken to be Y already.
- **PSNR**: ``10 log10(255^2 / MSE)``, MSE over every value (all three channels
  for RGB: ``psnr_rgb``). ``inf`` when the images are equal.
- **SSIM** (Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from
  error visibility to structural similarity", IEEE TIP 13(4), 2004): 11x11
  Gaussian window, sigma 1.5 (separable, normalised to sum 1), population
  (biased) local variances, C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255, SSIM map
  over the valid region only (no padding: (H-10) x (W-10)), averaged. Equal to
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)`` and to Wang's MATLAB
  ``ssim_index`` without its downsampling step. ``ssim_rgb`` is the mean of
  the R, G and B SSIMs (FBCNN/DAGN color tables).
- **BEF and PSNR-B** (C. Yim and A. C. Bovik, "Quality assessment of deblocked
  images", IEEE TIP 20(1):88-98, 2011, eqs. 1-8), see :func:`bef` and
  :func:`psnr_b`. BEF is always taken on the image under test.
- **bpp** = 8 bytes / (H W), bytes of the whole stored file.
- **BD-rate / BD-PSNR** (G. Bjontegaard, VCEG-M33, 2001, and VCEG-AL22 for the
  piecewise-cubic variant): see :func:`bd_rate`, :func:`bd_psnr`.

Check (PROTOCOL.md): Pillow JPEG at quality 10 scores, mean over images,
27.77 dB / 0.773 / 25.34 dB on ``eval/live1_gray`` (psnr, ssim, psnr_b) and
25.69 dB / 0.743 / 24.20 dB on ``eval/live1_color`` (psnr_rgb, ssim_rgb,
psnr_b_rgb); tests/test_metrics.py reproduces them.
"""

from __future__ import annotations

import math

import numpy as np

from .color import rgb_to_y_matlab
from .extras import require_bench_deps

PEAK = 255.0

# ------------------------------------------------------------------ helpers


def _pair(img, ref) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(img, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: image {a.shape} vs reference {b.shape}")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise ValueError(f"expected (H, W) or (H, W, 3) images, got {a.shape}")
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[:, :, 0], b[:, :, 0]
    return a, b


def _gray(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim != 2:
        raise ValueError(f"{what} is defined on gray/Y (H, W) images, got {a.shape}; "
                         f"use the _y or _rgb variant for color")
    return a


def _rgb(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{what} expects (H, W, 3) RGB images, got {a.shape}")
    return a


def _y(a: np.ndarray) -> np.ndarray:
    """Float MATLAB Y of RGB, or the gray image itself."""
    return a if a.ndim == 2 else rgb_to_y_matlab(a)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    return float(np.mean(d * d))


def _db(mse: float, peak: float = PEAK) -> float:
    return float("inf") if mse == 0 else float(10.0 * math.log10(peak * peak / mse))


# ------------------------------------------------------------------ PSNR


def psnr(img: np.ndarray, ref: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all values: ``10 log10(peak^2 / MSE)``; for RGB input this
    is :func:`psnr_rgb`. ``inf`` if the images are identical."""
    a, b = _pair(img, ref)
    return _db(_mse(a, b), peak)


def psnr_rgb(img: np.ndarray, ref: np.ndarray) -> float:
    """PSNR over all three channels of (H, W, 3) RGB images (PROTOCOL.md color tables)."""
    a, b = _pair(img, ref)
    return _db(_mse(_rgb(a, "psnr_rgb"), b))


def psnr_y(img: np.ndarray, ref: np.ndarray) -> float:
    """PSNR on the float MATLAB Y of both RGB images (see the module docstring);
    a gray input is taken to be Y already."""
    a, b = _pair(img, ref)
    return _db(_mse(_y(a), _y(b)))


# ------------------------------------------------------------------ SSIM

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # 11x11 window


def _gaussian_window() -> np.ndarray:
    x = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / _SSIM_SIGMA) ** 2)
    return w / w.sum()


_WINDOW = _gaussian_window()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian weighted mean over every full 11x11 window ("valid"):
    output (H - 10, W - 10), the same as filtering then cropping 5 pixels."""
    from numpy.lib.stride_tricks import sliding_window_view

    n = 2 * _SSIM_RADIUS + 1
    rows = sliding_window_view(x, n, axis=1) @ _WINDOW  # (H, W - 10)
    return sliding_window_view(rows, n, axis=0) @ _WINDOW  # (H - 10, W - 10)


def _ssim_gray(a: np.ndarray, b: np.ndarray, data_range: float = PEAK) -> float:
    h, w = a.shape
    if min(h, w) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {h}x{w}")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    # var_a + var_b only appears as a sum: one filter of a^2 + b^2 does for both.
    sq = _filter_valid(a * a + b * b)
    ab = _filter_valid(a * b)
    mu_ab = mu_a * mu_b
    mu_sq = mu_a * mu_a + mu_b * mu_b
    num = (2.0 * mu_ab + c1) * (2.0 * (ab - mu_ab) + c2)
    den = (mu_sq + c1) * (sq - mu_sq + c2)
    return float(np.mean(num / den))


def ssim(img: np.ndarray, ref: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM (Wang et al. 2004) of gray/Y (H, W) images: Gaussian 11x11 window,
    sigma 1.5, K1 = 0.01, K2 = 0.03, L = ``data_range``, valid region, mean of
    the SSIM map. Matches skimage's ``structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255)``."""
    a, b = _pair(img, ref)
    return _ssim_gray(_gray(a, "ssim"), b, data_range)


def ssim_y(img: np.ndarray, ref: np.ndarray) -> float:
    """SSIM of the float MATLAB Y of both RGB images (gray inputs: as they are)."""
    a, b = _pair(img, ref)
    return _ssim_gray(_y(a), _y(b))


def ssim_rgb(img: np.ndarray, ref: np.ndarray) -> float:
    """Mean of the SSIMs of the R, G and B channels (FBCNN/DAGN color tables)."""
    a, b = _pair(img, ref)
    _rgb(a, "ssim_rgb")
    return float(np.mean([_ssim_gray(a[:, :, c], b[:, :, c]) for c in range(3)]))


# ------------------------------------------------------------------ PSNR-B


def bef(img: np.ndarray, block: int = 8) -> float:
    """Blocking effect factor of a gray/Y (H, W) image (Yim & Bovik 2011).

    With squared differences of horizontally and vertically adjacent pixels,
    a pair (i, i+1) along a row (column) straddles a block boundary when
    ``i % B == B - 1`` (boundaries at multiples of B, counted from the top-left
    corner, as JPEG's 8x8 grid):

    - ``D_B``  = sum of the boundary pairs' squared differences / their number
    - ``D_Bc`` = sum of the other pairs' squared differences / their number
    - ``eta``  = log2(B) / log2(min(H, W)) if D_B > D_Bc, else 0
    - ``BEF``  = eta * (D_B - D_Bc)

    For H, W multiples of B the counts are the paper's ``N_HB = H (W/B - 1)``
    (plus ``N_VB = W (H/B - 1)``) and ``N_HBc = H (W - 1) - N_HB`` (plus
    ``N_VBc``). For other sizes carkit divides by the number of pairs actually
    summed, ``H floor((W - 1)/B)`` etc.; KAIR/FBCNN's ``_blocking_effect_factor``
    keeps the formula ``H (W // B - 1)`` while summing ``floor((W - 1)/B)``
    columns, which gives PSNR-B about 0.01 dB lower on LIVE1 (25.33 vs 25.34
    for JPEG QF 10; PROTOCOL.md's 25.34 is this definition).

    Value on the squared 0..255 scale (0 for images without any block boundary).
    """
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"bef is defined on gray/Y (H, W) images, got {a.shape}")
    block = int(block)
    if block < 2:
        raise ValueError(f"block must be >= 2, got {block}")
    h, w = a.shape
    if min(h, w) < 2:
        raise ValueError(f"bef needs an image of at least 2x2 pixels, got {h}x{w}")
    dh = np.diff(a, axis=1) ** 2  # (H, W-1): pair (j, j+1) in each row
    dv = np.diff(a, axis=0) ** 2  # (H-1, W): pair (i, i+1) in each column
    hb = (np.arange(w - 1) % block) == block - 1
    vb = (np.arange(h - 1) % block) == block - 1
    n_b = h * int(hb.sum()) + w * int(vb.sum())
    n_bc = h * (w - 1) + w * (h - 1) - n_b
    if n_b == 0 or n_bc == 0:
        return 0.0
    sum_h, sum_v = float(dh.sum()), float(dv.sum())
    s_b = float(dh[:, hb].sum()) + float(dv[vb, :].sum())
    d_b = s_b / n_b
    d_bc = (sum_h + sum_v - s_b) / n_bc
    if d_b <= d_bc:
        return 0.0
    eta = math.log2(block) / math.log2(min(h, w))
    return float(eta * (d_b - d_bc))


def psnr_b(img: np.ndarray, ref: np.ndarray, block: int = 8) -> float:
    """PSNR-B (Yim & Bovik 2011) of gray/Y (H, W) images:
    ``10 log10(255^2 / (MSE + BEF(img)))``, BEF of the image under test."""
    a, b = _pair(img, ref)
    _gray(a, "psnr_b")
    return _db(_mse(a, b) + bef(a, block))


def psnr_b_y(img: np.ndarray, ref: np.ndarray, block: int = 8) -> float:
    """PSNR-B on the float MATLAB Y of both RGB images (gray inputs: as they are)."""
    a, b = _pair(img, ref)
    ya = _y(a)
    return _db(_mse(ya, _y(b)) + bef(ya, block))


def psnr_b_rgb(img: np.ndarray, ref: np.ndarray, block: int = 8) -> float:
    """Color PSNR-B as FBCNN/DAGN tables (PROTOCOL.md): MSE over all three RGB
    channels plus the BEF of the float MATLAB Y of the image under test,
    ``10 log10(255^2 / (MSE_RGB + BEF(Y(img))))``."""
    a, b = _pair(img, ref)
    _rgb(a, "psnr_b_rgb")
    return _db(_mse(a, b) + bef(rgb_to_y_matlab(a), block))


# ------------------------------------------------------------------ all at once


def score(img: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Every PROTOCOL.md metric for one uint8 image pair.

    Gray (H, W): ``psnr``, ``ssim``, ``psnr_b``. Color (H, W, 3): ``psnr_rgb``,
    ``ssim_rgb``, ``psnr_b_rgb`` (the table columns) and ``psnr_y``, ``ssim_y``,
    ``psnr_b_y`` (reported beside them).
    """
    for name, x in (("img", img), ("ref", ref)):
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
            raise TypeError(f"score expects uint8 numpy images (clip and round first), "
                            f"{name} is {getattr(x, 'dtype', type(x).__name__)}")
    a, b = _pair(img, ref)
    if a.ndim == 2:
        mse = _mse(a, b)
        return {"psnr": _db(mse), "ssim": _ssim_gray(a, b), "psnr_b": _db(mse + bef(a))}
    ya, yb = rgb_to_y_matlab(a), rgb_to_y_matlab(b)
    bef_y = bef(ya)
    mse_rgb, mse_y = _mse(a, b), _mse(ya, yb)
    return {
        "psnr_rgb": _db(mse_rgb),
        "ssim_rgb": float(np.mean([_ssim_gray(a[:, :, c], b[:, :, c]) for c in range(3)])),
        "psnr_b_rgb": _db(mse_rgb + bef_y),
        "psnr_y": _db(mse_y),
        "ssim_y": _ssim_gray(ya, yb),
        "psnr_b_y": _db(mse_y + bef_y),
    }


# ------------------------------------------------------------------ rate


def bpp(nbytes: int, h: int, w: int) -> float:
    """Bits per pixel, ``8 * nbytes / (h * w)``; ``nbytes`` is the whole stored
    file (headers and any side information included)."""
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    return 8.0 * float(nbytes) / (int(h) * int(w))


def _rd_curve(rate, quality, name: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise ValueError(f"curve {name}: {r.size} rates but {q.size} quality values")
    if r.size < 4:
        raise ValueError(f"curve {name}: Bjontegaard needs at least 4 points, got {r.size}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise ValueError(f"curve {name}: rates and quality values must be finite")
    if np.any(r <= 0):
        raise ValueError(f"curve {name}: rates must be > 0")
    return np.log(r), q


def _pchip_mean(x: np.ndarray, y: np.ndarray, lo: float, hi: float, what: str) -> float:
    """Mean of the PCHIP interpolant of y(x) over [lo, hi]."""
    require_bench_deps()
    from scipy.interpolate import PchipInterpolator

    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    if np.any(np.diff(xs) <= 0):
        raise ValueError(f"{what}: repeated values on the interpolation axis")
    return float(PchipInterpolator(xs, ys).integrate(lo, hi)) / (hi - lo)


def _overlap(xa: np.ndarray, xb: np.ndarray, what: str) -> tuple[float, float]:
    lo, hi = max(xa.min(), xb.min()), min(xa.max(), xb.max())
    if not hi > lo:
        raise ValueError(f"{what}: the two curves do not overlap")
    return float(lo), float(hi)


def _window_on_quality(la: np.ndarray, qa: np.ndarray, window: tuple[float, float]) -> tuple[float, float]:
    """The anchor's quality values at the ends of a rate window (clipped to
    the anchor's rate range), read off its PCHIP curve quality(log rate)."""
    lo_rate, hi_rate = (float(v) for v in window)
    if not 0 < lo_rate < hi_rate:
        raise ValueError(f"rate window must be 0 < low < high, got {window}")
    curve = _log_rate_curve(la, qa)
    ends = np.clip(np.log([lo_rate, hi_rate]), la.min(), la.max())
    return float(curve(ends[0])), float(curve(ends[1]))


def _log_rate_curve(log_rate: np.ndarray, quality: np.ndarray):
    """PCHIP interpolant of quality as a function of log rate."""
    require_bench_deps()
    from scipy.interpolate import PchipInterpolator

    order = np.argsort(log_rate, kind="stable")
    return PchipInterpolator(log_rate[order], quality[order])


def quality_at_rate(rate, quality, at: float) -> float | None:
    """A rate-quality curve read at rate ``at`` (PCHIP on log rate, as BD
    uses); None outside the measured rates or with fewer than 2 distinct ones."""
    r = np.asarray(rate, dtype=np.float64).ravel()
    if r.size < 2 or np.unique(r).size != r.size or not r.min() <= at <= r.max():
        return None
    return float(_log_rate_curve(np.log(r), np.asarray(quality, dtype=np.float64).ravel())(math.log(at)))


def bd_rate(rate_a, psnr_a, rate_b, psnr_b, rate_window: tuple[float, float] | None = None) -> float:
    """Bjontegaard delta rate of curve b against anchor a, in percent.

    log(rate) is interpolated as a function of PSNR with PCHIP
    (``scipy.interpolate.PchipInterpolator``, piecewise cubic Hermite, monotone)
    for each curve, both are averaged over the PSNR range the curves share, and
    ``BD-rate = (exp(mean_b - mean_a) - 1) * 100``. Negative means b needs less
    rate for the same quality (b saves rate). Needs >= 4 points a curve (points
    in any order, rates > 0); raises ValueError otherwise or when the quality
    ranges do not overlap.

    ``rate_window=(low, high)`` (bpp) narrows the averaging to the anchor's
    quality range between those rates (clipped to the rates it was measured
    at), e.g. BlockCNN's "0.15 to 0.6 bpp".
    """
    la, qa = _rd_curve(rate_a, psnr_a, "a")
    lb, qb = _rd_curve(rate_b, psnr_b, "b")
    lo, hi = _overlap(qa, qb, "bd_rate")
    if rate_window is not None:
        wlo, whi = _window_on_quality(la, qa, rate_window)
        lo, hi = max(lo, wlo), min(hi, whi)
        if not hi > lo:
            raise ValueError(f"bd_rate: the curves do not overlap within {rate_window} bpp")
    diff = _pchip_mean(qb, lb, lo, hi, "bd_rate curve b") - _pchip_mean(qa, la, lo, hi,
                                                                         "bd_rate curve a")
    return float((math.exp(diff) - 1.0) * 100.0)


def bd_psnr(rate_a, psnr_a, rate_b, psnr_b) -> float:
    """Bjontegaard delta PSNR of curve b against anchor a, in dB.

    PSNR is interpolated as a function of log(rate) with PCHIP for each curve,
    and ``BD-PSNR = mean_b - mean_a`` over the log-rate range the curves share.
    Positive means b gives higher quality at the same rate. Same input rules as
    :func:`bd_rate`.
    """
    la, qa = _rd_curve(rate_a, psnr_a, "a")
    lb, qb = _rd_curve(rate_b, psnr_b, "b")
    lo, hi = _overlap(la, lb, "bd_psnr")
    return (_pchip_mean(lb, qb, lo, hi, "bd_psnr curve b")
            - _pchip_mean(la, qa, lo, hi, "bd_psnr curve a"))
