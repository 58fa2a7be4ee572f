"""The factorized-prior learned codec (Ballé et al. 2018; model in
carkit.models.factorized_prior) as a real codec: ``get_codec("factorized")``.

Encoding: g_a on the image (padded to a multiple of 16), integer symbols
round(y - median) per latent channel, range-coded with the learned density's
quantized CDF tables (``entropy_coding``). Decoding: the same tables decode
the symbols, y_hat = symbols + median, g_s, crop, clip and round to 8 bits.
The symbols are exact; the pixels are the float synthesis network's, run the
same way on the same symbols (identical on every run; across thread counts
and machines as far as torch's convolutions are).

Quality: each zoo entry of a factorized-prior model is one trained rate
point (one lambda); its record's ``qualities`` range ([lo, hi], set by the
recipe's ``data.quality_range``) says which qualities it serves. The shipped
recipes split 1..100 into four ranges, low lambda (rate) first:
1-25, 26-50, 51-75, 76-100 (recipes/learned/). A quality no entry covers
uses the nearest one. ``model=`` forces an entry.

Gray images are coded as RGB (three equal planes) and decoded to gray as
the mean of the three reconstructed planes; the container records the
channel count.

Container (big-endian), version 1::

    magic   4  b"CKFP"
    version 1  1
    height  4  uint32
    width   4  uint32
    planes  1  1 (gray) or 3 (RGB)
    nlen    1  length of the zoo name
    name    nlen  ASCII zoo name of the weights
    sha     8  first 16 hex digits of the weights' sha256
    tables  4  first 4 bytes of the sha256 of the CDF tables
    plen    4  uint32 payload length
    payload plen  the range coder's 32-bit words, little-endian
    crc     4  CRC-32 of everything before it

37 bytes plus the name; bpp counts all of it.

Marker chunks (optional, after the CRC): wrappers such as residual hiding
leave a payload the way a JPEG COM segment does (``codecs.markers``); each
chunk is::

    magic   4  b"CKMK"
    len     4  uint32 payload length
    payload len
    crc     4  CRC-32 of the payload

Decoding ignores them; a file whose trailing bytes are not well-formed
chunks is damaged. bpp counts them too (they are in the file).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..base import Codec, check_image, check_quality
from ...errors import CodecError
from ...zoo.record import WeightsRecord
from ...zoo.registry import load_codec_weights
from ...zoo.select import candidates, select_weights
from .entropy_coding import build_tables, decode_symbols, encode_symbols
from ...io import check_pixel_limit, to_tensor, to_uint8

MAGIC = b"CKFP"
VERSION = 1
_HEAD = struct.Struct(">4sBIIBB")
_TAIL = struct.Struct(">8s4sI")
_KIND = "learned-codec"
MARKER_MAGIC = b"CKMK"
_CHUNK = struct.Struct(">4sI")


# -- container ---------------------------------------------------------------
def pack(height: int, width: int, planes: int, model: str, sha256_hex: str, tables_digest: bytes,
         payload: bytes) -> bytes:
    name = model.encode("ascii")
    if len(name) > 255 or not (0 < height < 2 ** 32 and 0 < width < 2 ** 32):
        raise CodecError("factorized: model name or image size does not fit the container")
    body = (_HEAD.pack(MAGIC, VERSION, height, width, planes, len(name)) + name
            + _TAIL.pack(bytes.fromhex(sha256_hex[:16]), tables_digest, len(payload)) + payload)
    return body + struct.pack(">I", zlib.crc32(body))


def is_ckfp(data: bytes) -> bool:
    """Whether ``data`` starts like a factorized-prior file (its magic)."""
    return bytes(data[:4]) == MAGIC


def core_length(data: bytes) -> int | None:
    """Bytes of the container proper (up to its CRC, before any marker
    chunk) by its header, or None where there is no whole header."""
    if len(data) < _HEAD.size or bytes(data[:4]) != MAGIC:
        return None
    nlen = data[_HEAD.size - 1]
    fixed = _HEAD.size + nlen + _TAIL.size
    if len(data) < fixed:
        return None
    return fixed + _TAIL.unpack_from(data, _HEAD.size + nlen)[2] + 4


def marker_chunks(data: bytes, start: int) -> list[bytes] | None:
    """The payloads of the marker chunks from ``start`` to the end, or None
    if those bytes are not well-formed chunks."""
    out, pos = [], start
    while pos < len(data):
        if pos + _CHUNK.size > len(data):
            return None
        magic, size = _CHUNK.unpack_from(data, pos)
        end = pos + _CHUNK.size + size
        if magic != MARKER_MAGIC or end + 4 > len(data):
            return None
        payload = bytes(data[pos + _CHUNK.size:end])
        if struct.unpack(">I", data[end:end + 4])[0] != zlib.crc32(payload):
            return None
        out.append(payload)
        pos = end + 4
    return out


def append_marker(data: bytes, payload: bytes) -> bytes:
    """``data`` (a whole factorized-prior file) with one more marker chunk."""
    core = core_length(data)
    if core is None or core > len(data) or marker_chunks(data, core) is None:
        raise CodecError("marker: the factorized-prior encoder did not return a well-formed file")
    if len(payload) >= 2 ** 32:
        raise CodecError(f"marker of {len(payload)} bytes is too long for a factorized-prior chunk")
    return bytes(data) + _CHUNK.pack(MARKER_MAGIC, len(payload)) + payload + struct.pack(">I", zlib.crc32(payload))


def read_markers(data: bytes) -> list[bytes]:
    """The marker payloads of a factorized-prior file; [] for anything else
    (or damaged chunks): never raises, so any file can be probed."""
    data = bytes(data)
    core = core_length(data)
    if core is None or core > len(data):
        return []
    return marker_chunks(data, core) or []


def unpack(data: bytes) -> dict:
    """The fields of a container; any damage is a one-line CodecError.
    Marker chunks after it are checked and skipped."""
    data = bytes(data)
    if len(data) < _HEAD.size or data[:4] != MAGIC:
        raise CodecError("not a factorized-prior file (bad magic)")
    magic, version, height, width, planes, nlen = _HEAD.unpack_from(data)
    if version != VERSION:
        raise CodecError(f"factorized-prior file version {version} is not supported (this carkit reads {VERSION})")
    fixed = _HEAD.size + nlen + _TAIL.size
    if len(data) < fixed + 4:
        raise CodecError("truncated factorized-prior file")
    sha, digest, plen = _TAIL.unpack_from(data, _HEAD.size + nlen)
    end = fixed + plen + 4
    if len(data) < end or (len(data) > end and marker_chunks(data, end) is None):
        raise CodecError(f"truncated or padded factorized-prior file ({len(data)} bytes, header says "
                         f"{end} plus marker chunks)")
    if struct.unpack(">I", data[end - 4:end])[0] != zlib.crc32(data[:end - 4]):
        raise CodecError("corrupt factorized-prior file (CRC mismatch)")
    if planes not in (1, 3) or height == 0 or width == 0:
        raise CodecError(f"damaged factorized-prior header ({height}x{width}, {planes} planes)")
    try:
        model = data[_HEAD.size:_HEAD.size + nlen].decode("ascii")
    except UnicodeDecodeError:
        raise CodecError("damaged factorized-prior header (model name)") from None
    return {"height": height, "width": width, "planes": planes, "model": model, "sha256": sha.hex(),
            "tables": digest, "payload": data[fixed:fixed + plen]}


# -- zoo weights -------------------------------------------------------------
#: the model family of the factorized-prior codec's weights (the learned-codec role holds others too)
_FAMILY = "factorized_prior"


def _weights() -> list[WeightsRecord]:
    """The package's factorized-prior weights."""
    return candidates(_KIND, family=_FAMILY)


def choose_weights(quality: int) -> str:
    """The entry whose quality range covers ``quality``, else the nearest
    range, then the name (:func:`carkit.zoo.select.select_weights`)."""
    name = select_weights(_KIND, quality, family=_FAMILY)
    if name is None:
        raise CodecError("no factorized-prior weights in the zoo "
                         "(train them with recipes/learned/*.toml and `carkit zoo export`)")
    return name


#: the coder's tables per (zoo name, weights sha256), built once per process
#: (they take most of a small image's decode time)
_TABLES: dict = {}


class FactorizedCodec(Codec):
    """Ballé 2018 factorized prior + range coding (constriction), ``.ckfp`` files.

    ``model`` names the zoo weights (default: by quality, :func:`choose_weights`)."""

    name = "factorized"
    extension = ".ckfp"

    @staticmethod
    def sniff(data: bytes) -> bool:
        return is_ckfp(data)

    def __init__(self, model: str | None = None):
        self.model = model
        self._loaded: dict = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import constriction  # noqa: F401
        except ImportError:
            return "the constriction package is not installed (pip install constriction)"
        if not _weights():
            return "no factorized-prior weights in the zoo"
        return None

    @classmethod
    def library(cls) -> str | None:
        from importlib.metadata import version

        import torch

        return f"constriction {version('constriction')}, torch {torch.__version__}"

    def load(self, name: str, sha256: str | None = None):
        """(network, record, tables) of zoo entry ``name``, cached per codec."""
        if name not in self._loaded:
            net, record = load_codec_weights(name, _KIND, "factorized-prior")
            key = (name, record.sha256)
            if key not in _TABLES:  # a deterministic function of the (sha256-checked) weights
                _TABLES[key] = build_tables(net.entropy_bottleneck)
            self._loaded[name] = (net, record, _TABLES[key])
        net, record, tables = self._loaded[name]
        if sha256 is not None and not record.sha256.startswith(sha256):
            raise CodecError(f"this file was coded with other {name} weights "
                             f"(sha256 {sha256}, the zoo has {record.sha256[:16]})")
        return net, record, tables

    def distinct_qualities(self, qualities) -> tuple[int, ...]:
        """Of ``qualities``, those inside a zoo entry's quality range, the
        first per entry: one point per trained rate point (qualities of one
        entry give the same file). A fixed ``model`` gives one file whatever
        the quality: the first quality only."""
        if self.model:
            return tuple(int(q) for q in qualities)[:1]
        ranges = {r.name: r.qualities for r in _weights()}
        out, seen = [], set()
        for q in qualities:
            name = next((n for n, (lo, hi) in ranges.items() if lo <= q <= hi), None)
            if name is not None and name not in seen:
                seen.add(name)
                out.append(int(q))
        return tuple(out)

    def differentiable(self, quality: int):
        """The frozen network of the entry serving ``quality`` as a torch
        callable: g_s(dequantize(symbols(g_a(x)))) with straight-through
        rounding, i.e. in value exactly what ``decode`` computes from the
        file's symbols (before clipping and 8-bit rounding), with gradients
        through g_a and g_s to the input (residual hiding's deep-codec proxy).
        Gray (N, 1, H, W) input is coded as three equal planes and returned as
        their mean, as the file does."""
        import torch

        net, _, tables = self.load(self.model or choose_weights(check_quality(quality)))
        net.requires_grad_(False)
        medians = torch.from_numpy(tables.medians)

        def code(x: torch.Tensor) -> torch.Tensor:
            with torch.autocast(x.device.type, enabled=False):
                rgb = x.float().expand(-1, 3, -1, -1) if x.shape[1] == 1 else x.float()
                y = net.to(x.device).analysis(rgb)
                y_hat = net.entropy_bottleneck.dequantize(net.entropy_bottleneck.symbols(y, medians), medians)
                out = net.synthesis(y + (y_hat - y).detach(), tuple(x.shape[-2:]))
                return out.mean(dim=1, keepdim=True) if x.shape[1] == 1 else out

        return code

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        import torch

        image = check_image(image)
        quality = check_quality(quality)
        name = self.model or choose_weights(quality)
        net, record, tables = self.load(name)
        rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
        with torch.inference_mode():
            y = net.analysis(to_tensor(rgb))
            symbols = net.entropy_bottleneck.symbols(y, torch.from_numpy(tables.medians))
        payload = encode_symbols(symbols[0].reshape(symbols.shape[1], -1).numpy(), tables)
        return pack(image.shape[0], image.shape[1], 1 if image.ndim == 2 else 3, name, record.sha256,
                    tables.digest, payload)

    def decode(self, data: bytes) -> np.ndarray:
        import torch

        from ...models.factorized_prior import latent_size

        head = unpack(data)
        check_pixel_limit(head["width"], head["height"], "factorized-prior file")  # before any allocation
        net, record, tables = self.load(head["model"], head["sha256"])
        if head["tables"] != tables.digest:
            raise CodecError(f"{head['model']}: this machine's CDF tables differ from the encoder's "
                             "(same weights, different float math)")
        size = (head["height"], head["width"])
        h, w = latent_size(*size)
        symbols = decode_symbols(head["payload"], tables, h * w)
        with torch.inference_mode():
            medians = torch.from_numpy(tables.medians)
            y_hat = net.entropy_bottleneck.dequantize(torch.from_numpy(symbols).view(1, -1, h, w), medians)
            x_hat = net.synthesis(y_hat, size)
            if head["planes"] == 1:
                x_hat = x_hat.mean(dim=1, keepdim=True)
        return to_uint8(x_hat)
