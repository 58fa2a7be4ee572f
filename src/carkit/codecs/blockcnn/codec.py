"""The BlockCNN block-predictive codec as a file format (``.bcnn``).

Maleki et al., "BlockCNN: A Deep Network for Artifact Removal and Image
Compression", CVPRW 2018, section 2.3: blocks are visited row by row; each
8x8 block is predicted by a causal BlockCNN from its already *decoded*
neighbours (the three blocks above and the one to the left), and only the
residual, original minus prediction, is stored, JPEG-coded, so JPEG's
quality factor trades size for quality. The decoder repeats the same
predictions and adds the decoded residuals.

Per block: prediction ``p`` (uint8, :class:`carkit.models.exact.ExactPredictor`,
integer-exact so encoder and decoder agree bit for bit on any machine),
residual ``x - p``, orthonormal 8x8 DCT, quantization by the IJG table at
quality Q (luma table for Y, chroma table for Cb/Cr), coefficients clamped to
+-1023 (baseline JPEG's range; only reachable at qualities near 100), then
the decoded residual ``round(IDCT(coefficients * table))`` and the
reconstruction ``clip(p + decoded residual, 0, 255)``, which is what later
blocks are predicted from. Both transforms are integer matrix products (the
DCT matrix scaled by 2^16 and rounded, int64, exact in any order), so the
decoder's arithmetic is deterministic everywhere.

What differs from the paper, or what it leaves open:

* **Colour**: the paper trains in Lab and does not say how colour residuals
  are coded. Here: JPEG full-range YCbCr (T.871 constants, float64
  elementwise, rounded), the image padded by edge replication to a multiple
  of 16 (8 for gray), Y at full resolution and Cb/Cr averaged 2x2 (4:2:0,
  as plain JPEG does, so the rate comparison with JPEG is fair); each plane
  is an independent grid of 8x8 blocks, all predicted by the same
  one-channel predictor. Decoding upsamples chroma with libjpeg's "fancy"
  triangle filter (9/16, 3/16, 3/16, 1/16; integer arithmetic) and converts
  back with the T.871 formulas, rounded and clipped, then crops.
* **Texture only, damped**: the residual is taken against the prediction
  with its mean set to 128 and its texture halved (:func:`texture_of`); the
  block means go through JPEG's own DC path, which predicts them from the
  left block better than the network does, and the halving keeps wrong
  predictions from costing more than they save (:func:`texture_of`).
* **Order**: row by row in the paper's sense, processed as a wavefront:
  block (r, c) needs (r-1, c-1), (r-1, c), (r-1, c+1) and (r, c-1), so all
  blocks with ``c + 2r = t`` are independent and are predicted in one batch
  per step t, the three planes' blocks together. Neighbours outside the image
  read 128 (a canvas with a one-block border).
* **Residual stream**: one standard baseline JPEG holding exactly the
  quantized residual coefficients (4:2:0 YCbCr or gray, IJG tables at Q,
  standard Huffman tables as the ``jpeg`` codec writes them), at the padded
  size; any viewer shows it as residual + 128. It is written and read with
  jpeglib (``carkit.jpeg.coefficients``), never re-encoded.
* **Artifact removal** after decoding (the paper's Figure 10
  combinations) is optional and not part of this codec: wrap it in
  ``carkit.restoration.codec.RestoredCodec`` (``decode_bcnn(..., restore=)``
  does), which applies a zoo restorer as ``carkit restore`` does.

Container: :mod:`carkit.codecs.blockcnn.container` (magic, version, mode,
quality, size, predictor name and weights hash, payload length, CRC32).

Decoding refuses, with a one-line :class:`BcnnFormatError` or
:class:`PredictorMismatchError` (both ``CodecError``): a wrong magic, an
unsupported version, a truncated file or trailing bytes, a CRC mismatch, a
payload inconsistent with the header (its frame size is compared before
libjpeg reads it), a predictor name that is not in the zoo, and a predictor
whose weights hash differs from the file's; a size above carkit's pixel
limit is a ``DecompressionBombError`` before anything is allocated.

Check: with a predictor that always says 128 the codec *is* JPEG (residual =
level-shifted block); it then matches Pillow's JPEG in bytes and PSNR
(tested). The decoder runs the same predictions as the encoder, so it is no
faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import Codec, check_image, check_quality
from ...color import JPEG_RGB_TO_YCBCR, JPEG_YCBCR_TO_RGB
from ...errors import CarkitError, CodecError, ModelError
from ...jpeg.intdct import forward_dct_int, inverse_dct_int
from .container import MAGIC, VERSION, BcnnFormatError, BcnnHeader, is_bcnn, pack_container, read_header
from ...zoo.registry import list_weights, load_pretrained, weights_record
from ..registry import SEPARATOR, get_codec
from ...jpeg.coefficients import JpegCoefficients, coefficients_to_bytes, expected_block_dims, read_coefficients
from ...jpeg.files import frame_size
from ...jpeg.tables import ijg_tables
from ... import io

__all__ = ["BlockCNNCodec", "BcnnFormatError", "PredictorMismatchError", "MAGIC", "VERSION",
           "is_bcnn", "read_header", "BcnnHeader", "decode_bcnn"]

DEFAULT_MODEL = "blockcnn-predictor"
BLOCK = 8
BORDER_VALUE = 128
#: Baseline JPEG's coefficient range (|AC| <= 1023; DC clamped alike so DC differences stay <= 2047).
COEF_MAX = 1023


class PredictorMismatchError(CodecError):
    """A .bcnn file needs a predictor that is not available here."""


# ---------------------------------------------------------------- colour (deterministic, elementwise)

def rgb_to_ycbcr_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 (H, W, 3), H and W even -> Y (H, W), Cb and Cr (H/2, W/2), uint8.
    T.871 full range, float64 one operation at a time, rounded half to even;
    chroma averaged over 2x2 in integers, rounded half up."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    (yr, yg, yb), (br, bg, bb), (rr, rg, rb) = JPEG_RGB_TO_YCBCR
    y = yr * r + yg * g + yb * b
    cb = br * r + bg * g + bb * b + 128.0
    cr = rr * r + rg * g + rb * b + 128.0

    def u8(x):
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    def down(x):
        x = u8(x).astype(np.int32)
        s = x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]
        return ((s + 2) // 4).astype(np.uint8)

    return u8(y), down(cb), down(cr)


def upsample_chroma(c: np.ndarray) -> np.ndarray:
    """(h, w) -> (2h, 2w): libjpeg's h2v2 "fancy" upsampling (triangle filter,
    weights 9, 3, 3, 1 of 16 from the nearest four samples, edges
    replicated), integer arithmetic."""
    x = np.pad(c.astype(np.int32), 1, mode="edge")
    centre = x[1:-1, 1:-1]
    out = np.empty((2 * c.shape[0], 2 * c.shape[1]), dtype=np.int32)
    for dy, ys in ((0, slice(0, -2)), (1, slice(2, None))):
        for dx, xs in ((0, slice(0, -2)), (1, slice(2, None))):
            vert = x[ys, 1:-1]
            horiz = x[1:-1, xs]
            diag = x[ys, xs]
            out[dy::2, dx::2] = (9 * centre + 3 * vert + 3 * horiz + diag + 8) >> 4
    return out.astype(np.uint8)


def ycbcr_planes_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Full-resolution uint8 planes -> uint8 RGB (T.871), rounded, clipped."""
    yf = y.astype(np.float64)
    cbf = cb.astype(np.float64) - 128.0
    crf = cr.astype(np.float64) - 128.0
    (_, r_cr), (g_cb, g_cr), (b_cb, _) = JPEG_YCBCR_TO_RGB
    r = yf + r_cr * crf
    g = yf + g_cb * cbf + g_cr * crf
    b = yf + b_cb * cbf
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the wavefront

@dataclass
class _Plane:
    hb: int
    wb: int
    table: np.ndarray                 # (8, 8) int64
    original: np.ndarray | None       # (hb*8, wb*8) uint8 (encoder)
    coeffs: np.ndarray                # (hb, wb, 8, 8) int16
    canvas: np.ndarray | None = None  # ((hb+1)*8, (wb+2)*8) uint8

    def __post_init__(self):
        self.canvas = np.full(((self.hb + 1) * BLOCK, (self.wb + 2) * BLOCK), BORDER_VALUE, np.uint8)

    @property
    def steps(self) -> int:
        return (self.wb - 1) + 2 * (self.hb - 1) + 1

    def blocks_at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        lo = max(0, -(-(t - self.wb + 1) // 2))
        hi = min(self.hb - 1, t // 2)
        r = np.arange(lo, hi + 1) if hi >= lo else np.zeros(0, dtype=np.int64)
        return r, t - 2 * r

    def reconstruction(self) -> np.ndarray:
        return self.canvas[BLOCK:, BLOCK:BLOCK + self.wb * BLOCK]


_DY = np.arange(2 * BLOCK)[None, :, None]
_DX = np.arange(3 * BLOCK)[None, None, :]
_BY = np.arange(BLOCK)[None, :, None]
_BX = np.arange(BLOCK)[None, None, :]


def texture_of(pred: np.ndarray) -> np.ndarray:
    """The prediction the residual is taken against: the network's block with
    its mean replaced by 128 and its texture (deviation from the mean)
    halved, integer arithmetic (floor), so the residual's DC is the block's
    own level-shifted mean, as in plain JPEG.

    Why the mean goes: JPEG already codes block means cheaply (DC DPCM from
    the left block); the network's mean errors are nearly independent from
    block to block, so residual DCs would cost more than the means
    themselves.

    Why the texture is halved (format version 2): where the residual
    quantizes to zero, a wrong prediction's error stays in the picture. The
    same shrinkage toward "no prediction" is what an MSE-optimal predictor
    does when unsure; ours, trained on a CPU budget, is unsure almost
    everywhere."""
    pred = pred.astype(np.int64)
    texture = pred - (pred.sum(axis=(1, 2), keepdims=True) + 32) // 64
    return texture // 2 + 128


def run_wavefront(planes: list[_Plane], predictor, encode: bool) -> None:
    """Predict, (encoder: code) and reconstruct every block of every plane,
    one batched prediction per wavefront step ``c + 2r = t``. Fills each
    plane's canvas and, when ``encode``, its coefficients. The predictions
    run on one torch thread (``models.exact.predictor_threads``: hundreds of
    tiny convolutions, which several threads only slow down), the caller's
    count restored after."""
    from ...models.exact import predictor_threads

    with predictor_threads():
        _run_wavefront(planes, predictor, encode)


def _run_wavefront(planes: list[_Plane], predictor, encode: bool) -> None:
    for t in range(max(p.steps for p in planes)):
        where, views = [], []
        for p in planes:
            r, c = p.blocks_at(t)
            where.append((r, c))
            if len(r):
                views.append(p.canvas[(r * BLOCK)[:, None, None] + _DY, (c * BLOCK)[:, None, None] + _DX])
        if not views:
            continue
        pred = texture_of(predictor.predict(np.concatenate(views)))
        k = 0
        for p, (r, c) in zip(planes, where):
            n = len(r)
            if not n:
                continue
            pb, k = pred[k:k + n], k + n
            if encode:
                orig = p.original[(r * BLOCK)[:, None, None] + _BY, (c * BLOCK)[:, None, None] + _BX]
                coef = np.rint(forward_dct_int(orig.astype(np.int64) - pb) / p.table)
                p.coeffs[r, c] = np.clip(coef, -COEF_MAX, COEF_MAX).astype(np.int16)
            residual = inverse_dct_int(p.coeffs[r, c].astype(np.int64) * p.table)
            rec = np.clip(pb + residual, 0, 255).astype(np.uint8)
            p.canvas[((r + 1) * BLOCK)[:, None, None] + _BY, ((c + 1) * BLOCK)[:, None, None] + _BX] = rec


# ---------------------------------------------------------------- predictors

_EXACT_CACHE: dict[tuple[str, str], object] = {}


def zoo_predictor(name: str):
    """The :class:`ExactPredictor` of zoo entry ``name`` (cached per weights
    file). Raises :class:`PredictorMismatchError` for names not in the zoo and
    CodecError for entries that are not causal one-channel BlockCNNs."""
    from ...models.exact import ExactPredictor

    try:
        record = weights_record(name)
    except ModelError:
        known = ", ".join(list_weights()) or "none"
        raise PredictorMismatchError(f"predictor {name!r} is not in the zoo (known: {known})") from None
    key = (name, record.sha256)
    if key not in _EXACT_CACHE:
        try:
            _EXACT_CACHE[key] = ExactPredictor.from_model(load_pretrained(name))
        except ModelError as exc:
            raise CodecError(f"zoo entry {name!r} cannot serve as the BlockCNN predictor: {exc}") from exc
    return _EXACT_CACHE[key]


def _as_exact(predictor):
    from ...models.exact import ExactPredictor

    if isinstance(predictor, ExactPredictor):
        return predictor

    try:
        return ExactPredictor.from_model(predictor)  # eval-mode BN statistics; the model is not changed
    except ModelError as exc:
        raise CodecError(f"blockcnn: {exc}") from exc


# ---------------------------------------------------------------- the codec

def decode_bcnn(data: bytes, restore: str | None = None) -> np.ndarray:
    """Decode a .bcnn file with the zoo predictor it names (the CLI's path):
    the container is checked first, then the predictor, then the payload.
    ``restore``: a zoo artifact remover applied after decoding (paper
    Figure 10), through the one codec+restorer wrapper."""
    codec = BlockCNNCodec.for_file(data)
    if restore:
        return get_codec(f"{BlockCNNCodec.name}{SEPARATOR}{restore}", model=codec.model).decode(data)
    return codec.decode(data)


class BlockCNNCodec(Codec):
    """BlockCNN block-predictive codec (Maleki et al. 2018, section 2.3):
    causal CNN prediction per 8x8 block plus a JPEG-coded residual, in a
    .bcnn container (see the module docstring).

    ``model``: zoo name of the predictor (default ``blockcnn-predictor``);
    ``predictor``: a causal one-channel ``BlockCNN`` (or an
    ``ExactPredictor``) to use instead of the zoo, e.g. in tests; its files
    still name ``model``. Artifact removal after decoding (paper Figure
    10) is ``carkit.restoration.codec.RestoredCodec`` around this codec.
    """

    name = "blockcnn"
    extension = ".bcnn"
    sniff = staticmethod(is_bcnn)

    @classmethod
    def for_file(cls, data: bytes) -> "BlockCNNCodec":
        """The codec with the predictor a .bcnn file names: the container is
        checked first (size against the pixel limit), then the predictor."""
        header = read_header(data)
        io.check_pixel_limit(header.width, header.height, ".bcnn file")
        zoo_predictor(header.model)  # PredictorMismatchError when not in the zoo
        return cls(model=header.model)

    def __init__(self, model: str = DEFAULT_MODEL, predictor=None):
        self.model = str(model)
        self._exact = None if predictor is None else _as_exact(predictor)
        if self._exact is None:
            try:
                record = weights_record(self.model)
            except ModelError:
                known = ", ".join(list_weights()) or "none"
                raise CodecError(
                    f"blockcnn: no trained predictor {self.model!r} in the zoo yet (train recipes/blockcnn/"
                    f"blockcnn-predictor.toml and `carkit zoo export` it; known: {known})") from None
            if record.kind != "predictor":
                raise CodecError(f"blockcnn: zoo entry {self.model!r} is a {record.kind}, not a block predictor")

    # ------------------------------------------------------------ hooks

    @classmethod
    def unavailable_reason(cls) -> str | None:
        import importlib.util

        missing = [m for m in ("torch", "jpeglib") if importlib.util.find_spec(m) is None]
        if missing:
            return f"blockcnn: needs {' and '.join(missing)} (not installed)"

        if DEFAULT_MODEL not in list_weights():
            return (f"blockcnn: no trained predictor {DEFAULT_MODEL!r} in the zoo yet "
                    "(a predictor can still be passed as BlockCNNCodec(predictor=...))")
        return None

    @classmethod
    def library(cls) -> str | None:
        import jpeglib
        import torch

        return f"jpeglib {jpeglib.__version__}, torch {torch.__version__} (exact integer predictor)"

    @property
    def predictor(self):
        """The :class:`ExactPredictor` this codec encodes with."""
        if self._exact is None:
            self._exact = zoo_predictor(self.model)
        return self._exact

    # ------------------------------------------------------------ encode

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        return self._encode(image, quality)[0]

    def encode_with_reconstruction(self, image: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
        """(file bytes, the decoder's output) in one pass: the reconstruction
        the encoder predicted from, after the same colour conversion as
        :meth:`decode`."""
        return self._encode(image, quality)

    def _encode(self, image: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
        image = check_image(image)
        q = check_quality(quality)
        gray = image.ndim == 2
        h, w = image.shape[:2]
        if h > 65535 or w > 65535:
            raise ValueError(f"image too large for the residual JPEG: {w}x{h} (max 65535)")
        unit = BLOCK if gray else 2 * BLOCK
        hp, wp = -(-h // unit) * unit, -(-w // unit) * unit
        pad = ((0, hp - h), (0, wp - w)) + (() if gray else ((0, 0),))
        padded = np.pad(image, pad, mode="edge")
        sources = [padded] if gray else list(rgb_to_ycbcr_planes(padded))
        planes = self._planes(q, [s.shape for s in sources], sources)
        run_wavefront(planes, self.predictor, encode=True)
        coeffs = JpegCoefficients(
            components=tuple(p.coeffs for p in planes), quant_tables=tuple(p.table for p in planes),
            sampling=((1, 1),) if gray else ((2, 2), (1, 1), (1, 1)), height=hp, width=wp,
            color_space="gray" if gray else "ycbcr")
        payload = coefficients_to_bytes(coeffs)
        data = pack_container({"gray": gray, "quality": q, "width": w, "height": h, "model": self.model,
                      "weights_hash": self.predictor.weights_hash}, payload)
        return data, self._assemble(planes, gray, h, w)

    # ------------------------------------------------------------ decode

    def decode(self, data: bytes) -> np.ndarray:
        header = read_header(data)
        io.check_pixel_limit(header.width, header.height, ".bcnn file")  # before any allocation
        exact = self._predictor_for(header)
        planes = self._read_payload(bytes(data)[header.payload_offset:], header)
        run_wavefront(planes, exact, encode=False)
        return self._assemble(planes, header.gray, header.height, header.width)

    def _predictor_for(self, header: BcnnHeader):
        exact = self.predictor if header.model == self.model else zoo_predictor(header.model)
        if exact.weights_hash != header.weights_hash:
            raise PredictorMismatchError(
                f"this file was made with another version of predictor {header.model!r} "
                f"(weights hash {header.weights_hash[:12]}, available {exact.weights_hash[:12]})")
        return exact

    def _read_payload(self, payload: bytes, header: BcnnHeader) -> list[_Plane]:
        unit = BLOCK if header.gray else 2 * BLOCK
        hp, wp = -(-header.height // unit) * unit, -(-header.width // unit) * unit
        if frame_size(payload) not in (None, (wp, hp)):  # before libjpeg allocates for the payload's size
            raise BcnnFormatError("corrupted .bcnn payload (residual JPEG size does not match the header)")
        try:
            jc = read_coefficients(payload)
        except CarkitError as exc:
            raise BcnnFormatError(f"corrupted .bcnn payload ({exc})") from exc
        sampling = ((1, 1),) if header.gray else ((2, 2), (1, 1), (1, 1))
        if (jc.color_space != ("gray" if header.gray else "ycbcr") or jc.sampling != sampling
                or (jc.height, jc.width) != (hp, wp)
                or jc.block_dims != expected_block_dims(hp, wp, sampling)):
            raise BcnnFormatError("corrupted .bcnn payload (residual JPEG does not match the header)")
        shapes = [(d[0] * BLOCK, d[1] * BLOCK) for d in jc.block_dims]
        planes = self._planes(header.quality, shapes, None)
        for p, comp, table in zip(planes, jc.components, jc.quant_tables):
            if not np.array_equal(table, p.table):
                raise BcnnFormatError("corrupted .bcnn payload (quantization tables differ from quality "
                                      f"{header.quality})")
            if np.abs(comp.astype(np.int32)).max(initial=0) > 2047:
                raise BcnnFormatError("corrupted .bcnn payload (coefficient out of range)")
            p.coeffs = comp
        return planes

    # ------------------------------------------------------------ shared

    @staticmethod
    def _planes(quality: int, shapes, sources) -> list[_Plane]:
        luma, chroma = ijg_tables(quality)
        planes = []
        for i, (ph, pw) in enumerate(shapes):
            hb, wb = ph // BLOCK, pw // BLOCK
            planes.append(_Plane(hb, wb, (luma if i == 0 else chroma).astype(np.int64),
                                 None if sources is None else sources[i],
                                 np.zeros((hb, wb, BLOCK, BLOCK), np.int16)))
        return planes

    @staticmethod
    def _assemble(planes: list[_Plane], gray: bool, h: int, w: int) -> np.ndarray:
        recs = [p.reconstruction() for p in planes]
        if gray:
            return np.ascontiguousarray(recs[0][:h, :w])
        rgb = ycbcr_planes_to_rgb(recs[0], upsample_chroma(recs[1]), upsample_chroma(recs[2]))
        return np.ascontiguousarray(rgb[:h, :w])

