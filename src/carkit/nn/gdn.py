"""Generalized divisive normalization (GDN) and its inverse.

Ballé, Laparra, Simoncelli, "Density Modeling of Images using a Generalized
Normalization Transformation" (ICLR 2016) and "End-to-end Optimized Image
Compression" (ICLR 2017), section 2 / appendix 6.1 of the latter:

    GDN:   y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)
    IGDN:  x_i = y_i * sqrt(beta_i + sum_j gamma_ij y_j^2)

(the "simplified" form of 2017 with exponents 2 and 1/2). beta and gamma must
stay non-negative (beta above a small floor, so the denominator never
vanishes); as in the paper's implementation they are stored reparametrized,
p = sqrt(v + eps^2), and read back as v = max(p, floor)^2 - eps^2, where the
lower bound passes gradients that push the value back up (:class:`LowerBound`).

The normalization always runs in float32, also under bf16 autocast: the sum of
squares over channels and the square root lose too much in bf16's 8-bit
mantissa (one bf16 ulp of a denominator near 1 is 0.4 %).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _LowerBoundFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        # Pass the gradient where x is above the bound, and also where the
        # gradient would raise x (descent direction), so a clamped value can
        # come back (Ballé et al.'s "lower bound" with identity gradient).
        pass_through = (x >= bound) | (grad < 0)
        return grad * pass_through.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``max(x, bound)`` whose gradient still flows when it would raise ``x``."""
    return _LowerBoundFn.apply(x, torch.tensor(bound, dtype=x.dtype, device=x.device))


class NonNegative(nn.Module):
    """v = max(p, sqrt(minimum + eps^2))^2 - eps^2 for a stored parameter p
    (Ballé 2017's reparametrization: stable gradients near zero)."""

    def __init__(self, minimum: float = 0.0, eps: float = 2.0 ** -18):
        super().__init__()
        self.pedestal = eps ** 2
        self.bound = (minimum + self.pedestal) ** 0.5

    def init(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp(value + self.pedestal, min=self.pedestal))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return lower_bound(p, self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """GDN (``inverse=False``) or IGDN (``inverse=True``) over ``channels``.

    Shape: (N, C, H, W) -> (N, C, H, W), float32 whatever the autocast.
    Init as in the paper: beta = 1, gamma = 0.1 * I (close to the identity).
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6,
                 gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_param = NonNegative(minimum=beta_min)
        self.gamma_param = NonNegative()
        self.beta = nn.Parameter(self.beta_param.init(torch.ones(channels)))
        self.gamma = nn.Parameter(self.gamma_param.init(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            beta = self.beta_param(self.beta)
            gamma = self.gamma_param(self.gamma)
            norm = torch.sqrt(F.conv2d(x * x, gamma[:, :, None, None], beta))
            return x * norm if self.inverse else x / norm

    def extra_repr(self) -> str:
        return f"{self.beta.numel()}, inverse={self.inverse}"
