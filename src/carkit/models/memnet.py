"""MemNet: Tai, Yang, Liu, Xu, "MemNet: A Persistent Memory Network for Image
Restoration", ICCV 2017. The residual hiding paper's second artifact-removal
baseline (../shared/papers/residual-hiding.txt, section 4.2: MemNet "performs
restoration (e.g. JPEG de-blocking) on the Y channel in the YCbCr color
space"); also in HR-CNN's Table III.

The network, as the MemNet paper builds it:

- FENet: one 3x3 convolution from the image to ``features`` maps (B_0).
- M memory blocks. Block m holds a *recursive unit*: one pre-activation
  residual building block (BN-ReLU-conv, BN-ReLU-conv, identity skip) applied
  R times, H_r = H_{r-1} + F(H_{r-1}), its convolutions shared by the R
  recursions; the R outputs are the block's short-term memory. Its *gate
  unit*, a BN-ReLU-1x1 convolution, reads the long-term memory (the outputs
  B_0 .. B_{m-1} of FENet and the earlier blocks) concatenated with the
  short-term memory, (m + R) x ``features`` maps, and writes B_m.
- ReconNet: BN-ReLU-3x3 convolution back to the image planes; global
  residual learning, ``y = x + ReconNet(B_M)``.

What is kept and what differs:

- The multi-supervised output (every B_m reconstructed by the shared
  ReconNet, the final output a learned weighted average of the M
  reconstructions) is optional: ``multi_supervision=True`` (the registered
  paper size) builds it, with weights starting at 1/M. carkit's training
  engine puts its loss on the averaged output only; the paper also adds the
  loss of every intermediate reconstruction (its alpha-weighted sum).
  ``multi_supervision=False`` (the CPU configuration) keeps only the last
  block's reconstruction.
- The recursions share their convolutions (the paper's "recursive unit");
  each recursion keeps its own BatchNorm (a few hundred parameters), because
  the statistics of H_1 .. H_R differ and shared running statistics would
  blur them at inference. ``shared=False`` gives every recursion its own
  convolutions too: that is the layout of HR-CNN's MemNet count (Table III
  lists 2,905,421 parameters; this layout unshared at M6R6 x 64 has
  2,910,535, shared 694,855).
- FENet is a plain convolution (some public ports put BN-ReLU before it, on
  the image itself).
- Same padding everywhere: any image size, output the input's size.

Configurations: ``memnet-gray`` (M=4, R=3, 48 maps; 222,577 parameters,
30 convolutions, a 53 px receptive field) is the CPU-trainable one used for
the hiding baselines, on the Y channel of color images through
``restoration/restorer.py`` (``color-via-Y``); ``memnet-gray-m6r6`` is the
paper's MemNet_M6R6 with 64 maps and the multi-supervised output (694,855
parameters), registered to be built and counted, not trained here (too
slow to train on a CPU).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model

_PAPER = "Tai et al., MemNet: A Persistent Memory Network for Image Restoration, ICCV 2017"


def bn_relu_conv(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    """The paper's pre-activation unit."""
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, kernel, padding=kernel // 2))


def _conv_pair(features: int) -> nn.ModuleList:
    return nn.ModuleList(nn.Conv2d(features, features, 3, padding=1) for _ in range(2))


class MemoryBlock(nn.Module):
    """One memory block: a recursive unit of R recursions and a gate unit
    over ``long_term`` earlier outputs plus the R recursion outputs.

    The shared convolutions are stored once (``convs[0]``), so the state dict
    has no aliased tensors (safetensors refuses them); ``norms[r]`` are the
    BatchNorms of recursion r.

    Shape: ``forward(x, memory)`` with x (N, F, H, W) (= the last entry of
    ``memory``, the list of long-term memories) -> (N, F, H, W)."""

    def __init__(self, features: int, recursions: int, long_term: int, shared: bool = True):
        super().__init__()
        if recursions < 1:
            raise ValueError("recursions must be at least 1")
        self.shared = bool(shared)
        self.convs = nn.ModuleList(_conv_pair(features) for _ in range(1 if shared else recursions))
        self.norms = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(features) for _ in range(2))
                                   for _ in range(recursions))
        self.gate = bn_relu_conv((long_term + recursions) * features, features, kernel=1)

    def forward(self, x: torch.Tensor, memory: list[torch.Tensor]) -> torch.Tensor:
        relu = nn.functional.relu
        short = []
        for r, (bn1, bn2) in enumerate(self.norms):
            conv1, conv2 = self.convs[0 if self.shared else r]
            x = x + conv2(relu(bn2(conv1(relu(bn1(x))))))
            short.append(x)
        return self.gate(torch.cat(memory + short, dim=1))


class MemNet(nn.Module):
    """MemNet (module docstring): FENet, M memory blocks of R recursions each,
    ReconNet, global residual.

    Shape: (N, C, H, W) -> (N, C, H, W) for any H, W.

    Example:
        >>> net = MemNet(in_channels=1, features=16, blocks=2, recursions=2)
        >>> net(torch.rand(1, 1, 33, 47)).shape
        torch.Size([1, 1, 33, 47])
    """

    def __init__(self, in_channels: int = 1, features: int = 64, blocks: int = 6, recursions: int = 6,
                 multi_supervision: bool = False, shared: bool = True, zero_tail: bool = False):
        super().__init__()
        if blocks < 1:
            raise ValueError("blocks must be at least 1")
        self.in_channels = in_channels
        self.multi_supervision = bool(multi_supervision)
        self.head = nn.Conv2d(in_channels, features, 3, padding=1)
        self.blocks = nn.ModuleList(MemoryBlock(features, recursions, m + 1, shared) for m in range(blocks))
        self.tail = bn_relu_conv(features, in_channels)
        if zero_tail:  # start as the identity (not the paper's; see models/dncnn.py's zero_tail)
            nn.init.zeros_(self.tail[-1].weight)
            nn.init.zeros_(self.tail[-1].bias)
        if self.multi_supervision:
            self.weights = nn.Parameter(torch.full((blocks,), 1.0 / blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        memory = [self.head(x)]
        for block in self.blocks:
            memory.append(block(memory[-1], memory))
        if not self.multi_supervision:
            return x + self.tail(memory[-1])
        outs = torch.stack([x + self.tail(b) for b in memory[1:]])
        return torch.einsum("m,m...->...", self.weights.to(outs.dtype), outs)


register_model("memnet-gray", MemNet, paper=_PAPER, in_channels=1, features=48, blocks=4, recursions=3,
               note="MemNet M4R3 x 48 maps (CPU size), shared recursive units, last-block output; gray / Y")
register_model("memnet-gray-m6r6", MemNet, paper=_PAPER, in_channels=1, features=64, blocks=6, recursions=6,
               multi_supervision=True,
               note="the paper's MemNet_M6R6 x 64 maps with the multi-supervised average (built, not trained here)")
