"""Color conversions.

Two YCbCr definitions live here and are never mixed up:

- JPEG (JFIF) full range, what a JPEG file stores (ITU-T T.871 / JFIF 1.02,
  section 7): ``Y = 0.299 R + 0.587 G + 0.114 B``,
  ``Cb = (B - Y) / 1.772 + 128``, ``Cr = (R - Y) / 1.402 + 128`` on 0..255;
- ITU-R BT.601 studio swing as MATLAB ``rgb2ycbcr``, what PROTOCOL.md scores
  ("Y channel" metrics, gray versions of color sets):
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in 0..255,
  ``Cb = 128 + (-37.797 R - 74.203 G + 112.0 B) / 255``,
  ``Cr = 128 + (112.0 R - 93.786 G - 18.214 B) / 255``.

Plus CIE L*a*b* of sRGB under D65 (the same constants as scikit-image).

Two kinds of functions:

- numpy, for scoring at the edges: :func:`rgb_to_y_matlab` and
  :func:`rgb_to_y_matlab_uint8` take (..., 3) RGB on the 0..255 scale (uint8 or
  float), channels last, as io.py returns images.
- torch, for models: every ``rgb_to_*`` / ``*_to_rgb`` function takes a float
  tensor of shape (..., 3, H, W) (so (3, H, W) or (N, 3, H, W)), channels at
  dim -3, and returns a tensor of the same shape, dtype and device. RGB and
  YCbCr are on the [0, 1] scale (YCbCr values are the 0..255 values above
  divided by 255, so Cb/Cr are centred at 128/255). Lab is in CIE units
  (L* 0..100, a*, b* roughly -128..127). Nothing is clipped, so the pairs
  invert each other (to float precision) and gradients flow everywhere.
  numpy arrays are refused (TypeError): convert with ``torch.from_numpy``.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- numpy, scoring

_MATLAB_Y = (65.481, 128.553, 24.966)


def rgb_to_y_matlab(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y of RGB on the 0..255 scale (uint8 or float, channels
    last), as float64 in 16..235: ``16 + (65.481 R + 128.553 G + 24.966 B) / 255``."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) RGB, got shape {rgb.shape}")
    return 16.0 + (_MATLAB_Y[0] * rgb[..., 0] + _MATLAB_Y[1] * rgb[..., 1]
                   + _MATLAB_Y[2] * rgb[..., 2]) / 255.0


def rgb_to_y_matlab_uint8(rgb: np.ndarray) -> np.ndarray:
    """MATLAB Y rounded to uint8: how a color set becomes a gray set (PROTOCOL.md)."""
    return np.clip(np.rint(rgb_to_y_matlab(rgb)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- torch, models

def _check(x, what: str):
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} expects a torch.Tensor (..., 3, H, W), got {type(x).__name__}")
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"{what} expects shape (..., 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what} expects a float tensor, got {x.dtype}")
    return torch


def _affine(x, matrix, offset):
    """out[..., i, h, w] = sum_j matrix[i][j] * x[..., j, h, w] + offset[i]."""
    import torch

    m = torch.tensor(matrix, dtype=torch.float64).to(dtype=x.dtype, device=x.device)
    b = torch.tensor(offset, dtype=torch.float64).to(dtype=x.dtype, device=x.device)
    return torch.einsum("ij,...jhw->...ihw", m, x) + b.view(3, 1, 1)


def _inverse(matrix, offset):
    """Matrix and offset of the inverse of x -> M x + b (float64)."""
    inv = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    return inv.tolist(), (-inv @ np.asarray(offset, dtype=np.float64)).tolist()


#: JFIF (ITU-T T.871) full-range RGB -> YCbCr, the one definition carkit uses
#: (the proxy, the BlockCNN codec and the torch functions below): rows Y, Cb,
#: Cr of weights on R, G, B (0..255; Cb and Cr then get + 128).
JPEG_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
#: T.871's inverse: rows R, G, B of weights on (Cb - 128, Cr - 128); Y's weight is 1.
JPEG_YCBCR_TO_RGB = (
    (0.0, 1.402),
    (-0.344136, -0.714136),
    (1.772, 0.0),
)

_JPEG_M = [list(row) for row in JPEG_RGB_TO_YCBCR]
_JPEG_B = [0.0, 128.0 / 255.0, 128.0 / 255.0]
_JPEG_MI, _JPEG_BI = _inverse(_JPEG_M, _JPEG_B)

# MATLAB rgb2ycbcr (BT.601 studio swing) for double inputs in [0, 1].
_BT601_M = [
    [65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0],
    [-37.797 / 255.0, -74.203 / 255.0, 112.0 / 255.0],
    [112.0 / 255.0, -93.786 / 255.0, -18.214 / 255.0],
]
_BT601_B = [16.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0]
_BT601_MI, _BT601_BI = _inverse(_BT601_M, _BT601_B)


def rgb_to_ycbcr_jpeg(rgb):
    """RGB in [0, 1] -> JFIF full-range YCbCr in [0, 1] (Cb, Cr centred at 128/255).

    ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = -0.168736 R - 0.331264 G + 0.5 B + 128/255``,
    ``Cr = 0.5 R - 0.418688 G - 0.081312 B + 128/255`` (JFIF 1.02 / ITU-T T.871).

    Shape: (..., 3, H, W) -> (..., 3, H, W).

    Example:
        >>> import torch
        >>> rgb_to_ycbcr_jpeg(torch.ones(1, 3, 2, 2))[0, :, 0, 0]  # white
        tensor([1.0000, 0.5020, 0.5020])
    """
    _check(rgb, "rgb_to_ycbcr_jpeg")
    return _affine(rgb, _JPEG_M, _JPEG_B)


def ycbcr_jpeg_to_rgb(ycbcr):
    """Inverse of :func:`rgb_to_ycbcr_jpeg` (exact matrix inverse:
    ``R = Y + 1.402 (Cr - c)``, ``G = Y - 0.344136 (Cb - c) - 0.714136 (Cr - c)``,
    ``B = Y + 1.772 (Cb - c)``, c = 128/255). Not clipped."""
    _check(ycbcr, "ycbcr_jpeg_to_rgb")
    return _affine(ycbcr, _JPEG_MI, _JPEG_BI)


def rgb_to_ycbcr_bt601(rgb):
    """RGB in [0, 1] -> BT.601 studio-swing YCbCr as MATLAB ``rgb2ycbcr`` of a
    double image: Y in [16/255, 235/255], Cb/Cr in [16/255, 240/255].

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in [0, 1],
    which is PROTOCOL.md's Y formula (R, G, B in 0..255) divided by 255.
    White -> (235, 128, 128)/255, black -> (16, 128, 128)/255,
    red -> (81.481, 90.203, 240)/255.

    Shape: (..., 3, H, W) -> (..., 3, H, W).
    """
    _check(rgb, "rgb_to_ycbcr_bt601")
    return _affine(rgb, _BT601_M, _BT601_B)


def ycbcr_bt601_to_rgb(ycbcr):
    """Inverse of :func:`rgb_to_ycbcr_bt601` (MATLAB ``ycbcr2rgb``), not clipped."""
    _check(ycbcr, "ycbcr_bt601_to_rgb")
    return _affine(ycbcr, _BT601_MI, _BT601_BI)


def rgb_to_y_bt601(rgb):
    """Only the Y of :func:`rgb_to_ycbcr_bt601`: (..., 3, H, W) -> (..., 1, H, W),
    in [16/255, 235/255]. The differentiable twin of :func:`rgb_to_y_matlab`."""
    _check(rgb, "rgb_to_y_bt601")
    w = _BT601_M[0]
    return (w[0] * rgb[..., 0:1, :, :] + w[1] * rgb[..., 1:2, :, :]
            + w[2] * rgb[..., 2:3, :, :] + _BT601_B[0])


# sRGB (IEC 61966-2-1) primaries to CIE XYZ, D65; the constants scikit-image
# uses (skimage.color.colorconv.xyz_from_rgb and the "D65", 2 degree white).
_XYZ_FROM_RGB = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
]
_RGB_FROM_XYZ = np.linalg.inv(np.asarray(_XYZ_FROM_RGB)).tolist()
_D65_WHITE = (0.95047, 1.0, 1.08883)
_LAB_EPS = 0.008856  # (6/29)^3, as in skimage
_LAB_KAPPA = 7.787  # 1/3 (29/6)^2, as in skimage


def _srgb_to_linear(c):
    import torch

    lin = c / 12.92
    gam = ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(c > 0.04045, gam, lin)


def _linear_to_srgb(c):
    import torch

    lin = c * 12.92
    gam = 1.055 * c.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055
    return torch.where(c > 0.0031308, gam, lin)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] -> CIE L*a*b* (D65, 2 degree observer), CIE units.

    sRGB decoding (``((c + 0.055) / 1.055)^2.4`` above 0.04045, else ``c / 12.92``),
    then XYZ with the sRGB/D65 matrix, normalised by the D65 white
    (0.95047, 1, 1.08883), then ``L = 116 f(Y) - 16``, ``a = 500 (f(X) - f(Y))``,
    ``b = 200 (f(Y) - f(Z))`` with ``f(t) = t^(1/3)`` for t > 0.008856 else
    ``7.787 t + 16/116``. Matches ``skimage.color.rgb2lab`` (same constants).

    Shape: (..., 3, H, W) -> (..., 3, H, W) with channels (L, a, b).
    """
    torch = _check(rgb, "rgb_to_lab")
    xyz = _affine(_srgb_to_linear(rgb), _XYZ_FROM_RGB, [0.0, 0.0, 0.0])
    white = torch.tensor(_D65_WHITE, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    t = xyz / white
    f = torch.where(t > _LAB_EPS, t.clamp(min=_LAB_EPS) ** (1.0 / 3.0),
                    _LAB_KAPPA * t + 16.0 / 116.0)
    fx, fy, fz = f[..., 0:1, :, :], f[..., 1:2, :, :], f[..., 2:3, :, :]
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab):
    """Inverse of :func:`rgb_to_lab`: CIE L*a*b* (D65) -> sRGB on the [0, 1] scale.

    Not clipped: out-of-gamut colours give values outside [0, 1] (skimage's
    ``lab2rgb`` clips; clip yourself where you need it).
    """
    torch = _check(lab, "lab_to_rgb")
    L, a, b = lab[..., 0:1, :, :], lab[..., 1:2, :, :], lab[..., 2:3, :, :]
    fy = (L + 16.0) / 116.0
    f = torch.cat([fy + a / 500.0, fy, fy - b / 200.0], dim=-3)
    f_eps = _LAB_EPS ** (1.0 / 3.0)
    t = torch.where(f > f_eps, f ** 3, (f - 16.0 / 116.0) / _LAB_KAPPA)
    white = torch.tensor(_D65_WHITE, dtype=lab.dtype, device=lab.device).view(3, 1, 1)
    linear = _affine(t * white, _RGB_FROM_XYZ, [0.0, 0.0, 0.0])
    return _linear_to_srgb(linear)
