"""Image-quality metrics exactly as ../shared/docs/PROTOCOL.md defines them.

Inputs are uint8 numpy arrays (H, W) or (H, W, 3); outputs are floats.
"""

from __future__ import annotations

import numpy as np


def psnr(img: np.ndarray, ref: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all values: 10 log10(255^2 / MSE)."""
    a = np.asarray(img, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak * peak / mse))
