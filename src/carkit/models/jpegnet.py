"""JpegNet: a restorer built around JPEG's own structure.

Not from one of the five papers. Ideas borrowed: pixel-unshuffled trunks
(as in fast super-resolution and FBCNN-style U-Nets at reduced resolution),
quality conditioning from the file's quantization tables (as QGAC, Ehrlich et
al. 2020, and JDEC read them), FiLM (Perez et al. 2018) for the conditioning,
and chroma restored at its coded resolution with luma guidance (QGAC, JDEC).

Structure, for an RGB input in [0, 1] converted to JFIF YCbCr
(:func:`carkit.color.rgb_to_ycbcr_jpeg`, the colour space the file was coded in):

* Luma branch: ``PixelUnshuffle(2)`` of Y (plus the chroma at half size as
  extra planes, zero for gray), a three-scale residual U-Net at 1/2, 1/4 and
  1/8 of the resolution (so the coarsest cell is one 8x8 JPEG block), and
  ``PixelShuffle(2)`` back to a residual on the decoded Y.
* Chroma branch, at 4:2:0's coded resolution: the decoded Cb/Cr averaged
  over 2x2, the restored Y unshuffled by 2 and the luma branch's last
  features, a two-scale residual U-Net, then a learned upsampling
  (``PixelShuffle(2)``) refined at full resolution with the restored Y as
  guidance, added as a residual to the decoded (full-size) Cb/Cr. 4:4:4 and
  4:2:2 files take the same path.
* Conditioning: the luma and chroma quantization tables (64 values each, as
  read from the file, normalised as log(q)/log(255)) go through a small MLP
  that gives every residual block a per-channel scale and shift (FiLM), so
  one model serves every quality.

A gray (1-channel) input runs the luma branch only and returns 1 channel.
The image is padded (edge replication) at the bottom/right to a multiple of
8, which keeps the JPEG block grid at the origin, and cropped back.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..color import rgb_to_ycbcr_jpeg, ycbcr_jpeg_to_rgb
from .registry import register_model


def normalise_table(table, batch: int, device, dtype=torch.float32) -> torch.Tensor:
    """A quantization table (64 values, (8, 8) natural order, or a batch of
    either; tensor or array) -> (batch, 64) log(q)/log(255)."""
    t = torch.as_tensor(table, dtype=torch.float32, device=device).reshape(-1, 64)
    if t.shape[0] == 1 and batch > 1:
        t = t.expand(batch, 64)
    if t.shape[0] != batch:
        raise ValueError(f"{t.shape[0]} tables for a batch of {batch}")
    return (t.clamp(min=1.0).log() / math.log(255.0)).to(dtype)


def default_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """IJG tables at quality 50: what the model assumes when given none."""
    from ..jpeg.tables import ijg_tables

    lum, chrom = ijg_tables(50)
    return torch.from_numpy(lum).float(), torch.from_numpy(chrom).float()


class FilmBlock(nn.Module):
    """Residual block ``x + conv2(relu(film(conv1(x))))``; its FiLM scale and
    shift come from the conditioning vector (zero-initialised: identity FiLM)."""

    def __init__(self, channels: int, cond: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(cond, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(c).to(x.dtype)[:, :, None, None].chunk(2, dim=1)
        h = self.conv1(x)
        h = F.relu(h * (1 + gamma) + beta)
        return x + self.conv2(h)


class Stage(nn.Module):
    def __init__(self, channels: int, blocks: int, cond: int):
        super().__init__()
        self.blocks = nn.ModuleList(FilmBlock(channels, cond) for _ in range(blocks))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x, c)
        return x


class CondUNet(nn.Module):
    """A residual U-Net whose blocks are FiLM-conditioned; returns the last
    decoder features (channels[0] planes at the input's resolution)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], enc_blocks: tuple[int, ...],
                 dec_blocks: tuple[int, ...], cond: int):
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.encoders = nn.ModuleList(Stage(ch, n, cond) for ch, n in zip(channels, enc_blocks))
        self.downs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 2, stride=2)
                                   for i in range(len(channels) - 1))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(channels[i], channels[i - 1], 2, stride=2)
                                 for i in range(len(channels) - 1, 0, -1))
        self.decoders = nn.ModuleList(Stage(channels[i - 1], dec_blocks[i - 1], cond)
                                      for i in range(len(channels) - 1, 0, -1))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        skips = []
        for i, enc in enumerate(self.encoders):
            f = enc(f, c)
            if i < len(self.downs):
                skips.append(f)
                f = self.downs[i](f)
        for up, dec in zip(self.ups, self.decoders):
            f = dec(up(f) + skips.pop(), c)
        return f


class JpegNet(nn.Module):
    """Shape: (N, 3, H, W) RGB or (N, 1, H, W) gray in [0, 1] -> same shape,
    any H, W.

    ``forward(x, luma_table=None, chroma_table=None)``: the tables are the
    file's quantization tables (64 values in natural order or (8, 8), one for
    the batch or one per image; integers 1..255 as in the DQT marker). None
    means the IJG tables of quality 50; a gray file has only the luma table
    (``chroma_table`` is then ignored; for colour, a missing chroma table
    is taken to be the luma one).

    Example:
        >>> import torch
        >>> from carkit.jpeg.tables import ijg_tables
        >>> net = JpegNet().eval()
        >>> lum, chrom = ijg_tables(30)
        >>> net(torch.rand(1, 3, 37, 50), lum, chrom).shape
        torch.Size([1, 3, 37, 50])
    """

    #: restore passes the file's quantization tables (forward's luma_table, chroma_table)
    takes_tables = True
    #: gray files (1 channel) and colour ones (3) alike
    accepts_channels = (1, 3)
    #: tile origins on the 4:2:0 MCU grid, so tiles see the file's chroma blocks
    tile_align = 16

    def __init__(self, in_channels: int = 3, luma_channels: tuple[int, ...] = (48, 96, 192),
                 luma_enc_blocks: tuple[int, ...] = (1, 1, 2), luma_dec_blocks: tuple[int, ...] = (1, 1),
                 chroma_channels: tuple[int, ...] = (32, 64), chroma_enc_blocks: tuple[int, ...] = (1, 2),
                 chroma_dec_blocks: tuple[int, ...] = (1,), cond_channels: int = 128,
                 refine_channels: int = 16):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError("in_channels must be 1 (gray) or 3 (RGB)")
        self.in_channels = in_channels   # the registry's test input; forward takes either
        self.cond = nn.Sequential(nn.Linear(128, cond_channels), nn.ReLU(inplace=True),
                                  nn.Linear(cond_channels, cond_channels), nn.ReLU(inplace=True))
        lc, cc = tuple(luma_channels), tuple(chroma_channels)
        # luma: unshuffled Y (4) + chroma at half size (2)
        self.luma = CondUNet(6, lc, tuple(luma_enc_blocks), tuple(luma_dec_blocks), cond_channels)
        self.luma_tail = nn.Conv2d(lc[0], 4, 3, padding=1)
        # chroma: Cb/Cr at half size (2) + restored Y unshuffled (4) + luma features
        self.chroma = CondUNet(6 + lc[0], cc, tuple(chroma_enc_blocks), tuple(chroma_dec_blocks),
                               cond_channels)
        self.chroma_up = nn.Conv2d(cc[0], 4 * refine_channels, 3, padding=1)
        # full-resolution refinement: upsampled features + restored Y + decoded Cb/Cr
        self.refine1 = nn.Conv2d(refine_channels + 3, refine_channels, 3, padding=1)
        self.refine2 = nn.Conv2d(refine_channels, 2, 3, padding=1)
        for tail in (self.luma_tail, self.refine2):   # a fresh net is the identity
            nn.init.zeros_(tail.weight)
            nn.init.zeros_(tail.bias)
        self.multiple = 2 ** len(lc)   # unshuffle 2, then len(lc) - 1 halvings

    def conditioning(self, batch: int, device, luma_table=None, chroma_table=None) -> torch.Tensor:
        if luma_table is None:
            luma_table, default_chroma = default_tables()
            chroma_table = default_chroma if chroma_table is None else chroma_table
        if chroma_table is None:
            chroma_table = luma_table
        t = torch.cat([normalise_table(luma_table, batch, device),
                       normalise_table(chroma_table, batch, device)], dim=1)
        return self.cond(t)

    def forward(self, x: torch.Tensor, luma_table=None, chroma_table=None) -> torch.Tensor:
        n, ch, h, w = x.shape
        if ch not in (1, 3):
            raise ValueError(f"JpegNet takes 1 (gray) or 3 (RGB) channels, got {ch}")
        c = self.conditioning(n, x.device, luma_table, chroma_table)
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
        if ch == 1:
            y = xp
            cbcr_half = torch.zeros(n, 2, (h + ph) // 2, (w + pw) // 2, dtype=x.dtype, device=x.device)
        else:
            ycc = rgb_to_ycbcr_jpeg(xp)
            y, cbcr = ycc[:, :1], ycc[:, 1:]
            cbcr_half = F.avg_pool2d(cbcr, 2) - 128.0 / 255.0
        feats = self.luma(torch.cat([F.pixel_unshuffle(y, 2), cbcr_half], dim=1), c)
        y_out = y + F.pixel_shuffle(self.luma_tail(feats), 2)
        if ch == 1:
            return y_out[..., :h, :w]
        g = self.chroma(torch.cat([cbcr_half, F.pixel_unshuffle(y_out, 2), feats], dim=1), c)
        up = F.pixel_shuffle(self.chroma_up(g), 2)
        r = self.refine2(F.relu(self.refine1(torch.cat([F.relu(up), y_out, cbcr - 128.0 / 255.0], dim=1))))
        out = ycbcr_jpeg_to_rgb(torch.cat([y_out, cbcr + r], dim=1))
        return out[..., :h, :w]


_NOTE = ("JPEG-structured restorer: luma U-Net at 1/2..1/8 (pixel-unshuffled), chroma at the coded "
         "4:2:0 grid with luma guidance and learned upsampling, FiLM from the quantization tables")
register_model("jpegnet", JpegNet, note=_NOTE + "; RGB or gray in, tables as inputs", in_channels=3)
