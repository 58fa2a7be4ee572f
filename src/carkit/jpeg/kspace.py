"""The "k-space code" of a JPEG plane: its quantized DCT coefficients laid out
as an image, each 8x8 block holding that block's 64 levels (natural order,
``[v, u]``: vertical frequency down the rows). This is HR-CNN's input (Niu,
"End-to-End JPEG Decoding and Artifacts Suppression Using Heterogeneous
Residual Convolutional Neural Network", IJCNN 2020, section III-B).

Two ways to get it, which agree exactly (tested on real files):

* :func:`encode_kspace`, the paper's way, for training: level-shift the
  ground truth by 128, 8x8 forward DCT, divide by the quantization table,
  round half away from zero;
* :func:`read_kspace`, from a file: the levels libjpeg-turbo stored, read
  without decoding pixels (jpeglib, ``carkit.jpeg.coefficients``).

The DCT of :func:`encode_kspace` is libjpeg's default ``JDCT_ISLOW``
(:func:`islow_fdct`: the Loeffler-Ligtenberg-Moschytz factorisation in
13-bit fixed point, ``jfdctint.c``), not the exact transform: with the exact
DCT (``carkit.jpeg.dct``) a few levels land one step away from what
libjpeg-turbo writes (quotients near a rounding boundary); with this one,
none. No library exposes libjpeg's forward DCT on arrays, hence the 40 lines
here.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch

from .dct import block_idct

__all__ = ["encode_kspace", "decode_kspace", "read_kspace", "blocks_to_plane", "tile_table", "islow_fdct",
           "quantize_islow"]


def tile_table(table, height: int, width: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """An (8, 8) table repeated over a (height, width) plane (multiples of 8)."""
    t = torch.as_tensor(np.asarray(table, dtype=np.float64))
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    return t.repeat(height // 8, width // 8)


_CONST_BITS, _PASS1_BITS = 13, 2
# jfdctint.c's FIX(x) = round(x * 2^13)
_F = {k: int(round(v * (1 << _CONST_BITS))) for k, v in {
    "0_298631336": 0.298631336, "0_390180644": 0.390180644, "0_541196100": 0.541196100,
    "0_765366865": 0.765366865, "0_899976223": 0.899976223, "1_175875602": 1.175875602,
    "1_501321110": 1.501321110, "1_847759065": 1.847759065, "1_961570560": 1.961570560,
    "2_053119869": 2.053119869, "2_562915447": 2.562915447, "3_072711026": 3.072711026}.items()}


def _descale(x: np.ndarray, n: int) -> np.ndarray:
    return (x + (1 << (n - 1))) >> n


def _islow_pass(d: np.ndarray, first: bool) -> np.ndarray:
    """One 1-D pass of jfdctint.c over the last axis of int64 ``d`` (..., 8)."""
    s = [d[..., i] for i in range(8)]
    tmp0, tmp7 = s[0] + s[7], s[0] - s[7]
    tmp1, tmp6 = s[1] + s[6], s[1] - s[6]
    tmp2, tmp5 = s[2] + s[5], s[2] - s[5]
    tmp3, tmp4 = s[3] + s[4], s[3] - s[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    out = [None] * 8
    shift = _CONST_BITS - _PASS1_BITS if first else _CONST_BITS + _PASS1_BITS
    if first:
        out[0], out[4] = (tmp10 + tmp11) << _PASS1_BITS, (tmp10 - tmp11) << _PASS1_BITS
    else:
        out[0], out[4] = _descale(tmp10 + tmp11, _PASS1_BITS), _descale(tmp10 - tmp11, _PASS1_BITS)
    z1 = (tmp12 + tmp13) * _F["0_541196100"]
    out[2] = _descale(z1 + tmp13 * _F["0_765366865"], shift)
    out[6] = _descale(z1 - tmp12 * _F["1_847759065"], shift)
    z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
    z5 = (z3 + z4) * _F["1_175875602"]
    tmp4, tmp5 = tmp4 * _F["0_298631336"], tmp5 * _F["2_053119869"]
    tmp6, tmp7 = tmp6 * _F["3_072711026"], tmp7 * _F["1_501321110"]
    z1, z2 = z1 * -_F["0_899976223"], z2 * -_F["2_562915447"]
    z3, z4 = z3 * -_F["1_961570560"] + z5, z4 * -_F["0_390180644"] + z5
    out[7] = _descale(tmp4 + z1 + z3, shift)
    out[5] = _descale(tmp5 + z2 + z4, shift)
    out[3] = _descale(tmp6 + z2 + z3, shift)
    out[1] = _descale(tmp7 + z1 + z4, shift)
    return np.stack(out, axis=-1)


def islow_fdct(blocks: np.ndarray) -> np.ndarray:
    """libjpeg's ``JDCT_ISLOW`` forward DCT of level-shifted integer blocks
    (..., 8, 8) -> int64 coefficients scaled up by 8, as jfdctint.c leaves
    them (natural order, ``[v, u]``)."""
    d = _islow_pass(np.asarray(blocks, dtype=np.int64), first=True)          # rows
    return _islow_pass(np.swapaxes(d, -1, -2), first=False).swapaxes(-1, -2)  # columns


def quantize_islow(coeffs: np.ndarray, table) -> np.ndarray:
    """libjpeg's quantization of :func:`islow_fdct` output: divide by 8x the
    table, rounding half away from zero."""
    q = np.asarray(table, dtype=np.int64) * 8
    return np.sign(coeffs) * ((np.abs(coeffs) + q // 2) // q)


def encode_kspace(pixels: torch.Tensor, table) -> torch.Tensor:
    """The paper's k-space code of gray images, as libjpeg-turbo computes it.

    ``pixels``: (N, 1, H, W) in [0, 1] (H, W multiples of 8); ``table``: an
    (8, 8) quantization table, or (N, 8, 8), one table per image.
    Returns the integer levels as float32 (N, 1, H, W) on ``pixels``' device."""
    n, c, h, w = pixels.shape
    if c != 1 or h % 8 or w % 8:
        raise ValueError(f"encode_kspace needs (N, 1, H, W) with H, W multiples of 8, got {tuple(pixels.shape)}")
    samples = np.rint(pixels.detach().double().cpu().numpy()[:, 0] * 255.0).astype(np.int64) - 128
    blocks = samples.reshape(n, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)
    t = np.asarray(table, dtype=np.int64)
    t = t[None, None, None] if t.ndim == 2 else t[:, None, None]
    levels = quantize_islow(islow_fdct(blocks), t)
    plane = levels.transpose(0, 1, 3, 2, 4).reshape(n, 1, h, w)
    return torch.from_numpy(plane.astype(np.float32)).to(pixels.device)


def decode_kspace(levels: torch.Tensor, table) -> torch.Tensor:
    """Plain JPEG decoding of a k-space code (dequantize, inverse DCT, +128),
    in [0, 1], not rounded: the pixel-decoder reference."""
    n, _, h, w = levels.shape
    t = torch.as_tensor(np.asarray(table), dtype=torch.float64, device=levels.device)
    plane = tile_table(t, h, w, like=t) if t.ndim == 2 else t.repeat(1, h // 8, w // 8)[:, None]
    return ((block_idct(levels.double() * plane) + 128.0) / 255.0).float()


def blocks_to_plane(blocks: np.ndarray) -> np.ndarray:
    """(blocks_h, blocks_w, 8, 8) -> (blocks_h*8, blocks_w*8), each block in place."""
    bh, bw = blocks.shape[:2]
    return np.ascontiguousarray(blocks.transpose(0, 2, 1, 3).reshape(bh * 8, bw * 8))


def read_kspace(source: Union[str, os.PathLike, bytes], component: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """One component's k-space code straight from a JPEG file, no pixel decode.

    Returns (levels (Hb*8, Wb*8) int16, its (8, 8) table, (height, width) of
    the component in pixels). Raises the coefficient reader's one-line errors
    (``carkit.errors.CarkitError`` subclasses) on unreadable input."""
    from .coefficients import read_coefficients

    jc = read_coefficients(source)
    if component >= len(jc.components):
        raise ValueError(f"component {component} requested from a {len(jc.components)}-component JPEG")
    hmax = max(h for h, _ in jc.sampling)
    vmax = max(v for _, v in jc.sampling)
    h, v = jc.sampling[component]
    size = (-(-jc.height * v // vmax), -(-jc.width * h // hmax))
    return blocks_to_plane(jc.components[component]), np.asarray(jc.quant_tables[component]), size
