"""ResUNet: carkit's CPU-efficient blind restorer.

Not from one of the five papers: a multi-scale residual U-Net, the backbone
shape that DAGN's base encoder/decoder and FBCNN use (strided-conv
downsampling, residual blocks at each scale, transposed-conv upsampling, skip
additions, a global residual). Chosen over DnCNN-3 for the foundation's blind
gray model because most of its work runs at 1/2..1/8 resolution: on a CPU
it trains more iterations per hour than a 20-layer full-resolution DnCNN and sees a far larger receptive field (JPEG blocking at
QF 10 spans more than DnCNN's 41x41 field of view in flat regions). The
full-resolution scale gets one residual block, the coarser ones two: that is
where the compute is cheap.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class ResUNet(nn.Module):
    """Shape: (N, C, H, W) -> (N, C, H, W) for any H, W (pads to a multiple of
    2**(scales-1) by edge replication internally and crops back).

    ``out_channels`` (default ``in_channels``) lets the input carry more
    planes than the output: the output is then the first ``out_channels``
    input planes plus the learned correction (residual hiding's encoder
    reads the image and its compression residual, and outputs an image).
    ``correction(x)`` is that learned term alone (the tail is zero-initialised,
    so a fresh network is the identity on those planes)."""

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (32, 64, 128, 256),
                 blocks: int | tuple[int, ...] = (1, 2, 2, 2), out_channels: int | None = None):
        super().__init__()
        self.channels = tuple(channels)
        self.out_channels = in_channels if out_channels is None else int(out_channels)
        if not 1 <= self.out_channels <= in_channels:
            raise ValueError("out_channels must be between 1 and in_channels")
        blocks = tuple(blocks) if isinstance(blocks, (tuple, list)) else (blocks,) * len(channels)
        if len(blocks) != len(channels):
            raise ValueError("blocks needs one count per scale")
        self.head = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, ch in enumerate(channels):
            self.encoders.append(nn.Sequential(*[ResBlock(ch) for _ in range(blocks[i])]))
            if i + 1 < len(channels):
                self.downs.append(nn.Conv2d(ch, channels[i + 1], 2, stride=2))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in range(len(channels) - 1, 0, -1):
            self.ups.append(nn.ConvTranspose2d(channels[i], channels[i - 1], 2, stride=2))
            self.decoders.append(nn.Sequential(*[ResBlock(channels[i - 1]) for _ in range(blocks[i - 1])]))
        self.tail = nn.Conv2d(channels[0], self.out_channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :self.out_channels] + self.correction(x)

    def grown_state(self, state: dict, prefix: str = "") -> dict:
        """``state`` (tensors named ``prefix`` + parameter name) of a ResUNet
        with fewer scales, renamed for this one, with the new coarser scales
        started as a no-op, so this net computes exactly what that one did.

        Grows a trained net's capacity and field of view without a fresh
        start (as in Net2Net's function-preserving growth, Chen et al. 2016):
        the shallower net's coarsest scale becomes this net's encoder stage
        at that scale; the scales below it are new; their first upsampling
        (and bias) starts at zero and the residual blocks that read it at
        identity (second convolution zero), so the skip alone goes on. The
        new scales' other tensors are not in the result (they keep their
        initialisation). A state already of this depth, or of another
        module, comes back unchanged."""
        def local_parts(name: str) -> list[str] | None:   # None: a tensor of another module
            return name[len(prefix):].split(".") if name.startswith(prefix) else None

        old_scales = {int(p[1]) for p in map(local_parts, state) if p and p[0] == "ups"}
        shift = len(self.ups) - len(old_scales)
        if not old_scales or shift <= 0:
            return state
        out = {}
        for name, tensor in state.items():
            part = local_parts(name)
            if part and part[0] in ("ups", "decoders"):   # decoders run coarsest first: old index i is i + shift
                part[1] = str(int(part[1]) + shift)
                name = prefix + ".".join(part)
            out[name] = tensor
        for local, tensor in self.state_dict().items():   # the new scales' upsampling, and the blocks reading it
            part = local.split(".")
            if part[0] in ("ups", "decoders") and int(part[1]) < shift and (part[0] == "ups" or part[3] == "conv2"):
                out[prefix + local] = torch.zeros_like(tensor)
        return out

    def correction(self, x: torch.Tensor) -> torch.Tensor:
        """The learned term that ``forward`` adds to the input planes."""
        h, w = x.shape[-2:]
        m = 2 ** (len(self.channels) - 1)
        ph, pw = (-h) % m, (-w) % m
        xp = nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
        f = self.head(xp)
        skips = []
        for i, enc in enumerate(self.encoders):
            f = enc(f)
            if i < len(self.downs):
                skips.append(f)
                f = self.downs[i](f)
        for up, dec in zip(self.ups, self.decoders):
            f = dec(up(f) + skips.pop())
        return self.tail(f)[..., :h, :w]


_NOTE = "residual U-Net, 4 scales 32/64/128/256, 1/2/2/2 res blocks a scale"
register_model("resunet-gray", ResUNet, note=_NOTE + ", gray", in_channels=1)
register_model("resunet-color", ResUNet, note=_NOTE + ", RGB", in_channels=3)
