"""Blockwise 8x8 DCT-II / DCT-III (inverse) in torch.

The JPEG forward DCT (ITU-T T.81 A.3.3)::

    F(v, u) = 1/4 C(u) C(v) sum_{y,x} f(y, x) cos((2x+1) u pi / 16) cos((2y+1) v pi / 16)

with C(0) = 1/sqrt(2), C(k) = 1 otherwise, is exactly the orthonormal 2-D
DCT-II (``scipy.fft.dctn(norm="ortho")``); its inverse is the transpose.
``F = D f D^T`` with ``D = dct_matrix()``. Coefficients are in natural order,
``[..., v, u]`` (vertical frequency first), as in libjpeg and
``carkit.jpeg.coefficients``.

Differences from libjpeg: float arithmetic here; libjpeg's default
``JDCT_ISLOW`` is a scaled 13-bit fixed-point factorisation (Loeffler et al.)
that differs from the exact transform by about one unit in the last place.

Shapes: images (N, C, H, W) with H and W multiples of 8; "coefficient
planes" (N, C, H, W) where each 8x8 tile holds that block's coefficients;
"blocks" (N, C, H/8, W/8, 8, 8).
"""

from __future__ import annotations

import math

import torch

__all__ = ["dct_matrix", "blockify", "unblockify", "block_dct", "block_idct",
           "dct_blocks", "idct_blocks"]


def dct_matrix(n: int = 8, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (n, n): ``D[k, i] = a_k cos((2i+1) k pi / 2n)``,
    ``a_0 = sqrt(1/n)``, ``a_k = sqrt(2/n)``. ``D @ x`` is the 1-D DCT of ``x``
    and ``D.T`` its inverse. Computed in float64, then cast.

    Example:
        >>> D = dct_matrix()
        >>> torch.allclose(D @ D.T, torch.eye(8), atol=1e-6)
        True
    """
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos((2 * i + 1) * k * math.pi / (2 * n)) * math.sqrt(2.0 / n)
    d[0] = d[0] / math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must be (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[-2] % 8 or x.shape[-1] % 8:
        raise ValueError(f"{name} height and width must be multiples of 8, got "
                         f"{tuple(x.shape[-2:])} (pad first)")


def blockify(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H/b, W/b, b, b), a view-like reshape (no copy of
    values beyond what ``permute`` + ``reshape`` need)."""
    n, c, h, w = x.shape
    if h % block or w % block:
        raise ValueError(f"height and width must be multiples of {block}, got {(h, w)}")
    return x.reshape(n, c, h // block, block, w // block, block).permute(0, 1, 2, 4, 3, 5)


def unblockify(blocks: torch.Tensor) -> torch.Tensor:
    """(N, C, H/b, W/b, b, b) -> (N, C, H, W); inverse of ``blockify``."""
    if blocks.ndim != 6 or blocks.shape[-1] != blocks.shape[-2]:
        raise ValueError(f"expected (N, C, h, w, b, b) blocks, got shape {tuple(blocks.shape)}")
    n, c, hb, wb, b, _ = blocks.shape
    return blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, c, hb * b, wb * b)


def dct_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """2-D orthonormal DCT-II of every 8x8 block: (..., 8, 8) -> (..., 8, 8)."""
    d = dct_matrix(8, dtype=blocks.dtype, device=blocks.device)
    return d @ blocks @ d.T


def idct_blocks(coeffs: torch.Tensor) -> torch.Tensor:
    """Inverse of ``dct_blocks`` (2-D DCT-III): (..., 8, 8) -> (..., 8, 8)."""
    d = dct_matrix(8, dtype=coeffs.dtype, device=coeffs.device)
    return d.T @ coeffs @ d


def block_dct(x: torch.Tensor) -> torch.Tensor:
    """Blockwise 8x8 DCT of an image: (N, C, H, W) -> (N, C, H, W) coefficient planes.

    Shape: H and W must be multiples of 8 (pad first, e.g. by edge
    replication as JPEG encoders do). No level shift is applied: subtract
    128 (or 0.5 for [0, 1] images) first to get JPEG's coefficients.

    Example:
        >>> x = torch.rand(1, 1, 16, 16)
        >>> torch.allclose(block_idct(block_dct(x)), x, atol=1e-5)
        True
    """
    _check_image(x)
    return unblockify(dct_blocks(blockify(x)))


def block_idct(coeffs: torch.Tensor) -> torch.Tensor:
    """Blockwise 8x8 inverse DCT: (N, C, H, W) coefficient planes -> image."""
    _check_image(coeffs, "coeffs")
    return unblockify(idct_blocks(blockify(coeffs)))
