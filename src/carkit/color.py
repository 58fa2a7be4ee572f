"""Color conversions.

Two YCbCr definitions live here and are never mixed up:
- JPEG (JFIF) full range, what a JPEG file stores;
- ITU-R BT.601 studio swing as MATLAB ``rgb2ycbcr``, what PROTOCOL.md scores
  ("Y channel" metrics, gray versions of color sets).
"""

from __future__ import annotations

import numpy as np


def rgb_to_y_matlab(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y of a uint8 RGB image, as float64 (16..235)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def rgb_to_y_matlab_uint8(rgb: np.ndarray) -> np.ndarray:
    """MATLAB Y rounded to uint8: how a color set becomes a gray set (PROTOCOL.md)."""
    return np.clip(np.rint(rgb_to_y_matlab(rgb)), 0, 255).astype(np.uint8)
