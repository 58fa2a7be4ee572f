"""The factorized entropy model ("entropy bottleneck") of Ballé, Minnen, Singh,
Hwang, Johnston, "Variational image compression with a scale hyperprior"
(ICLR 2018), appendix 6.1: a learned, non-parametric density per latent
channel, used as the prior of their factorized-prior model.

Each channel c has a univariate cumulative c(x) = sigmoid(f_K(...f_1(x))),
where f_k(x) = g_k(H_k x + b_k) with H_k = softplus(H~_k) (non-negative) and
g_k(x) = x + tanh(a_k) * tanh(x) for k < K (the last layer is affine), widths
1 -> 3 -> 3 -> 3 -> 1. Non-negative H and tanh(a) >= -1 make c monotone. The
probability of a quantization bin is c(y + 1/2) - c(y - 1/2), computed on the
side of the median where the sigmoids do not saturate (the paper's trick),
and bounded below by 1e-9 so log2 never blows up.

Training adds uniform noise U(-1/2, 1/2) to the latents (the paper's
relaxation); evaluation rounds them around per-channel medians,
y_hat = round(y - m) + m, which is also exactly what the entropy coder codes
(integer symbols round(y - m), see :meth:`EntropyBottleneck.symbols`).

What differs from the paper's implementation (and CompressAI's): the medians
and the tail quantiles that bound the coder's support are not extra
parameters learned by an auxiliary loss; they are *solved* from the density
by bisection whenever needed (60 doublings then 80 halvings in float64, a
fixed number of steps, so the result is a deterministic function of the
weights). That removes the auxiliary loss and its optimizer, and the
medians can never lag the density they belong to.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .gdn import lower_bound

#: symbols (round(y - median)) are clamped to +-2^20 so an escape's magnitude
#: always fits the entropy coder's uniform models; a trained model's latents
#: lie within a few hundred of the median, so the clamp never acts there.
MAX_SYMBOL = 2 ** 20


class EntropyBottleneck(nn.Module):
    """Per-channel learned density over (N, C, H, W) latents.

    Args:
        channels: latent channels C.
        filters: hidden widths of the cumulative's network (paper: 3, 3, 3).
        init_scale: the initial density's rough scale (paper/CompressAI: 10).
        likelihood_bound: lower bound of every bin probability.

    Shape: ``forward(y)``: (N, C, H, W) -> (y_hat, likelihoods), both
    (N, C, H, W) float32.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0,
                 likelihood_bound: float = 1e-9):
        super().__init__()
        self.channels = int(channels)
        self.likelihood_bound = float(likelihood_bound)
        widths = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(widths) - 1):
            # softplus(init) = 1 / scale / width: the initial density is roughly
            # uniform-ish over [-init_scale, init_scale] (Ballé's initialisation)
            init = math.log(math.expm1(1.0 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, widths[i + 1], 1) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))

    # -- the density ---------------------------------------------------------
    def logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for x of shape (C, 1, K), computed in x's dtype; sigmoid(f) is the CDF."""
        logits = x
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            logits = torch.matmul(F.softplus(matrix).to(x.dtype), logits) + bias.to(x.dtype)
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i]).to(x.dtype) * torch.tanh(logits)
        return logits

    def bin_probability(self, v: torch.Tensor) -> torch.Tensor:
        """P(bin of width 1 centred on v) for v of shape (C, 1, K), unbounded."""
        lower = self.logits_cumulative(v - 0.5)
        upper = self.logits_cumulative(v + 0.5)
        # evaluate on the side of the median where the sigmoids are not both ~1
        sign = torch.where(lower + upper > 0, -1.0, 1.0).to(v.dtype).detach()
        return (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()

    # -- medians and quantiles (solved, see module docstring) ----------------
    @torch.no_grad()
    def solve(self, targets: list[float]) -> torch.Tensor:
        """x with f(x) = target for every channel and target: (C, T) float64."""
        t = torch.tensor(targets, dtype=torch.float64).expand(self.channels, 1, len(targets))
        lo = torch.full_like(t, -1.0)
        hi = torch.full_like(t, 1.0)
        for _ in range(60):  # widen the bracket until f(lo) <= t <= f(hi) (f grows linearly far out)
            lo = torch.where(self.logits_cumulative(lo) > t, lo * 2, lo)
            hi = torch.where(self.logits_cumulative(hi) < t, hi * 2, hi)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            below = self.logits_cumulative(mid) < t
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return (0.5 * (lo + hi))[:, 0, :]

    def medians(self) -> torch.Tensor:
        """Per-channel medians, (C,) float32 (the rounding offsets)."""
        return self.solve([0.0])[:, 0].float()

    # -- quantization shared by eval forward and the entropy coder -----------
    def symbols(self, y: torch.Tensor, medians: torch.Tensor | None = None) -> torch.Tensor:
        """The integer symbols round(y - m) of (N, C, H, W) latents, int32, clamped to +-MAX_SYMBOL."""
        m = (self.medians() if medians is None else medians).to(y.device).view(1, -1, 1, 1)
        s = torch.round(y.float() - m).clamp_(-MAX_SYMBOL, MAX_SYMBOL)
        return s.to(torch.int32)

    def dequantize(self, symbols: torch.Tensor, medians: torch.Tensor | None = None) -> torch.Tensor:
        """y_hat = symbols + m, float32."""
        m = (self.medians() if medians is None else medians).to(symbols.device).view(1, -1, 1, 1)
        return symbols.float() + m

    # -- training / evaluation -----------------------------------------------
    def likelihood(self, y_hat: torch.Tensor) -> torch.Tensor:
        n, c, h, w = y_hat.shape
        v = y_hat.transpose(0, 1).reshape(c, 1, -1)
        p = lower_bound(self.bin_probability(v), self.likelihood_bound)
        return p.reshape(c, n, h, w).transpose(0, 1)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(y.device.type, enabled=False):  # densities need float32
            y = y.float()
            if self.training:
                y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5)
            else:
                medians = self.medians().to(y.device)
                y_hat = self.dequantize(self.symbols(y, medians), medians)
            return y_hat, self.likelihood(y_hat)

    # -- the coder's tables --------------------------------------------------
    @torch.no_grad()
    def pmf_table(self, tail_mass: float = 1e-9, max_half: int = 4096) -> dict:
        """The discrete distribution of each channel's symbols, in float64.

        Support: symbols s in [lo_c, hi_c], from the density's tail_mass/2 and
        1 - tail_mass/2 quantiles (relative to the median), clamped to
        +-max_half. Returns numpy arrays: ``medians`` (C,) float32, ``lo``
        (C,) and ``length`` (C,) int64, ``pmf`` (C, max length) float64
        (zero-padded) and ``tail`` (C,), the mass outside the support.
        """
        medians = self.medians()
        logit = math.log(tail_mass / 2) - math.log1p(-tail_mass / 2)
        q = self.solve([logit, -logit])
        m64 = medians.double()
        lo = torch.floor(q[:, 0] - m64).clamp(-max_half, 0).long()
        hi = torch.ceil(q[:, 1] - m64).clamp(0, max_half).long()
        length = hi - lo + 1
        width = int(length.max())
        s = lo[:, None] + torch.arange(width)[None, :]           # (C, width)
        v = (s.double() + m64[:, None])[:, None, :]               # (C, 1, width)
        pmf = self.bin_probability(v)[:, 0, :]
        pmf = torch.where(torch.arange(width)[None, :] < length[:, None], pmf, torch.zeros_like(pmf))
        below = torch.sigmoid(self.logits_cumulative((lo.double() + m64 - 0.5)[:, None, None]))
        above = torch.sigmoid(-self.logits_cumulative((hi.double() + m64 + 0.5)[:, None, None]))
        tail = (below + above).reshape(-1)
        return {"medians": medians.numpy(), "lo": lo.numpy().astype(np.int64),
                "length": length.numpy().astype(np.int64), "pmf": pmf.numpy(), "tail": tail.numpy()}
