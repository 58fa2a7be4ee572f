"""Encoder-side refinement of a residual-hiding file (beyond the paper).

The paper's E maps (IH, IR) to the coded image IH_enc in one pass. The sender
also holds D, so it can improve the coded image for the one image at hand:
Adam steps on the coded image's pixels lower

    L = ||D(C(IH_enc)) - IH||^2 + PLAIN * ||C(IH_enc) - IH||^2 + RATE * R(IH_enc)

with C the real codec's round trip (forward: the real decode; gradient: the
identity, the Strategy II skip component the pair was trained through), R
the differentiable JPEG's rate estimate (:func:`carkit.jpeg.proxy.jpeg_rate_proxy`)
and the middle term keeping what an ordinary viewer shows near the
original. The file of the step with the lowest L is kept; step 0 is the
unrefined file, so refining never raises L. D is unchanged: a refined file
decodes like any other, and nothing in it says it was refined.

This is test-time optimisation of an encoder's output, as in learned image
compression's content-adaptive refinement (Campos et al., CVPR-W 2019; Yang
et al., NeurIPS 2020), here on a standard codec's input pixels. JPEG carriers
only (the rate estimate is JPEG's, with IJG tables: for jpegli an approximation). Each step costs one codec round trip and
one forward and backward pass of D, tile by tile, so memory stays bounded.
Tiled and untiled runs reach the same quality but not the same pixels: each
step follows the real codec's quantization, and tiny differences (bf16
rounding, the rate estimate's blocks at tile cuts) take other paths. The
weights below are measured in docs/notes/hiding.md.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...io import to_tensor, to_uint8
from ...jpeg.proxy import DiffJPEG, jpeg_rate_proxy
from ...models.residual_hiding import skip_component
from ...nn.precision import run_at
from ...nn.tiling import tile_spans

#: weights of the plain-viewer and rate terms against D's squared error, and Adam's step in
#: [0, 1] pixel units (half a gray level)
PLAIN, RATE, STEP = 0.2, 0.001, 0.002


def refine_coded_image(net, original: torch.Tensor, coded: torch.Tensor, codec, quality: int, steps: int,
                       precision: str = "fp32", tile: int = 512, overlap: int = 96,
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The coded image after ``steps`` refinement steps, 8-bit pixels for
    ``codec.encode`` ((H, W, C), or (H, W) for one plane). ``original`` and
    ``coded`` are (1, C, H, W) in
    [0, 1]; ``net`` the E/D pair, ``precision`` resolved
    (``nn.precision``); ``progress`` is called with 1 per step."""
    h, w = original.shape[-2:]
    ys, xs = tile_spans(h, tile, overlap, 16), tile_spans(w, tile, overlap, 16)
    proxy = DiffJPEG(subsampling=getattr(codec, "subsampling", "4:2:0"))
    pixels = to_uint8(coded)
    y = to_tensor(pixels).requires_grad_(True)
    opt = torch.optim.Adam([y], lr=STEP)
    best = (float("inf"), pixels)
    for step in range(steps + 1):
        pixels = to_uint8(y.detach())
        decoded = to_tensor(codec.roundtrip(pixels, quality).decoded)
        y.grad = torch.zeros_like(y)
        total = 0.0
        for y0, y1, ky0, ky1 in ys:
            for x0, x1, kx0, kx1 in xs:
                total += _tile_loss(net, original, decoded, y, proxy, quality, precision,
                                    (y0, y1, x0, x1), (ky0, ky1, kx0, kx1), step < steps)
        if total < best[0]:
            best = (total, pixels)
        if step == steps:
            break
        opt.step()
        with torch.no_grad():
            y.clamp_(0, 1)
        if progress is not None:
            progress(1)
    return best[1]


def _tile_loss(net, original, decoded, y, proxy, quality, precision, window, keep, backward: bool) -> float:
    """L over one tile's kept region (normalised by the whole image, so the
    tiles' losses sum to L); with ``backward`` its gradient is added to
    ``y.grad`` (D's weights get none)."""
    y0, y1, x0, x1 = window
    ky0, ky1, kx0, kx1 = keep
    h, w = original.shape[-2:]
    inner = (..., slice(ky0 - y0, ky1 - y0), slice(kx0 - x0, kx1 - x0))
    with torch.set_grad_enabled(backward):
        carrier = y.detach()[..., y0:y1, x0:x1].requires_grad_(backward)
        seen = skip_component(decoded[..., y0:y1, x0:x1], carrier)
        out = run_at(precision, net.reconstruct, seen)
        target = original[..., ky0:ky1, kx0:kx1]
        loss = (((out[inner] - target) ** 2).sum() + PLAIN * ((seen[inner] - target) ** 2).sum()) / original.numel()
        area = (ky1 - ky0) * (kx1 - kx0)
        loss = loss + RATE * jpeg_rate_proxy(carrier[inner], quality, proxy).sum() * area / (h * w)
        if backward:
            (grad,) = torch.autograd.grad(loss, carrier)
            y.grad[..., y0:y1, x0:x1] += grad
    return float(loss.detach())
