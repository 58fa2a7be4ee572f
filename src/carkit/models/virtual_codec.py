"""Virtual codec: Zhao, Wang, Bai, Lv, Liang, Ding, "Learning a Virtual Codec
Based on Deep Convolutional Neural Network to Compress Image" (2017;
../shared/papers/virtual-codec.txt, section II-B and Fig. 2).

Three networks, all plain convolution stacks of 128 feature maps:

- :class:`FeatureDescription` (FDNN, the encoder side): eight convolutions,
  9x9 first and last, 3x3 between, the second with stride 2, ReLU after all
  but the last. It maps the image X to the half-resolution "feature
  description" Y that a standard JPEG then codes.
- :class:`PostProcessing` (PPNN, the decoder side): seven convolutions (9x9
  then six 3x3) each followed by ReLU, then a 9x9 transposed convolution of
  stride 2 back to full resolution. It maps the decoded description Z to the
  output image.
- VCNN, the virtual codec: "the same structure as the PPNN"
  (``PostProcessing`` again), trained to imitate Y -> PPNN(JPEG(Y)) so that
  gradients reach FDNN (training only, see ``training/vcodec_tasks.py``).

:class:`VirtualCodec` holds the two networks used at test time (FDNN and PPNN)
and is what the zoo ships; its ``forward`` connects them directly, without a
codec between them (the shape contract of every registered model, and the
way Jiang et al.'s baseline trains its encoder).

What the paper leaves open and is chosen here:

- Padding: "same" padding everywhere, so an H x W image has a
  ceil(H/2) x ceil(W/2) description; the transposed convolution (padding 4,
  output padding 1) exactly doubles the size and ``reconstruct`` crops to
  the original size (which the codec stores beside the JPEG).
- Output ranges: both networks end in a plain convolution as in the paper;
  the description is clipped and rounded to 8 bits only where a real JPEG
  codes it, and the decoder clips its output at the pixel edge.
- ``in_channels`` is 1 for the paper's gray images; 3 runs the same networks on
  RGB (beyond the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model

_PAPER = "Zhao et al., Learning a Virtual Codec Based on Deep CNN to Compress Image, 2017"


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class FeatureDescription(nn.Module):
    """FDNN: (N, C, H, W) image -> (N, C, ceil(H/2), ceil(W/2)) description.

    Conv 9x9 -> conv 3x3 stride 2 -> five conv 3x3 -> conv 9x9 to C maps,
    ReLU after the first seven; 128 maps (paper, Fig. 2). ``skip`` adds the
    area-downsampled image to the output (not in the paper, see the module
    docstring)."""

    def __init__(self, channels: int = 1, features: int = 128, skip: bool = False):
        super().__init__()
        self.skip = skip
        layers: list[nn.Module] = [_conv(channels, features, 9), nn.ReLU(inplace=True),
                                   _conv(features, features, 3, stride=2), nn.ReLU(inplace=True)]
        for _ in range(5):
            layers += [_conv(features, features, 3), nn.ReLU(inplace=True)]
        layers.append(_conv(features, channels, 9))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.skip:
            y = y + F.interpolate(x, size=y.shape[-2:], mode="area")
        return y


class PostProcessing(nn.Module):
    """PPNN (and VCNN): (N, C, h, w) half-resolution image -> (N, C, 2h, 2w).

    Conv 9x9 -> six conv 3x3, each with ReLU, 128 maps, then a 9x9
    transposed convolution of stride 2 to C maps (paper, Fig. 2). ``skip``
    adds the bilinear 2x up-sampled input to the output (not in the paper)."""

    def __init__(self, channels: int = 1, features: int = 128, skip: bool = False):
        super().__init__()
        self.skip = skip
        layers: list[nn.Module] = [_conv(channels, features, 9), nn.ReLU(inplace=True)]
        for _ in range(6):
            layers += [_conv(features, features, 3), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.up = nn.ConvTranspose2d(features, channels, 9, stride=2, padding=4, output_padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.up(self.body(z))
        if self.skip:
            out = out + F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=False)
        return out


def description_size(height: int, width: int) -> tuple[int, int]:
    """The description's size for an image of ``height`` x ``width``."""
    return (height + 1) // 2, (width + 1) // 2


class VirtualCodec(nn.Module):
    """The test-time pair: ``fdnn`` before the standard codec, ``ppnn`` after it.

    Shape:
        - ``describe``: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))
        - ``reconstruct``: (N, C, h, w), size (H, W) -> (N, C, H, W)
        - ``forward``: (N, C, H, W) -> (N, C, H, W), FDNN then PPNN with no codec between

    Example:
        >>> net = VirtualCodec(in_channels=1)
        >>> y = net.describe(torch.rand(1, 1, 33, 20))   # (1, 1, 17, 10), JPEG-code this
        >>> net.reconstruct(y, (33, 20)).shape
        torch.Size([1, 1, 33, 20])
    """

    def __init__(self, in_channels: int = 1, features: int = 128, skip: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.fdnn = FeatureDescription(in_channels, features, skip)
        self.ppnn = PostProcessing(in_channels, features, skip)

    def describe(self, x: torch.Tensor) -> torch.Tensor:
        return self.fdnn(x)

    def reconstruct(self, z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        if z.shape[-2:] != description_size(h, w):
            raise ValueError(f"a {tuple(z.shape[-2:])} description does not belong to a {h}x{w} image")
        return self.ppnn(z)[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(self.describe(x), tuple(x.shape[-2:]))


def upsample_description(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """s(Y) of eq. (1): the linear (bilinear) up-sampling of a description to
    the image size, used by the SSIM loss of eqs. (6-7)."""
    up = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
    return up[..., :size[0], :size[1]]


register_model("vcodec-gray", VirtualCodec, paper=_PAPER, kind="vcodec", in_channels=1, features=128,
               note="FDNN + PPNN, 128 maps, gray (the paper's setting)")
register_model("vcodec-color", VirtualCodec, paper=_PAPER, kind="vcodec", in_channels=3, features=128,
               note="FDNN + PPNN, 128 maps, on RGB (beyond the paper)")
