"""Range coding of integer latents with per-channel quantized CDF tables,
using ``constriction`` (Bamler, "Understanding Entropy Coding With Asymmetric
Numeral Systems (ANS): a Statistician's Perspective", 2022; its
``stream.queue.RangeEncoder``/``RangeDecoder``).

Tables (:func:`build_tables`): for every latent channel c, the learned
density's discrete distribution over a finite support of symbols
[lo_c, lo_c + n_c) (``EntropyBottleneck.pmf_table``: the 1e-9 tail quantiles,
at most +-4096) plus one *escape* symbol n_c carrying the tail mass. The
float64 probabilities are quantized to integer frequencies that sum to
2^16, each at least 1 (so every symbol, escape included, costs at most 16
bits); these integers are the model the coder sees, computed by a fixed
integer algorithm from the weights, so encoder and decoder build the same
tables. ``digest`` (4 bytes of their sha256) travels in the file, so a
decoder whose float math produced other tables refuses instead of
decoding garbage.

constriction turns each integer table into its own fixed-point model
(``Categorical(..., perfect=False)``, a deterministic function of the
table); files therefore depend on that function, which is why pyproject pins
constriction to 0.5.x and the codec's ``library()`` records its version.

Stream (:func:`encode_symbols`), one range coder, in this order:

1. channel by channel, the symbols s - lo_c of all positions (raster order),
   out-of-support symbols as the escape;
2. then, for every escape in the same order, its distance d beyond the
   support edge (d = s - hi_c > 0 or s - lo_c < 0) as a sign (uniform over
   2), an Exp-Golomb length k = bit_length(|d|) (uniform over 32) and the
   k - 1 low bits of |d| (uniform over 2^(k-1)). Symbols are clamped to
   +-2^20 by the model (``entropy_bottleneck.MAX_SYMBOL``), so k <= 22 and
   every uniform alphabet stays below constriction's 2^24 limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ...errors import CodecError

PRECISION = 16
TAIL_MASS = 1e-9
MAX_HALF = 4096


@dataclass
class CDFTables:
    """Per-channel integer frequency tables of the coder (see module docstring)."""

    medians: np.ndarray      # (C,) float32, the rounding offsets
    lo: np.ndarray           # (C,) int64, the first in-support symbol
    length: np.ndarray       # (C,) int64, n_c in-support symbols; index n_c is the escape
    freqs: np.ndarray        # (C, max n_c + 1) int64, zero-padded, row c sums to 2^PRECISION
    _models: list = field(default_factory=list, repr=False)

    @property
    def channels(self) -> int:
        return int(self.lo.shape[0])

    def cdf(self, c: int) -> np.ndarray:
        """The quantized CDF of channel c: n_c + 2 integers from 0 to 2^PRECISION."""
        f = self.freqs[c, :self.length[c] + 1]
        return np.concatenate([[0], np.cumsum(f)])

    @property
    def digest(self) -> bytes:
        """4 bytes identifying the tables (medians included)."""
        h = hashlib.sha256()
        for a in (self.medians.astype("<f4"), self.lo.astype("<i8"), self.length.astype("<i8"),
                  self.freqs.astype("<i8")):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.digest()[:4]

    def models(self) -> list:
        """One constriction Categorical per channel (built once)."""
        if not self._models:
            import constriction

            self._models = [constriction.stream.model.Categorical(
                self.freqs[c, :self.length[c] + 1].astype(np.float64), perfect=False)
                for c in range(self.channels)]
        return self._models


def quantize_pmf(pmf: np.ndarray, tail: float, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies of (pmf..., tail), each >= 1, summing to 2^precision.

    Every entry gets 1 plus its floor share of the rest; what rounding leaves
    over goes to the most probable entry (the cheapest place to put it)."""
    p = np.append(np.asarray(pmf, dtype=np.float64), float(tail))
    p = np.clip(np.nan_to_num(p, nan=0.0), 0.0, None)
    total = 1 << precision
    if len(p) > total // 2:
        raise ValueError(f"a support of {len(p)} symbols does not fit {precision}-bit frequencies")
    s = p.sum()
    p = p / s if s > 0 else np.full_like(p, 1.0 / len(p))
    f = np.floor(p * (total - len(p))).astype(np.int64) + 1
    f[int(np.argmax(f))] += total - int(f.sum())
    return f


def build_tables(bottleneck, tail_mass: float = TAIL_MASS, max_half: int = MAX_HALF) -> CDFTables:
    """The coder's tables for an ``EntropyBottleneck`` (eval weights)."""
    t = bottleneck.pmf_table(tail_mass=tail_mass, max_half=max_half)
    channels, width = t["pmf"].shape
    freqs = np.zeros((channels, width + 1), dtype=np.int64)
    for c in range(channels):
        n = int(t["length"][c])
        freqs[c, :n + 1] = quantize_pmf(t["pmf"][c, :n], t["tail"][c])
    return CDFTables(medians=t["medians"], lo=t["lo"], length=t["length"], freqs=freqs)


def _uniform():
    import constriction

    return constriction.stream.model.Uniform


def encode_symbols(symbols: np.ndarray, tables: CDFTables) -> bytes:
    """Range-code (C, P) int symbols (P positions per channel) into bytes."""
    import constriction

    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.ndim != 2 or symbols.shape[0] != tables.channels:
        raise ValueError(f"expected ({tables.channels}, positions) symbols, got {symbols.shape}")
    encoder = constriction.stream.queue.RangeEncoder()
    escapes = []
    for c, model in enumerate(tables.models()):
        lo, n = int(tables.lo[c]), int(tables.length[c])
        index = symbols[c] - lo
        out = (index < 0) | (index >= n)
        index[out] = n
        encoder.encode(index.astype(np.int32), model)
        s = symbols[c][out]
        escapes.append(np.where(s < lo, s - lo, s - (lo + n - 1)))
    _encode_escapes(encoder, np.concatenate(escapes))
    return encoder.get_compressed().astype("<u4").tobytes()


def _encode_escapes(encoder, d: np.ndarray) -> None:
    if not d.size:
        return
    uniform = _uniform()
    mag = np.abs(d)
    k = np.frexp(mag.astype(np.float64))[1].astype(np.int64)  # bit_length(|d|), exact below 2^53
    encoder.encode((d < 0).astype(np.int32), uniform(2))
    encoder.encode((k - 1).astype(np.int32), uniform(32))
    big = k > 1
    if big.any():
        encoder.encode((mag[big] - (1 << (k[big] - 1))).astype(np.int32), uniform(),
                       (1 << (k[big] - 1)).astype(np.int32))


def decode_symbols(data: bytes, tables: CDFTables, positions: int) -> np.ndarray:
    """The (C, positions) int64 symbols of :func:`encode_symbols`' bytes."""
    import constriction

    if len(data) % 4:
        raise CodecError("the entropy-coded stream is not a whole number of 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    out = np.empty((tables.channels, positions), dtype=np.int64)
    escaped = []
    try:
        for c, model in enumerate(tables.models()):
            index = decoder.decode(model, positions).astype(np.int64)
            out[c] = index + tables.lo[c]
            hit = np.flatnonzero(index == tables.length[c])
            escaped.extend((c, i) for i in hit)
        if escaped:
            uniform = _uniform()
            count = len(escaped)
            negative = decoder.decode(uniform(2), count).astype(bool)
            k = decoder.decode(uniform(32), count).astype(np.int64) + 1
            mag = (1 << (k - 1)).astype(np.int64)
            big = k > 1
            if big.any():
                mag[big] += decoder.decode(uniform(), (1 << (k[big] - 1)).astype(np.int32)).astype(np.int64)
            rows = np.array([c for c, _ in escaped])
            cols = np.array([i for _, i in escaped])
            lo = tables.lo[rows]
            hi = lo + tables.length[rows] - 1
            out[rows, cols] = np.where(negative, lo - mag, hi + mag)
    except CodecError:
        raise
    except Exception as exc:  # constriction rejects some damaged streams
        raise CodecError(f"damaged entropy-coded stream ({exc})") from None
    return out
