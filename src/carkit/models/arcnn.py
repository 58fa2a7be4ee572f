"""ARCNN: Dong, Deng, Loy, Tang, "Compression Artifacts Reduction by a Deep
Convolutional Network", ICCV 2015. The baseline of BlockCNN and HR-CNN.

Four convolutions: feature extraction 9x9x64, feature enhancement 7x7x32,
mapping 1x1x16, reconstruction 5x5, PReLU after the first three.

Differs from the paper: 'same' zero padding so the output keeps the input's
size (the paper trains on valid convolutions and crops labels); with
``residual=True`` (the registered configuration) the network predicts the
correction added to its input, which trains much faster with Adam than the
paper's plain mapping with SGD; trained here with Adam, not SGD.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


class ARCNN(nn.Module):
    def __init__(self, in_channels: int = 1, features: tuple[int, int, int] = (64, 32, 16),
                 kernels: tuple[int, int, int, int] = (9, 7, 1, 5), residual: bool = True):
        super().__init__()
        f1, f2, f3 = features
        k1, k2, k3, k4 = kernels
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, f1, k1, padding=k1 // 2), nn.PReLU(f1),
            nn.Conv2d(f1, f2, k2, padding=k2 // 2), nn.PReLU(f2),
            nn.Conv2d(f2, f3, k3, padding=k3 // 2), nn.PReLU(f3),
            nn.Conv2d(f3, in_channels, k4, padding=k4 // 2),
        )
        # Small last layer, as the paper initialises it (std 0.001).
        nn.init.normal_(self.body[-1].weight, std=1e-3)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


_PAPER = "Dong et al., Compression Artifacts Reduction by a Deep Convolutional Network, ICCV 2015"
register_model("arcnn-gray", ARCNN, paper=_PAPER, in_channels=1,
               note="ARCNN 64-32-16, 9-7-1-5 kernels, residual output, gray")
register_model("arcnn-color", ARCNN, paper=_PAPER, in_channels=3,
               note="ARCNN on RGB (untrained configuration)")
