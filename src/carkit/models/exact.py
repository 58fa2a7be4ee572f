"""Integer-exact inference of a trained causal BlockCNN predictor.

Why: the BlockCNN codec (Maleki et al., CVPRW 2018, section 2.3) predicts each
8x8 block from already *decoded* blocks, in the encoder and again in the
decoder: "during decompression we follow the same deterministic process". A
float network is not deterministic in that sense: a convolution's sums are
reduced in an order that depends on the thread count, the batch size and
composition and the CPU, so one unit in the last place can flip a rounded
pixel, and the error then propagates through every later block. The paper
does not say how it avoids this; here every reduction is done on integers,
exactly, and everything else is elementwise.

How (:meth:`ExactPredictor.from_model`):

* every BatchNorm (eval statistics) is folded into its convolution (float64);
* activations are integers in +-(2^14 - 1) (``ACT_BITS`` = 15) with one float
  scale per channel, chosen by a calibration pass (below) so that a channel's
  largest value maps to 1/``HEADROOM`` (1.25) of the range; values beyond it
  saturate. The input is the pixel values 0..255 themselves. A channel's scale
  is folded into the next layer's weights;
* weights are integers per output channel, with a float scale chosen from the
  weights so that the channel's integer L1 norm is at most 2^24 / 128 (first
  layer: 2^24 / 255);
* convolutions run on float32 tensors holding integers. The activations are
  fed in two pieces, ``A = high * 128 + low`` with ``high`` in -128..127 and
  ``low`` in 0..127 (``PIECES`` = 2, both in one batched call), so every
  partial sum is bounded by ``128 * sum|w| <= 2^24``: every product and every
  partial sum is an integer that float32 holds exactly, whatever the order of
  summation. The result is exact, hence bit-identical on any thread count,
  batch size, batch composition or CPU. NNPACK (Winograd/FFT, not exact) is
  switched off around the calls and oneDNN's fp32 mode forced to IEEE (no
  bf16/tf32 down-conversion); oneDNN/BLAS then do plain multiply-accumulate.
  A self-test per layer compares float32 with float64 at the worst-case
  integers; should it ever fail, float64 convolutions (exact below 2^53, one
  piece) are used instead: the same numbers, only slower;
* between convolutions, everything is elementwise float32, one correctly
  rounded IEEE operation at a time, never fused: recombining the pieces
  (``high_sum * 128`` is exact, ``+ low_sum`` one rounding of exact values),
  requantization ``z * m + b``, leaky ReLU, residual adds, rounding half to
  even, clamping. Deterministic, like the sums;
* calibration data is :func:`calibration_windows`, a fixed synthetic set made
  with integer arithmetic only (smooth areas, edges, texture, stripes,
  extremes, the codec's grey border), run through this integer pipeline
  itself layer by layer. Scales therefore come out identical on every
  machine, and so does :attr:`ExactPredictor.weights_hash`, which the .bcnn
  container stores.

Two pieces, not one: an 11-bit, one-piece design is cheaper, but its
prediction noise passes straight into the reconstruction and costs PSNR at
equal rate; the two-piece design matches the float model's rate and PSNR.

Work saved: the output is the centre 8x8, and after ``d`` more convolutions
only the pixels within ``d`` of it matter, so each layer is computed on the
smallest sub-window its successors need (a third fewer MACs for the
13-convolution predictor); zero padding is applied only at the real borders
of the 16x24 view, exactly where the float model has it.

Differs from the float model only by the quantization (a few pixels +-1).

Threads: :meth:`ExactPredictor.predict` (and the codec's whole wavefront)
runs on one torch thread, :data:`PREDICT_THREADS`, the caller's count restored
after (:func:`predictor_threads`): the convolutions are too small to share
between threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelError
from .blockcnn import BLOCK, BlockCNN

__all__ = ["ExactPredictor", "calibration_windows", "torch_threads", "predictor_threads", "PREDICT_THREADS",
           "ACT_BITS", "PIECES", "SUM_BITS", "VIEW_SHAPE"]

#: Activations are integers in +-(2**(ACT_BITS-1) - 1).
ACT_BITS = 15
#: float32 convolutions see activations in this many pieces (2: high and low 7 bits).
PIECES = 2
#: Exact float32 sums: max|input piece| * sum|weights| <= 2**SUM_BITS per output channel.
SUM_BITS = 24
#: A channel's calibrated maximum maps to 1/HEADROOM of the activation range.
HEADROOM = 1.25
#: The predictor's view of a block: the top 16 rows of its 24x24 window.
VIEW_SHAPE = (2 * BLOCK, 3 * BLOCK)
_FORMAT = b"carkit-blockcnn-exact-v2"


# ---------------------------------------------------------------- calibration data

def _splitmix64(counter: np.ndarray) -> np.ndarray:
    """Counter-based SplitMix64 (Steele et al. 2014): uint64 -> uint64, the same
    bits on every platform and numpy version (wrapping integer arithmetic only)."""
    z = counter.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class _Ints:
    """A deterministic stream of integers in [0, n) (integer arithmetic only)."""

    def __init__(self, seed: int):
        self.seed = np.uint64(seed)
        self.pos = 0

    def __call__(self, n: int, shape=()) -> np.ndarray:
        size = int(np.prod(shape, dtype=np.int64)) if shape else 1
        idx = np.arange(self.pos, self.pos + size, dtype=np.uint64) + self.seed * np.uint64(1 << 32)
        self.pos += size
        out = (_splitmix64(idx) % np.uint64(n)).astype(np.int64)
        return out.reshape(shape) if shape else out[0]


def calibration_windows(n: int = 384, seed: int = 2018) -> np.ndarray:
    """A fixed synthetic set of predictor views, uint8 (n, 16, 24), already
    masked (centre and right blocks of the middle row zero).

    Integer arithmetic only, so it is identical everywhere. Six kinds in turn:
    smooth ramps (bilinear between random knots), sharp edges, noisy texture,
    stripes and checkerboards, flat areas, and windows whose top row or side
    blocks are the codec's border value 128."""
    h, w = VIEW_SHAPE
    rnd = _Ints(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.int64)
    out = np.empty((n, h, w), dtype=np.int64)
    for i in range(n):
        kind = i % 6
        if kind in (0, 2, 5):  # bilinear between knots every 8 pixels
            knots = rnd(256, (h // 8 + 1, w // 8 + 1))
            fy, fx, ky, kx = yy % 8, xx % 8, yy // 8, xx // 8
            img = ((8 - fy) * (8 - fx) * knots[ky, kx] + (8 - fy) * fx * knots[ky, kx + 1]
                   + fy * (8 - fx) * knots[ky + 1, kx] + fy * fx * knots[ky + 1, kx + 1]) // 64
            if kind == 2:
                amp = 1 + rnd(48)
                img = img + rnd(2 * amp + 1, (h, w)) - amp
        elif kind == 1:  # a sharp edge at a random angle
            a, b = rnd(256), rnd(256)
            dy, dx = rnd(17) - 8, rnd(17) - 8
            y0, x0 = rnd(h), rnd(w)
            img = np.where(dy * (yy - y0) + dx * (xx - x0) >= 0, a, b) + rnd(9, (h, w)) - 4
        elif kind == 3:  # stripes / checkerboards, high frequencies
            a, b = rnd(256), rnd(256)
            ky, kx, p = rnd(3), rnd(3), 1 + rnd(4)
            img = np.where(((yy * ky + xx * kx) // p + (yy // p) * (ky == 0) * (kx == 0)) % 2 == 0, a, b)
        else:  # flat
            img = np.full((h, w), rnd(256)) + rnd(3, (h, w)) - 1
        if kind == 5:  # the codec's border: outside-image blocks read 128
            edge = rnd(3)
            if edge == 0:
                img[:BLOCK] = 128
            elif edge == 1:
                img[:, :BLOCK] = 128
            else:
                img[:BLOCK, 2 * BLOCK:] = 128
        out[i] = img
    out = np.clip(out, 0, 255).astype(np.uint8)
    out[:, BLOCK:, BLOCK:] = 0
    return out


# ---------------------------------------------------------------- threads

#: torch intra-op threads the predictor runs on (:func:`predictor_threads`);
#: None leaves torch's count as it is (tests of exactness across thread counts).
PREDICT_THREADS: int | None = 1


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch's intra-op thread count set to ``n`` inside the block and
    restored after (also on error); nothing is changed when ``n`` is None or
    the count already is ``n``. torch's count is process-wide: other threads
    running torch meanwhile see ``n`` too."""
    old = torch.get_num_threads()
    if n is None or int(n) == old:
        yield
        return
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def predictor_threads():
    """:func:`torch_threads` of :data:`PREDICT_THREADS` (read at call time).

    Why one thread: the codec runs hundreds of tiny batched convolutions per
    image (one call per wavefront step, views of 16x24 pixels, 32 channels),
    each too small to split across threads; more threads only wait at every
    barrier. The sums are exact, so the integers and files are the same on
    any thread count (tested with
    ``PREDICT_THREADS = None`` at 1 and 2 threads)."""
    return torch_threads(PREDICT_THREADS)


# ---------------------------------------------------------------- the integer network

@dataclass(frozen=True)
class _Region:
    """Rows [r0, 16) and columns [c0, c1) of the 16x24 view."""

    r0: int
    c0: int
    c1: int


def _region(d: int) -> _Region:
    """Where a layer's output is needed when ``d`` convolutions follow it: the
    centre block (rows 8..15, columns 8..15) grown by ``d``, inside the view."""
    return _Region(max(0, BLOCK - d), max(0, BLOCK - d), min(VIEW_SHAPE[1], 2 * BLOCK + d))


@dataclass
class _QConv:
    """One quantized 3x3 convolution and its requantization.

    ``kind``: "act" (leaky ReLU), "skip" (start of a residual block; its input
    is kept for the add), "residual" (adds the kept input), "output" (pixels).
    Output = clamp(round(z * mult + offset [+ skip * skip_mult]), +-out_max),
    leaky ReLU before rounding for "act"/"skip", with ``z`` the exact integer
    sums. ``split``: float32 convolutions take the input in two pieces."""

    weight: np.ndarray      # int64 (Cout, Cin, 3, 3)
    mult: np.ndarray        # float64 (Cout,)
    offset: np.ndarray      # float64 (Cout,)
    kind: str
    split: bool = False
    skip_mult: np.ndarray | None = None  # float64 (Cout,), "residual" only
    out_max: int = 0


def _fold(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 weights and bias of conv followed by eval-mode BN (elementwise, deterministic)."""
    w = conv.weight.detach().cpu().double().numpy()
    b = (conv.bias.detach().cpu().double().numpy() if conv.bias is not None
         else np.zeros(w.shape[0]))
    if bn is None:
        return w, b
    gamma = bn.weight.detach().cpu().double().numpy() if bn.affine else np.ones(w.shape[0])
    beta = bn.bias.detach().cpu().double().numpy() if bn.affine else np.zeros(w.shape[0])
    mean = bn.running_mean.detach().cpu().double().numpy()
    var = bn.running_var.detach().cpu().double().numpy()
    k = gamma / np.sqrt(var + bn.eps)
    return w * k[:, None, None, None], (b - mean) * k + beta


def _quantize_weights(w: np.ndarray, in_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel: integers with sum|q| * in_max <= 2**SUM_BITS, and
    their scale (w ~ q * scale). The L1 norm is ``math.fsum`` (correctly
    rounded, so independent of summation order)."""
    budget = (1 << SUM_BITS) // in_max
    fan_in = w[0].size
    q = np.zeros(w.shape, dtype=np.int64)
    scale = np.ones(w.shape[0])
    for c in range(w.shape[0]):
        l1 = math.fsum(abs(float(v)) for v in w[c].ravel())
        if l1 == 0.0:
            continue
        # Rounding adds at most 0.5 per weight, so the target leaves fan_in / 2.
        scale[c] = l1 / (budget - fan_in / 2)
        q[c] = np.rint(w[c] / scale[c]).astype(np.int64)
        if int(np.abs(q[c]).sum()) > budget:  # cannot happen; guards the exactness proof
            raise ModelError("exact inference: weight budget exceeded")
    return q, scale


@contextlib.contextmanager
def _exact_backends():
    """No NNPACK (Winograd/FFT), and oneDNN convolutions in IEEE fp32 (no
    bf16/tf32 down-conversion): plain multiply-accumulate only."""
    conv_prec = torch.backends.mkldnn.conv
    old = conv_prec.fp32_precision  # the effective value, possibly inherited
    # Equal to the backend-wide value: taken as inherited, so restored as "none".
    restore = "none" if old == torch.backends.mkldnn.fp32_precision else old
    with torch.backends.nnpack.flags(enabled=False):
        changed = old != "ieee"  # "none" would inherit a global bf16/tf32 setting
        try:
            if changed:
                conv_prec.fp32_precision = "ieee"
            yield
        finally:
            if changed:
                conv_prec.fp32_precision = restore


class ExactPredictor:
    """Bit-exact integer inference of a causal :class:`BlockCNN` (see the
    module docstring).

    Build with :meth:`from_model`; :meth:`predict` maps uint8 views
    (N, 16, 24) or (N, 1, 16, 24), pixel values 0..255, to uint8 8x8 centre
    predictions (N, 8, 8) or (N, 1, 8, 8). The centre and right blocks of the
    middle row are zeroed here (``mask_causal`` semantics), so full
    unmasked views may be passed.

    Example::

        >>> net = BlockCNN(in_channels=1, width=8, num_res_blocks=1, causal=True).eval()
        >>> exact = ExactPredictor.from_model(net)
        >>> exact.predict(np.full((2, 16, 24), 100, np.uint8)).shape
        (2, 8, 8)
    """

    def __init__(self, layers: list[_QConv], slope: float, act_bits: int, pieces: int,
                 dtype: torch.dtype = torch.float32):
        self.layers = layers
        self.slope = float(slope)
        self.act_bits = act_bits
        self.pieces = pieces
        self._hash: str | None = None
        self._prepare(dtype)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_model(cls, model: BlockCNN, *, calibration: np.ndarray | None = None,
                   act_bits: int = ACT_BITS, pieces: int = PIECES, headroom: float = HEADROOM,
                   dtype: torch.dtype | None = None) -> "ExactPredictor":
        """Quantize a trained causal one-channel BlockCNN (BN statistics as in
        eval mode; the model itself is not changed).

        ``calibration``: uint8 views (N, 16, 24) for the activation ranges
        (default :func:`calibration_windows`; a different set gives a
        different :attr:`weights_hash`). ``act_bits``: signed activation
        width; ``pieces``: 2 splits activations into two pieces for the
        float32 convolutions (weights may then have an L1 norm 2^24 / 128),
        1 does not (L1 2^24 / max activation); ``headroom``: module
        docstring. ``dtype``: convolution dtype, default float32 if its
        self-test passes, else float64; both give the same integers."""
        if not isinstance(model, BlockCNN) or not model.causal or model.in_channels != 1:
            raise ModelError("ExactPredictor needs a causal one-channel BlockCNN")
        with predictor_threads():
            return cls._from_model(model, calibration, act_bits, pieces, headroom, dtype)

    @classmethod
    def _from_model(cls, model, calibration, act_bits, pieces, headroom, dtype) -> "ExactPredictor":
        if not 2 <= act_bits <= 24 or pieces not in (1, 2):
            raise ModelError("exact inference needs 2 <= act_bits <= 24 and pieces 1 or 2")
        convs, slope = _layers_of(model)
        views = calibration_windows() if calibration is None else np.asarray(calibration)
        if views.dtype != np.uint8 or views.ndim != 3 or views.shape[1:] != VIEW_SHAPE:
            raise ModelError(f"calibration views must be uint8 (N, 16, 24), got {views.dtype} {views.shape}")
        act_max = (1 << (act_bits - 1)) - 1
        bound = _piece_bound(act_bits, pieces)
        if bound * 9 * 2 > (1 << SUM_BITS):
            raise ModelError(f"exact inference: activations of {act_bits} bits in {pieces} piece(s) "
                             "leave no room for weights in float32")
        use32 = dtype in (None, torch.float32)
        n_layers = len(convs)
        have = _region(n_layers)
        x = _first_input(views[:, None], have, torch.float32)
        in_scale = np.full(1, 1.0 / 255.0)  # per input channel; pixels first
        skip, skip_region, skip_scale = None, None, None
        layers: list[_QConv] = []
        for i, (conv, bn, kind) in enumerate(convs):
            w, b = _fold(conv, bn)
            in_bound = 255 if i == 0 else bound
            # Input channel scales fold into the weights (elementwise float64).
            q, wscale = _quantize_weights(w * in_scale[None, :, None, None], in_bound)
            layer = _QConv(q, wscale, b, kind, split=i > 0 and pieces == 2)
            want = _region(n_layers - 1 - i)
            if kind == "skip":
                skip, skip_region, skip_scale = x, have, in_scale
            use32 = use32 and _conv_is_exact(q, in_bound, pixels=i == 0)
            calc = torch.float32 if use32 else torch.float64
            z = _exact_conv(x.to(calc), torch.from_numpy(q).to(calc), layer.split, act_bits, want)
            if kind == "output":
                # Pixel units: the model's [0, 1] output times 255.
                layer.mult, layer.offset = wscale * 255.0, b * 255.0
                layers.append(layer)
                break
            # The layer's real-valued output on the calibration set (float64,
            # elementwise from exact sums: deterministic), for its range.
            y = z.double() * torch.from_numpy(wscale).view(1, -1, 1, 1)
            y = y + torch.from_numpy(b).view(1, -1, 1, 1)
            if kind == "residual":
                y = y + _crop(skip, skip_region, want).double() * torch.from_numpy(skip_scale).view(1, -1, 1, 1)
            else:
                y = torch.where(y >= 0, y, y * slope)
            peak = y.abs().amax(dim=(0, 2, 3)).numpy()  # per channel; max is exact
            out_scale = np.where(peak > 0, peak * headroom / act_max, 1.0)
            layer.mult, layer.offset, layer.out_max = wscale / out_scale, b / out_scale, act_max
            layer.skip_mult = skip_scale / out_scale if kind == "residual" else None
            layers.append(layer)
            x = _requantize(z, layer, slope, _crop(skip, skip_region, want) if kind == "residual" else None,
                            *_requant_tensors(layer))
            have, in_scale = want, out_scale
        return cls(layers, slope, act_bits, pieces, torch.float32 if use32 else torch.float64)

    def _prepare(self, dtype: torch.dtype) -> None:
        self._tensors = [(torch.from_numpy(layer.weight).to(dtype).contiguous(memory_format=torch.channels_last),
                          *_requant_tensors(layer)) for layer in self.layers]
        self.dtype = dtype

    # ------------------------------------------------------------ public

    @property
    def weights_hash(self) -> str:
        """sha256 (hex) over the quantized parameters: integer weights,
        requantization multipliers and offsets, layer kinds, ranges (fixed
        little-endian encoding). How sums are computed (pieces, dtype) does
        not enter: it does not change any result."""
        if self._hash is None:
            self._hash = self._compute_hash()
        return self._hash

    def _compute_hash(self) -> str:
        h = hashlib.sha256(_FORMAT)
        h.update(np.array([len(self.layers), self.act_bits], "<i8").tobytes())
        h.update(np.array([self.slope], "<f8").tobytes())
        for layer in self.layers:
            h.update(layer.kind.encode() + b"\0")
            h.update(np.array(layer.weight.shape, "<i8").tobytes())
            h.update(layer.weight.astype("<i8").tobytes())
            h.update(layer.mult.astype("<f8").tobytes())
            h.update(layer.offset.astype("<f8").tobytes())
            if layer.skip_mult is not None:
                h.update(layer.skip_mult.astype("<f8").tobytes())
            h.update(np.array([layer.out_max], "<i8").tobytes())
        return h.hexdigest()

    def predict(self, windows) -> np.ndarray:
        """uint8 views (N, 16, 24) or (N, 1, 16, 24) -> uint8 predictions
        (N, 8, 8) or (N, 1, 8, 8), bit-exact (module docstring). Runs on
        :data:`PREDICT_THREADS` torch threads (:func:`predictor_threads`)."""
        with predictor_threads(), torch.no_grad():
            return self._predict(windows)

    def _predict(self, windows) -> np.ndarray:
        arr = windows.cpu().numpy() if isinstance(windows, torch.Tensor) else np.asarray(windows)
        squeeze = arr.ndim == 3
        if squeeze:
            arr = arr[:, None]
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] != 1 or arr.shape[2:] != VIEW_SHAPE:
            raise ValueError(f"predict expects uint8 (N, 16, 24) or (N, 1, 16, 24), "
                             f"got {arr.dtype} {arr.shape}")
        if arr.shape[0] == 0:
            return np.zeros((0, BLOCK, BLOCK) if squeeze else (0, 1, BLOCK, BLOCK), np.uint8)
        n_layers = len(self.layers)
        have = _region(n_layers)
        x = _first_input(arr, have, torch.float32)
        skip, skip_region = None, None
        for i, (layer, (w, *requant)) in enumerate(zip(self.layers, self._tensors)):
            want = _region(n_layers - 1 - i)
            if layer.kind == "skip":
                skip, skip_region = x, have
            z = _exact_conv(x.to(self.dtype), w, layer.split, self.act_bits, want)
            s = _crop(skip, skip_region, want) if layer.kind == "residual" else None
            x = _requantize(z, layer, self.slope, s, *requant)
            have = want
        out = x.to(torch.uint8).numpy()
        return out[:, 0] if squeeze else out


# ---------------------------------------------------------------- pieces

def _layers_of(model: BlockCNN):
    """[(conv, bn or None, kind)] in order, and the leaky ReLU slope."""
    slope = None
    convs: list[tuple[torch.nn.Conv2d, torch.nn.BatchNorm2d | None, str]] = []
    for m in model.head:
        if isinstance(m, torch.nn.Conv2d):
            convs.append((m, None, "act"))
        elif isinstance(m, torch.nn.LeakyReLU):
            slope = m.negative_slope
        else:
            raise ModelError(f"ExactPredictor: unexpected head layer {type(m).__name__}")
    for blk in model.body:
        slope = blk.act.negative_slope
        convs.append((blk.conv1, blk.bn1, "skip"))
        convs.append((blk.conv2, blk.bn2, "residual"))
    convs.append((model.tail, None, "output"))
    for conv, _, _ in convs:
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
            raise ModelError("ExactPredictor supports 3x3 convolutions, stride 1, padding 1")
    return convs, 0.2 if slope is None else float(slope)


def _low_bits(act_bits: int) -> int:
    """Bits of the low piece: A = high * 2^k + low, 0 <= low < 2^k."""
    return (act_bits - 1) // 2


def _piece_bound(act_bits: int, pieces: int) -> int:
    """Largest |value| a convolution sees for activations of ``act_bits``."""
    if pieces == 1:
        return (1 << (act_bits - 1)) - 1
    k = _low_bits(act_bits)
    return max(1 << (act_bits - 1 - k), (1 << k) - 1)


def _first_input(views: np.ndarray, region: _Region, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (N, 1, 16, 24) -> the first layer's input region, masked, as ``dtype``."""
    x = torch.from_numpy(np.ascontiguousarray(views[:, :, region.r0:, region.c0:region.c1])).to(dtype)
    x[..., BLOCK - region.r0:, max(0, BLOCK - region.c0):] = 0
    return x


def _crop(x: torch.Tensor, have: _Region, want: _Region) -> torch.Tensor:
    r, c = want.r0 - have.r0, want.c0 - have.c0
    return x[..., r:r + VIEW_SHAPE[0] - want.r0, c:c + want.c1 - want.c0]


def _conv(x: torch.Tensor, w: torch.Tensor, want: _Region) -> torch.Tensor:
    """3x3 convolution of ``x`` (``want`` grown by one inside the view) on
    ``want``; zero padding only beyond the view's real borders, as the float
    model has it."""
    full = want == _region(BLOCK)
    if not full and (want.r0 == 0 or want.c0 == 0 or want.c1 == VIEW_SHAPE[1]):
        raise AssertionError(f"unexpected region {want}")  # regions are full or interior
    x = x.contiguous(memory_format=torch.channels_last)
    with _exact_backends():
        if full:
            return F.conv2d(x, w, padding=1)
        # Interior: zeros only below row 15; the extra top output row is dropped.
        return F.conv2d(x, w, padding=(1, 0))[..., 1:, :]


def _exact_conv(x: torch.Tensor, w: torch.Tensor, split: bool, act_bits: int, want: _Region) -> torch.Tensor:
    """The exact integer sums, returned as float32 (rounded to float32 when
    beyond 2^24: the same value however they were computed).

    float32 with ``split``: the integer input ``A`` is cut into pieces
    ``A = high * 2^k + low``, ``0 <= low < 2^k`` (``high = floor(A * 2^-k)``,
    ``low = A - high * 2^k``: all exact), both pieces are convolved in one batch
    (every partial sum within +-2^24, exact), and ``high_sum * 2^k`` (exact)
    plus ``low_sum`` is one correctly rounded float32 addition of two exact
    values. float64: one convolution, exact below 2^53, then rounded to
    float32: the same number."""
    if x.dtype == torch.float64:
        return _conv(x, w, want).to(torch.float32)
    if not split:
        return _conv(x, w, want)
    n = x.shape[0]
    step = float(1 << _low_bits(act_bits))
    pieces = torch.empty((2 * n,) + tuple(x.shape[1:]), dtype=x.dtype, memory_format=torch.channels_last)
    high, low = pieces[:n], pieces[n:]
    torch.mul(x, 1.0 / step, out=high).floor_()
    torch.mul(high, -step, out=low).add_(x)
    z = _conv(pieces, w, want)
    return z[:n].mul_(step).add_(z[n:])


def _requantize(z: torch.Tensor, layer: _QConv, slope: float, skip: torch.Tensor | None,
                mult: torch.Tensor, offset: torch.Tensor, skip_mult: torch.Tensor | None) -> torch.Tensor:
    """float32, in place on ``z``, elementwise, one correctly rounded IEEE
    operation at a time (no fused multiply-add, no reduction): deterministic."""
    t = z.mul_(mult).add_(offset)
    if layer.kind == "residual":
        t = t.add_(skip * skip_mult)
    elif layer.kind != "output":
        t = F.leaky_relu_(t, slope)
    t = t.round_()
    if layer.kind == "output":
        return t.clamp_(0, 255)
    return t.clamp_(-layer.out_max, layer.out_max)


def _requant_tensors(layer: _QConv) -> tuple[torch.Tensor, ...]:
    """(mult, offset, skip_mult or None) as float32 (1, C, 1, 1) tensors."""
    def t(a):
        return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float64)).float().view(1, -1, 1, 1)

    return t(layer.mult), t(layer.offset), t(layer.skip_mult)


def _conv_is_exact(weight: np.ndarray, in_max: int, pixels: bool) -> bool:
    """Self-test of the float32 convolution backend on one layer's integer
    weights at the worst case the quantization allows: inputs at +-in_max
    aligned with the weights' signs (pixels: in_max where the weight is
    positive), so a sum reaches the bound; two batch sizes (backends choose
    kernels by shape). True when float32 equals float64 exactly."""
    k = int(np.argmax(np.abs(weight).reshape(weight.shape[0], -1).sum(1)))
    sign = np.sign(weight[k]).astype(np.float64)
    x = np.zeros((weight.shape[1], 5, 5))
    x[:, 1:4, 1:4] = (sign > 0) * in_max if pixels else sign * in_max
    wt = torch.from_numpy(weight.astype(np.float64))
    for n in (1, 17):
        xt = torch.from_numpy(np.repeat(x[None], n, 0))
        with _exact_backends():
            ref = F.conv2d(xt, wt)
            got = F.conv2d(xt.float().contiguous(memory_format=torch.channels_last),
                           wt.float().contiguous(memory_format=torch.channels_last))
        if not torch.equal(ref, got.double()):
            return False
    return True
