"""DnCNN: Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian Denoiser: Residual
Learning of Deep CNN for Image Denoising", TIP 2017. DnCNN-3 is the blind
JPEG-deblocking baseline of residual hiding and DAGN.

Conv+ReLU, (depth-2) x (Conv+BN+ReLU), Conv; the network predicts the residual
(artifact) and the output is input minus it. 20 layers of 64 channels for
DnCNN-3 (the paper's blind model); same padding keeps size.

``zero_tail`` (not the paper's; it initialises orthogonally and trains with
SGD for 50 epochs) starts the last convolution at zero, so the network
starts as the identity instead of subtracting a large random residual: on a
short CPU budget at a high JPEG quality this is what lets it learn.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


class DnCNN(nn.Module):
    def __init__(self, in_channels: int = 1, depth: int = 20, features: int = 64,
                 batch_norm: bool = True, zero_tail: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(features, features, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(features))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(features, in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        if zero_tail:  # residual learning starts at the identity (see the module docstring)
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


_PAPER = "Zhang et al., Beyond a Gaussian Denoiser (DnCNN), TIP 2017"
register_model("dncnn3-gray", DnCNN, paper=_PAPER, in_channels=1, depth=20, features=64,
               note="DnCNN-3: 20 layers x 64, BN, residual; the paper's blind deblocker")
register_model("dncnn3-color", DnCNN, paper=_PAPER, in_channels=3, depth=20, features=64,
               note="DnCNN-3 on RGB")
