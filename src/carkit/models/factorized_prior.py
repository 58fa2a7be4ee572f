"""The factorized-prior learned image codec: Ballé, Minnen, Singh, Hwang,
Johnston, "Variational image compression with a scale hyperprior" (ICLR 2018),
the "factorized prior" baseline, whose transforms are those of Ballé,
Laparra, Simoncelli, "End-to-end Optimized Image Compression" (ICLR 2017).

- analysis g_a: four 5x5 stride-2 convolutions (N, N, N, M maps) with GDN
  after the first three (:mod:`carkit.nn.gdn`);
- synthesis g_s: four 5x5 stride-2 transposed convolutions (N, N, N, 3 maps)
  with inverse GDN after the first three;
- entropy model: the learned non-parametric factorized density of Ballé
  2018 appendix 6.1 (:class:`~carkit.nn.entropy_bottleneck.EntropyBottleneck`),
  uniform noise in training, rounding around the per-channel medians at test
  time, likelihoods bounded below by 1e-9.

Training minimises lambda * 255^2 * MSE + bpp (``training/learned_codec_tasks.py``);
the real bitstream comes from a range coder (``codecs/factorized/codec.py``).

Registered configurations (RGB in [0, 1], any size):

- ``factorized-prior``: N = 128, M = 192, the paper's low-rate size
  (CompressAI's bmshj2018-factorized qualities 1-5): 2,994,691 parameters
  (transforms 2,986,435 + density 8,256; checked by tests/codecs/test_learned_codec.py).
- ``factorized-small``: N = 64, M = 96, a CPU-trainable size: 755,971
  parameters (transforms 751,843 + density 4,128), about a quarter of the
  paper's arithmetic per pixel.

What differs from the papers:

- Any input size: the image is padded (replicate) to a multiple of 16 before
  g_a and the reconstruction cropped after g_s; the codec stores the size.
- The medians and the coder's tail quantiles are solved from the density
  instead of learned by CompressAI's auxiliary loss (see entropy_bottleneck).
- Channel counts N, M are constructor arguments; the paper uses N = 128,
  M = 192 at low rates and N = 192, M = 320 at high rates.
- Under bf16 autocast only the six convolutions away from the latent run in
  bf16; GDN, the last layer of g_a, the first of g_s and the density run in
  float32 (GDN's sum of squares and square root, and a latent about to be
  rounded to integers, need more than bf16's 8-bit mantissa).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.entropy_bottleneck import EntropyBottleneck
from ..nn.gdn import GDN
from .registry import register_model

_PAPER = ("Ballé, Minnen, Singh, Hwang, Johnston, Variational image compression with a scale hyperprior "
          "(ICLR 2018), factorized-prior baseline")

#: the total stride of g_a: image sides are padded to a multiple of it
STRIDE = 16


class _Conv2dFloat32(nn.Conv2d):
    """A convolution that stays float32 under autocast (same parameters and keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


class _ConvTranspose2dFloat32(nn.ConvTranspose2d):
    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float(), output_size)


def _conv(cin: int, cout: int, float32: bool = False) -> nn.Conv2d:
    return (_Conv2dFloat32 if float32 else nn.Conv2d)(cin, cout, 5, stride=2, padding=2)


def _deconv(cin: int, cout: int, float32: bool = False) -> nn.ConvTranspose2d:
    # padding 2 + output_padding 1: exactly doubles the size (k = 5, s = 2)
    return (_ConvTranspose2dFloat32 if float32 else nn.ConvTranspose2d)(cin, cout, 5, stride=2, padding=2,
                                                                        output_padding=1)


def latent_size(height: int, width: int) -> tuple[int, int]:
    """The latent grid of an image of ``height`` x ``width`` (after padding)."""
    return -(-height // STRIDE), -(-width // STRIDE)


class FactorizedPrior(nn.Module):
    """g_a, the entropy bottleneck and g_s.

    Shape:
        - ``analysis``: (B, 3, H, W) -> (B, M, ceil(H/16), ceil(W/16))
        - ``synthesis``: (B, M, h, w), size (H, W) -> (B, 3, H, W)
        - ``forward``: (B, 3, H, W) -> (B, 3, H, W) reconstruction (noisy
          latents in training, rounded in eval); with ``return_likelihoods``
          also the (B, M, h, w) latent likelihoods.

    Example:
        >>> net = FactorizedPrior(n=8, m=12).eval()
        >>> x_hat, lik = net(torch.rand(1, 3, 37, 29), return_likelihoods=True)
        >>> x_hat.shape, lik.shape
        (torch.Size([1, 3, 37, 29]), torch.Size([1, 12, 3, 2]))
        >>> bits = -torch.log2(lik).sum()
    """

    def __init__(self, n: int = 128, m: int = 192, in_channels: int = 3):
        super().__init__()
        self.n, self.m, self.in_channels = n, m, in_channels
        # The layers next to the latent stay float32 under bf16 autocast: a bf16
        # latent of magnitude 32..64 is only resolved to 1/4, as coarse as the
        # quantization bin it is about to be rounded to.
        self.g_a = nn.Sequential(_conv(in_channels, n), GDN(n), _conv(n, n), GDN(n), _conv(n, n), GDN(n),
                                 _conv(n, m, float32=True))
        self.g_s = nn.Sequential(_deconv(m, n, float32=True), GDN(n, inverse=True), _deconv(n, n), GDN(n, inverse=True),
                                 _deconv(n, n), GDN(n, inverse=True), _deconv(n, in_channels))
        self.entropy_bottleneck = EntropyBottleneck(m)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % STRIDE, (-w) % STRIDE
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.g_a(x)

    def synthesis(self, y_hat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        if tuple(y_hat.shape[-2:]) != latent_size(h, w):
            raise ValueError(f"a {tuple(y_hat.shape[-2:])} latent does not belong to a {h}x{w} image")
        return self.g_s(y_hat)[..., :h, :w]

    def forward(self, x: torch.Tensor, return_likelihoods: bool = False):
        y = self.analysis(x)
        y_hat, likelihoods = self.entropy_bottleneck(y)
        x_hat = self.synthesis(y_hat, tuple(x.shape[-2:]))
        return (x_hat, likelihoods) if return_likelihoods else x_hat


register_model("factorized-prior", FactorizedPrior, paper=_PAPER, kind="learned-codec", in_channels=3, n=128, m=192,
               note="Ballé 2018 factorized prior at the paper's low-rate size (N=128, M=192), 3.0 M parameters")
register_model("factorized-small", FactorizedPrior, paper=_PAPER, kind="learned-codec", in_channels=3, n=64, m=96,
               note="CPU-trainable factorized prior (N=64, M=96), 0.71 M parameters")
