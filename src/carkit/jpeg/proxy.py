"""A differentiable JPEG proxy that tracks libjpeg-turbo closely.

``DiffJPEG`` maps an image in [0, 1] and a quality 1..100 to the image that
Pillow / libjpeg-turbo would decode after encoding it at that quality with
the PROTOCOL.md settings (baseline, IJG tables scaled by quality, 4:2:0 or
4:4:4, default decoder), with gradients. The stages follow libjpeg-turbo
(file names are in its source tree):

1. RGB -> YCbCr, JFIF full range (T.871 / ``jccolor.c``), samples rounded
   to integers 0..255.
2. Edge replication to whole MCUs (``jcprepct.c``, ``jcsample.c``): columns
   are replicated at full resolution before downsampling; rows are
   replicated per component after downsampling.
3. 4:2:0: 2x2 box average with libjpeg's alternating 1, 2 rounding bias
   (``h2v2_downsample``).
4. Level shift by 128, 8x8 DCT (``carkit.jpeg.dct``; T.81 A.3.3),
   division by the IJG tables for the quality (``carkit.jpeg.tables``),
   rounding (see below), dequantization (T.81 A.3.4), inverse DCT, +128,
   rounding and clamping to 0..255 (``jidctint.c`` range limit).
5. 4:2:0: "fancy" triangle upsampling (``h2v2_fancy_upsample``: weights
   3/4, 1/4 in each direction, edge replication, its 8/7 rounding biases).
6. YCbCr -> RGB (``jdcolor.c``), rounding and clamping, crop.

Rounding of the quantized coefficients (the only strongly nonlinear step):

* ``"ste"``: forward exact (round half away from zero, as
  ``jcdctmgr.c``'s ``quantize``), backward identity (straight-through
  estimator, Bengio et al. 2013).
* ``"smooth"``: ``round(x) + (x - round(x))^3`` forward and backward, the
  differentiable approximation of Shin & Song, "JPEG-resistant Adversarial
  Images" (NIPS 2017 workshop). Its forward values differ from real JPEG by
  up to 1/8 of a quantization step.

All other integer steps (sample rounding, clamping, the fixed-point biases)
are emulated in the forward pass with identity gradients when
``emulate_integer=True`` (default), and skipped when False.

What differs from libjpeg-turbo: floating-point DCT/IDCT and color
conversion instead of 13/16-bit fixed point (``JDCT_ISLOW``), so
coefficients sitting within ~1/100 of a rounding boundary can round the
other way; measured agreement is well above 40 dB PSNR (see
``tests/jpeg/test_jpeg_proxy.py``). Only 4:2:0 and 4:4:4 (and grayscale) are
modelled; no 4:2:2, progressive, optimized Huffman (irrelevant for pixels)
or non-IJG tables.

Color conversion uses ``carkit.color``'s JFIF (T.871) matrices, held as
buffers (libjpeg's fixed-point constants round the same numbers to 16 bits).

Design: the tables and matrices are non-persistent buffers (they follow
``.to(device)`` but never appear in ``parameters()`` or ``state_dict()``);
the input is never modified in place.
"""

from __future__ import annotations

from typing import NamedTuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..color import JPEG_RGB_TO_YCBCR, JPEG_YCBCR_TO_RGB
from .dct import blockify, dct_matrix, unblockify
from .tables import STD_CHROMINANCE, STD_LUMINANCE, check_quality

__all__ = ["DiffJPEG", "ProxyCode", "quality_tables", "diff_jpeg"]

QualityLike = Union[int, torch.Tensor]

_SUBSAMPLINGS = ("4:2:0", "4:4:4")
_ROUNDINGS = ("ste", "smooth")



# ------------------------------------------------------------ straight-through ops

def _ste(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Value of ``y``, gradient of ``x`` (identity)."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        return y  # no graph to carry: skip the two extra elementwise ops
    return x + (y - x).detach()


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return _ste(x, torch.round(x))


def _ste_floor(x: torch.Tensor) -> torch.Tensor:
    return _ste(x, torch.floor(x))


def _ste_clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return _ste(x, x.clamp(lo, hi))


# ------------------------------------------------------------ quality

def _quality_tensor(quality: QualityLike, n: int, device) -> torch.Tensor:
    """int or (N,)/() tensor of ints 1..100 -> (N,) long tensor on ``device``."""
    if isinstance(quality, torch.Tensor):
        q = quality.detach()
        if q.ndim == 0:
            q = q.expand(n)
        if q.ndim != 1 or q.shape[0] != n:
            raise ValueError(f"quality tensor must have shape () or ({n},), got {tuple(q.shape)}")
        if q.is_floating_point():
            if not torch.all(q == torch.round(q)):
                raise ValueError("quality must hold integers 1..100")
        elif q.dtype == torch.bool or q.is_complex():
            raise ValueError(f"quality must hold integers 1..100, got dtype {q.dtype}")
        q = q.to(device=device, dtype=torch.long)
        if q.numel() and (int(q.min()) < 1 or int(q.max()) > 100):
            raise ValueError("quality must hold integers in 1..100")
        return q
    return torch.full((n,), check_quality(quality), dtype=torch.long, device=device)


def _scaled_tables(base: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(8, 8) long base and (N,) long qualities -> (N, 8, 8) long tables, exactly
    libjpeg's jpeg_quality_scaling + jpeg_add_quant_table(force_baseline=TRUE)."""
    scale = torch.where(q < 50, torch.div(5000, q, rounding_mode="floor"), 200 - 2 * q)
    t = torch.div(base[None] * scale[:, None, None] + 50, 100, rounding_mode="floor")
    return t.clamp(1, 255)


def quality_tables(quality: QualityLike, n: int = 1,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(luma, chroma) IJG tables as (N, 8, 8) long tensors.

    ``quality`` is an int (repeated ``n`` times) or a (N,) integer tensor.
    Same values as ``carkit.jpeg.tables.ijg_tables`` (force_baseline=True).
    """
    if isinstance(quality, torch.Tensor) and quality.ndim == 1:
        n = quality.shape[0]
    q = _quality_tensor(quality, n, device)
    luma = torch.tensor(STD_LUMINANCE.tolist(), dtype=torch.long, device=device)
    chroma = torch.tensor(STD_CHROMINANCE.tolist(), dtype=torch.long, device=device)
    return _scaled_tables(luma, q), _scaled_tables(chroma, q)


class ProxyCode(NamedTuple):
    """What ``DiffJPEG.encode`` produces (the content of a JPEG file, as tensors).

    coefficients: per component (Y, or Y Cb Cr) a float tensor (N, 1, h, w) of
        quantized coefficient planes (integers in value, each 8x8 tile one
        block, natural order; ``carkit.jpeg.dct.block_dct`` layout), padded
        to whole MCUs.
    tables: (luma, chroma) float tensors (N, 8, 8) used to quantize them.
    size: original (H, W).
    subsampling: "4:2:0", "4:4:4" or "gray".
    """

    coefficients: tuple[torch.Tensor, ...]
    tables: tuple[torch.Tensor, torch.Tensor]
    size: tuple[int, int]
    subsampling: str


class DiffJPEG(nn.Module):
    """Differentiable JPEG encode + decode (see the module docstring).

    Args:
        subsampling: ``"4:2:0"`` (PROTOCOL.md default) or ``"4:4:4"``; ignored
            for 1-channel inputs.
        rounding: ``"ste"`` (exact forward, identity backward) or ``"smooth"``
            (cubic approximation, Shin & Song 2017).
        emulate_integer: emulate libjpeg's integer sample rounding and
            clamping (forward only; gradients pass straight through).

    Shape:
        x: (N, 3, H, W) RGB or (N, 1, H, W) gray, float in [0, 1], any H, W.
        quality: int 1..100, or a (N,) integer tensor (one quality per image).
        output: same shape as ``x``, in [0, 1].

    Example:
        >>> jpeg = DiffJPEG()
        >>> x = torch.rand(2, 3, 37, 50, requires_grad=True)
        >>> y = jpeg(x, torch.tensor([10, 90]))
        >>> y.shape
        torch.Size([2, 3, 37, 50])
        >>> y.mean().backward(); bool(x.grad.abs().sum() > 0)
        True
    """

    def __init__(self, subsampling: str = "4:2:0", rounding: str = "ste",
                 emulate_integer: bool = True):
        super().__init__()
        if subsampling not in _SUBSAMPLINGS:
            raise ValueError(f"subsampling must be one of {_SUBSAMPLINGS}, got {subsampling!r}")
        if rounding not in _ROUNDINGS:
            raise ValueError(f"rounding must be one of {_ROUNDINGS}, got {rounding!r}")
        self.subsampling = subsampling
        self.rounding = rounding
        self.emulate_integer = bool(emulate_integer)
        self.register_buffer("luma_base", torch.tensor(STD_LUMINANCE.tolist()),
                             persistent=False)
        self.register_buffer("chroma_base", torch.tensor(STD_CHROMINANCE.tolist()),
                             persistent=False)
        self.register_buffer("dct", dct_matrix(8, dtype=torch.float32), persistent=False)
        self.register_buffer("rgb_to_ycc", torch.tensor(JPEG_RGB_TO_YCBCR, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("ycc_to_rgb", torch.tensor(JPEG_YCBCR_TO_RGB, dtype=torch.float32),
                             persistent=False)

    def extra_repr(self) -> str:
        return (f"subsampling={self.subsampling!r}, rounding={self.rounding!r}, "
                f"emulate_integer={self.emulate_integer}")

    # -------------------------------------------------------------- helpers

    def _int(self, x: torch.Tensor) -> torch.Tensor:
        """Round and clamp to 0..255 (forward only) when emulating libjpeg."""
        return _ste_clamp(_ste_round(x), 0.0, 255.0) if self.emulate_integer else x

    def _round(self, x: torch.Tensor) -> torch.Tensor:
        if self.rounding == "ste":
            return _ste(x, _round_half_away(x))
        r = torch.round(x).detach()
        return r + (x - r) ** 3

    def tables(self, quality: QualityLike, n: int,
               device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(luma, chroma) IJG tables, float (N, 8, 8), for ``quality``."""
        q = _quality_tensor(quality, n, device if device is not None else self.luma_base.device)
        return (_scaled_tables(self.luma_base, q).to(self.dct.dtype),
                _scaled_tables(self.chroma_base, q).to(self.dct.dtype))

    def _dct_quantize(self, plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) samples 0..255 -> quantized coefficient planes."""
        d = self.dct.to(plane.dtype)
        blocks = blockify(plane - 128.0)
        coef = d @ blocks @ d.T
        q = self._round(coef / table[:, None, None, None])
        return unblockify(q)

    def _dequantize_idct(self, qplane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        d = self.dct.to(qplane.dtype)
        coef = blockify(qplane) * table[:, None, None, None]
        return self._int(unblockify(d.T @ coef @ d) + 128.0)

    def _downsample(self, c: torch.Tensor) -> torch.Tensor:
        """h2v2 downsampling: 2x2 sums, libjpeg's alternating 1, 2 bias, >> 2."""
        s = F.avg_pool2d(c, 2) * 4.0
        if not self.emulate_integer:
            return s / 4.0
        bias = torch.ones(s.shape[-1], dtype=s.dtype, device=s.device)
        bias[1::2] = 2.0
        return _ste_floor((s + bias) / 4.0)

    def _upsample(self, c: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """h2v2 fancy upsampling of (N, 1, h, w) chroma to (N, 1, 2h, 2w)."""
        p = F.pad(c, (1, 1, 1, 1), mode="replicate")
        mid = p[..., 1:-1, :]
        # vertical: row 2k = 3 c[k] + c[k-1], row 2k+1 = 3 c[k] + c[k+1]
        up = 3.0 * mid + p[..., :-2, :]
        down = 3.0 * mid + p[..., 2:, :]
        v = torch.stack((up, down), dim=-2).reshape(*c.shape[:-2], 2 * h, w + 2)
        # horizontal: col 2k = 3 v[k] + v[k-1] (+8), col 2k+1 = 3 v[k] + v[k+1] (+7)
        vm = v[..., 1:-1]
        left = 3.0 * vm + v[..., :-2]
        right = 3.0 * vm + v[..., 2:]
        if self.emulate_integer:
            left = _ste_floor((left + 8.0) / 16.0)
            right = _ste_floor((right + 7.0) / 16.0)
        else:
            left, right = left / 16.0, right / 16.0
        return torch.stack((left, right), dim=-1).reshape(*c.shape[:-2], 2 * h, 2 * w)

    # -------------------------------------------------------------- API

    def encode(self, x: torch.Tensor, quality: QualityLike) -> ProxyCode:
        """Differentiable encoder half: image -> quantized coefficient planes."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError("x must be a (N, 1, H, W) or (N, 3, H, W) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}")
        if not x.is_floating_point():
            raise ValueError(f"x must be floating point in [0, 1], got {x.dtype}")
        n, ch, h, w = x.shape
        if h < 1 or w < 1 or n < 1:
            raise ValueError(f"x must be non-empty, got shape {tuple(x.shape)}")
        luma_t, chroma_t = self.tables(quality, n, x.device)
        luma_t, chroma_t = luma_t.to(x.dtype), chroma_t.to(x.dtype)
        v = x * 255.0  # never in place
        if ch == 1:
            y = self._int(v)
            y = F.pad(y, (0, -w % 8, 0, -h % 8), mode="replicate")
            return ProxyCode((self._dct_quantize(y, luma_t),), (luma_t, chroma_t), (h, w), "gray")

        m = self.rgb_to_ycc.to(x.dtype)
        ycc = torch.einsum("kc,nchw->nkhw", m, v)
        ycc = ycc + torch.tensor([0.0, 128.0, 128.0], dtype=x.dtype, device=x.device)[:, None, None]
        ycc = self._int(ycc)
        y, cbcr = ycc[:, :1], ycc[:, 1:]
        if self.subsampling == "4:4:4":
            pad = (0, -w % 8, 0, -h % 8)
            y = F.pad(y, pad, mode="replicate")
            cbcr = F.pad(cbcr, pad, mode="replicate")
        else:
            hp, wp = h + (-h % 16), w + (-w % 16)
            y = F.pad(y, (0, wp - w, 0, hp - h), mode="replicate")
            # columns replicated at full resolution to the MCU width, rows only
            # to an even count, then downsample, then replicate chroma rows.
            cbcr = F.pad(cbcr, (0, wp - w, 0, h % 2), mode="replicate")
            cbcr = self._downsample(cbcr)
            cbcr = F.pad(cbcr, (0, 0, 0, hp // 2 - cbcr.shape[-2]), mode="replicate")
        coefs = (self._dct_quantize(y, luma_t),
                 self._dct_quantize(cbcr[:, :1], chroma_t),
                 self._dct_quantize(cbcr[:, 1:], chroma_t))
        return ProxyCode(coefs, (luma_t, chroma_t), (h, w), self.subsampling)

    def decode(self, code: ProxyCode) -> torch.Tensor:
        """Differentiable decoder half: ``ProxyCode`` -> image in [0, 1]."""
        h, w = code.size
        luma_t, chroma_t = code.tables
        y = self._dequantize_idct(code.coefficients[0], luma_t)[..., :h, :w]
        if code.subsampling == "gray":
            out = y
        else:
            cb = self._dequantize_idct(code.coefficients[1], chroma_t)
            cr = self._dequantize_idct(code.coefficients[2], chroma_t)
            cbcr = torch.cat((cb, cr), dim=1)
            if code.subsampling == "4:2:0":
                hc, wc = (h + 1) // 2, (w + 1) // 2
                cbcr = self._upsample(cbcr[..., :hc, :wc], hc, wc)
            cbcr = cbcr[..., :h, :w] - 128.0
            m = self.ycc_to_rgb.to(y.dtype)
            out = y + torch.einsum("kc,nchw->nkhw", m, cbcr)
            out = self._int(out)
        return _ste_clamp(out / 255.0, 0.0, 1.0)

    def forward(self, x: torch.Tensor, quality: QualityLike) -> torch.Tensor:
        """JPEG-compress and decompress ``x`` at ``quality``; see the class docstring."""
        return self.decode(self.encode(x, quality))


def diff_jpeg(x: torch.Tensor, quality: QualityLike, subsampling: str = "4:2:0",
              rounding: str = "ste") -> torch.Tensor:
    """Functional form of ``DiffJPEG`` (builds the module on ``x``'s device)."""
    return DiffJPEG(subsampling=subsampling, rounding=rounding).to(x.device)(x, quality)


def jpeg_rate_proxy(images: torch.Tensor, quality: int | list[int], proxy) -> torch.Tensor:
    """A differentiable stand-in for a JPEG file's bits per pixel, one per
    image (shape ``(N,)``): sum(log2(1 + |c|)) over the quantized coefficients c of
    ``proxy.encode`` (carkit's DiffJPEG, straight-through rounding), over the
    pixels. Not calibrated (no entropy coder, headers or run lengths), but
    its ratio between two images tracks the real bytes' closely."""
    h, w = images.shape[-2:]
    code = proxy.encode(images.float(), quality if isinstance(quality, int) else torch.tensor(quality))
    bits = sum(torch.log2(1 + c.abs()).flatten(1).sum(1) for c in code.coefficients)
    return bits / (h * w)
