"""carkit.jpeg.dct: blockwise 8x8 DCT/IDCT in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dctn

from carkit.jpeg.dct import (block_dct, block_idct, blockify, dct_blocks, dct_matrix,
                             idct_blocks, unblockify)


def test_dct_matrix_orthonormal_and_matches_scipy():
    d = dct_matrix(8, dtype=torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    e = np.eye(8)
    assert np.allclose(d.numpy(), dctn(e, type=2, norm="ortho", axes=0), atol=1e-12)


def test_blockify_roundtrip_and_layout():
    x = torch.arange(2 * 3 * 16 * 24, dtype=torch.float32).reshape(2, 3, 16, 24)
    b = blockify(x)
    assert b.shape == (2, 3, 2, 3, 8, 8)
    assert torch.equal(b[1, 2, 1, 2], x[1, 2, 8:16, 16:24])
    assert torch.equal(unblockify(b), x)


def test_block_dct_matches_scipy_per_block():
    rng = np.random.default_rng(0)
    x = rng.uniform(-128, 128, (2, 1, 16, 24))
    out = block_dct(torch.from_numpy(x)).numpy()
    for i in range(2):
        for r in range(0, 16, 8):
            for c in range(0, 24, 8):
                ref = dctn(x[i, 0, r:r + 8, c:c + 8], type=2, norm="ortho")
                assert np.allclose(out[i, 0, r:r + 8, c:c + 8], ref, atol=1e-9)


def test_vertical_frequency_is_first_index():
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    x[..., :, :4] = 1.0  # varies along x (horizontal) only
    f = block_dct(x)[0, 0]
    assert abs(f[0, 1]) > 1 and torch.allclose(f[1:, :], torch.zeros(7, 8, dtype=f.dtype),
                                               atol=1e-12)


def test_inverse_is_exact():
    x = torch.rand(3, 2, 24, 40, dtype=torch.float64)
    assert torch.allclose(block_idct(block_dct(x)), x, atol=1e-12)
    x32 = torch.rand(1, 3, 8, 8)
    assert torch.allclose(idct_blocks(dct_blocks(x32)), x32, atol=1e-5)


def test_gradients_flow():
    x = torch.rand(1, 1, 16, 16, requires_grad=True)
    block_dct(x).pow(2).sum().backward()
    # orthonormal: sum of squares is preserved, so d/dx = 2x
    assert torch.allclose(x.grad, 2 * x.detach(), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 12, 16), (1, 1, 16, 9), (16, 16)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError):
        block_dct(torch.zeros(shape))
