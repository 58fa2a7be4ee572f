"""BlockCNN: Maleki, Nadalian, Derakhshani, Sadeghi, "BlockCNN: A Deep Network
for Artifact Removal and Image Compression", CVPR Workshops 2018.

One architecture, two jobs (paper Fig. 1 and 3):

* **artifact removal**: the input is an 8x8 JPEG block with its eight
  neighbours (a 24x24 window), the output the restored centre block; the
  network predicts the artifact as a residual added to the centre;
* **prediction** (the codec, section 2.3): the same network sees only the
  four causal neighbours (the three blocks above and the one to the left; the
  other five are masked) and outputs the centre block itself.

Network: ``num_convs`` 3x3 convolutions with leaky ReLU, then
``num_res_blocks`` residual blocks (conv, batch norm, leaky ReLU, conv, batch
norm, identity skip, eq. 1), then a 3x3 convolution to the image channels,
read out on the centre 8x8. The paper's artifact remover has 9 residual
blocks; it gives no widths, so ``width`` is ours (64 for the paper
configuration).

Whole images (``forward``): the image is padded to a multiple of 8 plus one
block of edge-replicated border, every block's 24x24 window is cut out with
``unfold`` (stride 8), all windows run through the network in a few large
batches, and the 8x8 outputs are folded back. Each output block depends on
exactly its own 24x24 window, as in the paper, never on more.

Differs from the paper:
- colour: the paper trains in Lab; ``color_space`` picks "lab", "ycbcr" or
  "rgb" (the model converts its RGB input itself, so callers always pass RGB
  in [0, 1]); gray models see one channel;
- the predictor reads only the top 16 rows of its window: the bottom row of
  blocks is always masked, so it is cut off rather than fed as zeros (a third
  less work); the masked centre and right blocks of the middle row are zeros;
- Adam's weight decay is applied decoupled (AdamW), by the training engine;
- the CPU-sized removers train under bf16 autocast and, with
  ``bf16_inference``, also infer under it on CPU in eval mode. The codec's
  predictor never does: it must be exact
  (``carkit.models.exact``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .registry import register_model

BLOCK = 8
WINDOW = 3 * BLOCK
COLOR_SPACES = ("lab", "ycbcr", "rgb")


class BlockResidual(nn.Module):
    """Fig. 3 (bottom): conv, BN, leaky ReLU, conv, BN, plus the input (eq. 1)."""

    def __init__(self, channels: int, negative_slope: float = 0.2):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


# Lab in CIE units -> roughly [0, 1] per channel (a, b span about +-110 in sRGB).
_LAB_SCALE = (100.0, 220.0, 220.0)
_LAB_OFFSET = (0.0, 110.0, 110.0)


def to_model_space(rgb: torch.Tensor, color_space: str) -> torch.Tensor:
    """RGB in [0, 1] -> the model's working space, each channel about [0, 1]."""
    if rgb.shape[1] == 1 or color_space == "rgb":
        return rgb
    from .. import color

    if color_space == "ycbcr":
        return color.rgb_to_ycbcr_jpeg(rgb)
    lab = color.rgb_to_lab(rgb.float())
    off = lab.new_tensor(_LAB_OFFSET).view(1, 3, 1, 1)
    scale = lab.new_tensor(_LAB_SCALE).view(1, 3, 1, 1)
    return ((lab + off) / scale).to(rgb.dtype)


def from_model_space(x: torch.Tensor, color_space: str) -> torch.Tensor:
    """Inverse of :func:`to_model_space` (not clipped)."""
    if x.shape[1] == 1 or color_space == "rgb":
        return x
    from .. import color

    if color_space == "ycbcr":
        return color.ycbcr_jpeg_to_rgb(x)
    off = x.new_tensor(_LAB_OFFSET).view(1, 3, 1, 1)
    scale = x.new_tensor(_LAB_SCALE).view(1, 3, 1, 1)
    return color.lab_to_rgb((x.float() * scale - off)).to(x.dtype)


def image_windows(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Every 8x8 block's 24x24 window of an image.

    ``x`` (N, C, H, W) is padded at the bottom/right to a multiple of 8 and by
    one block of edge replication all round. Returns windows
    (N * Hb * Wb, C, 24, 24) in raster order per image and the block grid
    (Hb, Wb).
    """
    n, c, h, w = x.shape
    hb, wb = -(-h // BLOCK), -(-w // BLOCK)
    padded = F.pad(x, (BLOCK, BLOCK + wb * BLOCK - w, BLOCK, BLOCK + hb * BLOCK - h), mode="replicate")
    return sliding_windows(padded), (hb, wb)


def sliding_windows(x: torch.Tensor) -> torch.Tensor:
    """Every 24x24 window at stride 8 inside ``x`` (N, C, H, W), H and W
    multiples of 8 and at least 24: (N * (H/8 - 2) * (W/8 - 2), C, 24, 24),
    raster order per image; window k's centre is block k of the interior."""
    n, c, h, w = x.shape
    if h % BLOCK or w % BLOCK or min(h, w) < WINDOW:
        raise ValueError(f"BlockCNN windows need sides that are multiples of 8 and at least 24, got {h}x{w}")
    cols = F.unfold(x, WINDOW, stride=BLOCK)  # (N, C*24*24, L)
    return cols.transpose(1, 2).reshape(-1, c, WINDOW, WINDOW)


def fold_blocks(blocks: torch.Tensor, n: int, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Inverse of the block layout of :func:`image_windows`: (N*Hb*Wb, C, 8, 8)
    blocks in raster order -> (N, C, H, W), cropped to ``size``."""
    hb, wb = grid
    c = blocks.shape[1]
    img = (blocks.reshape(n, hb, wb, c, BLOCK, BLOCK).permute(0, 3, 1, 4, 2, 5)
           .reshape(n, c, hb * BLOCK, wb * BLOCK))
    return img[:, :, :size[0], :size[1]]


def mask_causal(windows: torch.Tensor) -> torch.Tensor:
    """The predictor's view of 24x24 windows: the top 16 rows, with the centre
    and right blocks of the middle row zeroed (paper Fig. 1, bottom)."""
    top = windows[:, :, :2 * BLOCK].clone()
    top[:, :, BLOCK:, BLOCK:] = 0
    return top


class BlockCNN(nn.Module):
    """BlockCNN (see the module docstring).

    ``forward_windows``: (N, C, 24, 24) windows in the model's colour space ->
    (N, C, 8, 8) centre blocks in that space. For a ``causal`` model the
    windows may be full 24x24 (masked here) or already the 16x24 causal view.

    ``forward``: (N, C, H, W) RGB (or gray) in [0, 1], any size -> same shape;
    every block restored from its own window (artifact removal). A causal
    model's ``forward`` predicts every block from the *given* image's causal
    neighbours at once (teacher forcing); the codec predicts block by block
    from decoded blocks instead (``carkit.codecs.blockcnn.codec``).

    Example::

        >>> net = BlockCNN(in_channels=3, width=32, num_res_blocks=2)
        >>> net(torch.rand(1, 3, 37, 50)).shape
        torch.Size([1, 3, 37, 50])
    """

    def __init__(self, in_channels: int = 3, width: int = 64, num_convs: int = 2,
                 num_res_blocks: int = 9, negative_slope: float = 0.2, color_space: str = "lab",
                 causal: bool = False, chunk: int = 1024, bf16_inference: bool = False):
        super().__init__()
        if color_space not in COLOR_SPACES:
            raise ModelError(f"color_space must be one of {COLOR_SPACES}, got {color_space!r}")
        if num_convs < 1:
            raise ModelError("num_convs must be at least 1")
        self.in_channels = in_channels
        self.color_space = color_space
        self.causal = causal
        self.chunk = chunk
        self.bf16_inference = bf16_inference
        layers: list[nn.Module] = []
        ch = in_channels
        for _ in range(num_convs):
            layers += [nn.Conv2d(ch, width, 3, padding=1), nn.LeakyReLU(negative_slope, inplace=True)]
            ch = width
        self.head = nn.Sequential(*layers)
        self.body = nn.Sequential(*[BlockResidual(width, negative_slope) for _ in range(num_res_blocks)])
        self.tail = nn.Conv2d(width, in_channels, 3, padding=1)
        if not causal:
            # Start as the identity: the residual branch begins at zero.
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward_windows(self, windows: torch.Tensor) -> torch.Tensor:
        if self.causal:
            x = mask_causal(windows) if windows.shape[-2] == WINDOW else windows
        else:
            x = windows
        feats = self.body(self.head(x))
        out = self.tail(feats)[:, :, BLOCK:2 * BLOCK, BLOCK:2 * BLOCK]
        if self.causal:
            return out
        return windows[:, :, BLOCK:2 * BLOCK, BLOCK:2 * BLOCK] + out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ModelError(f"BlockCNN expects {self.in_channels} channels, got {x.shape[1]}")
        n, _, h, w = x.shape
        windows, grid = image_windows(to_model_space(x, self.color_space))
        # channels_last: faster on CPU for these small windows, same arithmetic.
        windows = windows.contiguous(memory_format=torch.channels_last)
        fast = self.bf16_inference and not self.training and windows.device.type == "cpu"
        with torch.autocast("cpu", torch.bfloat16, enabled=fast):
            outs = [self.forward_windows(windows[i:i + self.chunk]).float()
                    for i in range(0, windows.shape[0], self.chunk)]
        blocks = torch.cat(outs) if len(outs) > 1 else outs[0]
        return from_model_space(fold_blocks(blocks, n, grid, (h, w)), self.color_space)


_PAPER = "Maleki et al., BlockCNN: A Deep Network for Artifact Removal and Image Compression, CVPRW 2018"
register_model("blockcnn", BlockCNN, paper=_PAPER, in_channels=3, width=64, num_res_blocks=9,
               color_space="lab", bf16_inference=True,
               note="artifact remover at the paper's depth (9 residual blocks, width 64), Lab")
register_model("blockcnn-color", BlockCNN, paper=_PAPER, in_channels=3, width=32, num_res_blocks=9,
               color_space="lab", bf16_inference=True,
               note="CPU-sized artifact remover: the paper's depth at width 32; Lab by default as in the "
                    "paper (the shipped weights use RGB, which measured better at equal budget)")
register_model("blockcnn-predictor", BlockCNN, paper=_PAPER, in_channels=1, width=32,
               num_res_blocks=5, causal=True, color_space="rgb", kind="predictor",
               note="causal block predictor of the BlockCNN codec (one plane: Y, Cb or Cr)")
