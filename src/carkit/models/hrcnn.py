"""HR-CNN: Niu, "End-to-End JPEG Decoding and Artifacts Suppression Using
Heterogeneous Residual Convolutional Neural Network", IJCNN 2020 (section II-B).

The input is the JPEG's *k-space code*, a plane whose 8x8 blocks hold the
quantized DCT levels (``carkit.jpeg.kspace``); the output is the restored
pixel plane, so no pixel decoder runs at all.

Layers, as the paper specifies them (parameters in brackets):

1. channel extraction (eqs. 1-4): 64 fixed binary coded-mask kernels of 8x8,
   stride 8, no bias; mask ``ch`` is one at row ``ch mod 8``, column
   ``ch // 8`` (eq. 2), so channel ``ch`` is that coefficient of every block.
   a fixed buffer, not a parameter: excluded from training, as the paper
  says [0];
2. spectral reconstruction (eq. 5): a transposed convolution 64 -> 64, 8x8,
   stride 8, with bias [262,208];
3. decoding (eq. 6): conv 5x5 64 -> 8, conv 3x3 8 -> 1, then ReLU
   [12,808 + 73];
4. detail enhancement (eq. 7): four residual blocks of conv 11x11 1 -> 64,
   conv 7x7 64 -> 16, conv 1x1 16 -> 1, plus the block's input [4 x 58,017];
   ReLU on the output (eq. 8).

Trainable parameters: decoding 275,089 + detail enhancement 232,068 =
507,157, the paper's Table III exactly (tested).

Choices where the paper is silent or ambiguous:

* **activations inside the residual blocks**: eq. 7 writes none, which would
  make the four blocks one linear filter. ``inner_act="relu"`` (default)
  puts a ReLU after the 11x11 and the 7x7 convolutions, the SRCNN-like
  pattern the kernel sizes follow and the better of the two in training;
  ``"none"`` is eq. 7 read literally;
* **the ReLU of the decoding segment**: the text says "applied to F_5" in
  the decoding paragraph; we apply it to that segment's output (F_4);
* **input scale**: the levels are multiplied by ``input_scale`` (1/16)
  before the first layer, a fixed constant with no parameters, so that
  levels of up to about +-1000 do not swamp Adam's first steps;
* **padding**: zero "same" padding for every convolution (the paper keeps
  the image size);
* **output**: pixels in [0, 1] (the paper's 0-255 divided by 255);
* **initialisation** (the paper does not give one): with ``init_quality``
  (or always, for ``dequantize``), the reconstruction and decoding layers
  start as the JPEG decoder itself: the transposed convolution's first
  output channel holds the 64 IDCT basis images times the quality's table
  (:meth:`HRCNN.init_as_jpeg_decoder`), the two decoding convolutions pass
  that channel through, and each residual block's last convolution starts
  at zero. Training then starts at JPEG's PSNR instead of from a black
  image, which matters on a CPU budget; everything stays trainable.

Beyond the paper: ``dequantize=True`` reads the dequantized code (level
times table, over 8; see :meth:`HRCNN.prepare`), so one model can serve
every quality, the table then being a required input; :class:`HRCNNColor`
reads a colour file's three planes at their own resolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .registry import register_model

BLOCK = 8
SPECTRA = BLOCK * BLOCK


def coded_masks() -> torch.Tensor:
    """The 64 binary kernels of eq. 2: (64, 1, 8, 8), kernel ``ch`` one at
    (row ``ch mod 8``, column ``ch // 8``)."""
    masks = torch.zeros(SPECTRA, 1, BLOCK, BLOCK)
    for ch in range(SPECTRA):
        masks[ch, 0, ch % BLOCK, ch // BLOCK] = 1.0
    return masks


class DetailBlock(nn.Module):
    """One residual block of eq. 7: 11x11 -> 64, 7x7 -> 16, 1x1 -> ``channels``,
    plus the block's input (``channels`` is 1 in the paper, 3 for colour)."""

    def __init__(self, inner_act: str = "relu", channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 11, padding=5)
        self.conv2 = nn.Conv2d(64, 16, 7, padding=3)
        self.conv3 = nn.Conv2d(16, channels, 1)
        self.act = nn.ReLU(inplace=True) if inner_act == "relu" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


class SpectralDecoder(nn.Module):
    """Layers 1-4 (eqs. 4-6): coded-mask channel extraction (a fixed buffer),
    spectral reconstruction, the two decoding convolutions and their ReLU.
    Input: a prepared k-space plane (N, 1, H, W); output: the decoded plane."""

    def __init__(self):
        super().__init__()
        self.register_buffer("masks", coded_masks(), persistent=False)
        self.spectral = nn.ConvTranspose2d(SPECTRA, SPECTRA, BLOCK, stride=BLOCK)
        self.decode1 = nn.Conv2d(SPECTRA, 8, 5, padding=2)
        self.decode2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        snapshots = F.conv2d(x, self.masks.to(x.dtype), stride=BLOCK)  # eq. 4
        return F.relu(self.decode2(self.decode1(self.spectral(snapshots))))

    @torch.no_grad()
    def init_as_jpeg_decoder(self, step: torch.Tensor, keep: float = 0.01) -> None:
        """Start as JPEG decoding: ``step`` (8, 8) is the coefficient one unit
        of the prepared input stands for, in 0-255 units (the table over the
        input scale, for levels). The transposed convolution's first output
        channel gets the 64 IDCT basis images times ``step`` / 255, plus
        128/255; the decoding convolutions pass that channel through; every
        other initial weight is scaled by ``keep`` (small, still trainable)."""
        from ..jpeg.dct import dct_matrix

        d = dct_matrix(BLOCK, dtype=torch.float64)
        w = self.spectral.weight
        w.mul_(keep)
        for ch in range(SPECTRA):
            v, u = ch % BLOCK, ch // BLOCK  # the coefficient mask ch extracts (eq. 2)
            w[ch, 0] = (torch.outer(d[v], d[u]) * step[v, u] / 255.0).to(w.dtype)
        self.spectral.bias.mul_(keep)
        self.spectral.bias[0] = 128.0 / 255.0
        for conv in (self.decode1, self.decode2):
            conv.weight.mul_(keep)
            conv.bias.zero_()
            k = conv.kernel_size[0] // 2
            conv.weight[0, 0, k, k] = 1.0


def _zero_last(details: nn.Sequential) -> None:
    with torch.no_grad():
        for block in details:
            block.conv3.weight.zero_()
            block.conv3.bias.zero_()


def _tile_table(table, n_blocks_h: int, n_blocks_w: int, like: torch.Tensor) -> torch.Tensor:
    """(8, 8) or (N, 8, 8) table -> (1 or N, 1, H, W) plane matching ``like``."""
    t = torch.as_tensor(table, dtype=like.dtype, device=like.device)
    if t.ndim == 2:
        return t.repeat(n_blocks_h, n_blocks_w)[None, None]
    return t.repeat(1, n_blocks_h, n_blocks_w)[:, None]


def _check_code(code: torch.Tensor, what: str = "HR-CNN") -> None:
    if code.ndim != 4 or code.shape[1] != 1 or code.shape[-1] % BLOCK or code.shape[-2] % BLOCK:
        raise ModelError(f"{what} reads (N, 1, H, W) k-space codes with H, W multiples of 8, "
                         f"got {tuple(code.shape)}")


class HRCNN(nn.Module):
    """HR-CNN (see the module docstring).

    ``forward(code, table=None)``: ``code`` (N, 1, H, W) quantized levels
    (H, W multiples of 8); ``table`` (8, 8) or (N, 8, 8), needed only when
    ``dequantize``. Returns (N, 1, H, W) pixels in [0, 1] (not clipped above).

    Example::

        >>> net = HRCNN()
        >>> sum(p.numel() for p in net.parameters())
        507157
        >>> net(torch.zeros(1, 1, 16, 24)).shape
        torch.Size([1, 1, 16, 24])
    """

    def __init__(self, inner_act: str = "relu", dequantize: bool = False, input_scale: float = 1 / 16,
                 init_quality: int = 0):
        super().__init__()
        if inner_act not in ("relu", "none"):
            raise ModelError(f"inner_act must be 'relu' or 'none', got {inner_act!r}")
        self.in_channels = 1
        self.dequantize = dequantize
        self.input_scale = float(input_scale)
        self.decoder = SpectralDecoder()
        self.details = nn.Sequential(*[DetailBlock(inner_act) for _ in range(4)])
        if dequantize or init_quality:
            self.init_as_jpeg_decoder(init_quality)

    @torch.no_grad()
    def init_as_jpeg_decoder(self, quality: int = 0, keep: float = 0.01) -> None:
        """Start as plain JPEG decoding of the prepared input (module
        docstring). ``quality``: the table the levels stand for (ignored when
        ``dequantize``: the input already is coefficients)."""
        from ..jpeg.tables import ijg_tables

        if self.dequantize:
            step = torch.full((BLOCK, BLOCK), 8.0 / self.input_scale, dtype=torch.float64)  # undo prepare()
        elif quality:
            step = torch.as_tensor(ijg_tables(int(quality))[0], dtype=torch.float64) / self.input_scale
        else:
            raise ModelError("init_as_jpeg_decoder needs the quality of the per-quality model")
        self.decoder.init_as_jpeg_decoder(step, keep)
        _zero_last(self.details)

    def prepare(self, code: torch.Tensor, table=None) -> torch.Tensor:
        """The network's input plane: levels (paper), or levels x table / 8
        (``dequantize``: DCT coefficients of the 0-255 image over 8, about the
        levels' range at quality 50), times ``input_scale``."""
        if not self.dequantize:
            return code * self.input_scale
        if table is None:
            raise ModelError("this HR-CNN reads dequantized coefficients: pass the quantization table")
        _, _, h, w = code.shape
        return code * _tile_table(table, h // BLOCK, w // BLOCK, code) * (self.input_scale / 8)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared input -> the decoded (pre-detail) plane, the paper's F_4."""
        return self.decoder(x)

    def forward(self, code: torch.Tensor, table=None) -> torch.Tensor:
        _check_code(code)
        return F.relu(self.details(self.features(self.prepare(code, table))))


class HRCNNColor(nn.Module):
    """Beyond the paper: HR-CNN for colour JPEGs, all qualities in one model.

    Inputs, as a JPEG file holds them: the Y levels (N, 1, H, W), the Cb and
    Cr levels (N, 1, h, w) each at their own resolution (4:2:0: h = H/2), and
    the luma and chroma tables ((8, 8) or (N, 8, 8)). Each plane is
    dequantized and decoded by the paper's layers 1-4 (one decoder for Y,
    one shared by Cb and Cr); chroma is upsampled to the luma size inside
    the network (bilinear, half-pixel centres: libjpeg's "fancy" triangle
    upsampling at 2x); the paper's four residual blocks then run on the three
    planes together (11x11 3 -> 64, 7x7 64 -> 16, 1x1 16 -> 3), and the
    result is converted from JPEG YCbCr to RGB (fixed T.871 matrix).
    Returns (N, 3, H, W) RGB in [0, 1] (ReLU, not clipped above).

    Starts as the JPEG decoder (both decoders initialised as in
    :class:`HRCNN`, residual branches at zero), so training starts at JPEG's
    PSNR. Parameters: 2 x 275,089 + 4 x 73,539 = 844,334.
    """

    def __init__(self, inner_act: str = "relu", input_scale: float = 1 / 16, in_channels: int = 3):
        super().__init__()
        if inner_act not in ("relu", "none"):
            raise ModelError(f"inner_act must be 'relu' or 'none', got {inner_act!r}")
        if in_channels != 3:
            raise ModelError("HR-CNN colour reads three planes (Y, Cb, Cr)")
        self.in_channels = 3
        self.dequantize = True
        self.input_scale = float(input_scale)
        self.luma = SpectralDecoder()
        self.chroma = SpectralDecoder()
        self.details = nn.Sequential(*[DetailBlock(inner_act, channels=3) for _ in range(4)])
        step = torch.full((BLOCK, BLOCK), 8.0 / self.input_scale, dtype=torch.float64)
        self.luma.init_as_jpeg_decoder(step)
        self.chroma.init_as_jpeg_decoder(step)
        _zero_last(self.details)

    def _prepare(self, code: torch.Tensor, table) -> torch.Tensor:
        _check_code(code, "HR-CNN colour")
        _, _, h, w = code.shape
        return code * _tile_table(table, h // BLOCK, w // BLOCK, code) * (self.input_scale / 8)

    def forward(self, y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor, luma_table, chroma_table) -> torch.Tensor:
        from ..color import ycbcr_jpeg_to_rgb

        size = y.shape[-2:]
        planes = [self.luma(self._prepare(y, luma_table))]
        for c in (cb, cr):
            decoded = self.chroma(self._prepare(c, chroma_table))
            if decoded.shape[-2:] != size:
                decoded = F.interpolate(decoded, size=size, mode="bilinear", align_corners=False)
            planes.append(decoded)
        ycc = self.details(torch.cat(planes, dim=1))
        return F.relu(ycbcr_jpeg_to_rgb(ycc))


_PAPER = ("Niu, End-to-End JPEG Decoding and Artifacts Suppression Using Heterogeneous Residual "
          "Convolutional Neural Network, IJCNN 2020")
register_model("hrcnn", HRCNN, paper=_PAPER, kind="kspace", init_quality=50,
               note="the paper's network (507,157 parameters), one model per quality, reads quantized levels "
                    "(starts as the JPEG decoder of init_quality; a random start can leave every ReLU dead)")
register_model("hrcnn-blind", HRCNN, paper=_PAPER, kind="kspace", dequantize=True,
               note="the paper's network reading dequantized coefficients: one model for all qualities")
register_model("hrcnn-color", HRCNNColor, paper=_PAPER, kind="kspace", in_channels=3,
               note="beyond the paper: Y, Cb, Cr coefficients at their own resolutions -> RGB, all qualities")
