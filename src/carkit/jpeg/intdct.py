"""Integer 8x8 DCT pair, exact in any summation order.

The orthonormal DCT-II matrix scaled by 2^16 and rounded (constants written
out, so no libm can change them); products and sums are int64, so the
inverse transform gives the same integers on every machine and thread
count, as the BlockCNN codec's decoder requires.
"""

from __future__ import annotations

import numpy as np

_SHIFT = 16


#: round(2^15 cos(k pi / 16)), k = 0..8, written out so that no libm can change them.
_COS15 = (32768, 32138, 30274, 27246, 23170, 18205, 12540, 6393, 0)
#: round(2^16 / sqrt(8)), the DC row.
_DC16 = 23170


def _int_dct_matrix() -> np.ndarray:
    """round(2^16 D), D the orthonormal 8x8 DCT-II (``D[u, x] = a_u cos((2x+1) u pi / 16)``,
    a_0 = 1/sqrt(8), a_u = 1/2), from the constants above (checked against
    the float matrix in the tests)."""
    m = np.empty((8, 8), dtype=np.int64)
    for u in range(8):
        for x in range(8):
            if u == 0:
                m[u, x] = _DC16
                continue
            k = ((2 * x + 1) * u) % 32
            k = 32 - k if k > 16 else k
            m[u, x] = _COS15[k] if k <= 8 else -_COS15[16 - k]
    return m


_DCT_INT = _int_dct_matrix()


def _round_shift(x: np.ndarray, bits: int) -> np.ndarray:
    """Integer x / 2^bits rounded half up (arithmetic shift floors)."""
    return (x + (1 << (bits - 1))) >> bits


def forward_dct_int(blocks: np.ndarray) -> np.ndarray:
    """(N, 8, 8) integer residuals -> float64 DCT coefficients (exact integer
    products with round(2^16 D), then one scaling by 2^-32)."""
    s = _DCT_INT @ blocks.astype(np.int64) @ _DCT_INT.T
    return s.astype(np.float64) / float(1 << (2 * _SHIFT))


def inverse_dct_int(coeffs: np.ndarray) -> np.ndarray:
    """(N, 8, 8) integer dequantized coefficients -> int64 pixels, rounded:
    ``round(D^T F D)`` in exact int64 arithmetic (|F| < 2^19 keeps every sum
    below 2^56)."""
    s = _DCT_INT.T @ coeffs.astype(np.int64) @ _DCT_INT
    return _round_shift(s, 2 * _SHIFT)
