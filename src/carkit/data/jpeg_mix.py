"""JPEG training pairs as users meet them: every quality, gray and colour
files at several chroma subsamplings, double compression, and files written
by jpegli as well as libjpeg-turbo (other tables, adaptive quantization)
or with tables shaped unlike IJG's (as cameras and editors write), each pair
with the quantization tables read from its (last) file.

Batches are a pure function of (seed, rank, step), as in
:mod:`carkit.data.patches`, so a resumed run sees the batches it would have
seen. One batch has one kind of file (gray, 4:2:0, 4:2:2 or 4:4:4), so its
tensors stack; the kind is drawn per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codecs.jpeg import JpegCodec
from ..jpeg.tables import ijg_tables
from .folders import as_mode
from .patches import _to_chw, augment, random_patch

#: the kinds of file a batch can hold
KINDS = ("gray", "4:2:0", "4:2:2", "4:4:4")


@dataclass(frozen=True)
class QualityMix:
    """Qualities drawn from ``low`` (the papers' range) with probability
    ``p_low``, from ``high`` (photographs) with ``p_high``, else uniformly
    over ``lo..hi``; both ranges inclusive. The defaults weight 5..40 and
    60..95 equally (0.475 each) and leave 41..59 and 96..100 the rest."""

    low: tuple[int, int] = (5, 40)
    high: tuple[int, int] = (60, 95)
    p_low: float = 0.4
    p_high: float = 0.4
    lo: int = 5
    hi: int = 100

    def sample(self, rng: np.random.Generator) -> int:
        u = rng.random()
        a, b = self.low if u < self.p_low else self.high if u < self.p_low + self.p_high else (self.lo, self.hi)
        return int(rng.integers(a, b + 1))


def varied_tables(quality: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) (8, 8) tables of about ``quality`` shaped unlike IJG's:
    each of IJG's tables tilted over frequency (coarser or finer high
    frequencies against low, up to about 2x either way) with a jitter of
    about 15% per entry, clipped to 1..255 (baseline JPEG's range)."""
    freq = np.add.outer(np.arange(8), np.arange(8)) / 14.0 - 0.5
    out = []
    for table in ijg_tables(quality):
        scale = np.exp(rng.uniform(-0.7, 0.7) * freq + rng.normal(0.0, 0.15, (8, 8)))
        out.append(np.clip(np.round(table * scale), 1, 255).astype(np.int64))
    return out[0], out[1]


def _jpegli(subsampling: str):
    from ..codecs.jpegli import JpegliCodec   # imported when a recipe asks for jpegli's files

    return JpegliCodec(subsampling=subsampling)


def file_tables(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) (8, 8) quantization tables a JPEG file's first two
    components use (a gray file's chroma is its luma table)."""
    from ..jpeg.quality import read_quant_tables

    tables, slots = read_quant_tables(data)
    luma = tables[slots[0]]
    return luma, tables[slots[1]] if len(slots) > 1 else luma


class JpegMixBatches(Dataset):
    """Map-style dataset: item ``step`` is one batch ``{"lq", "gt": (B, C, P, P),
    "quality": (B,) the last compression's quality, "luma_table",
    "chroma_table": (B, 64) float, natural order, read from the last file}``.

    ``kinds``: probabilities of gray, 4:2:0, 4:2:2 and 4:4:4 batches (gray:
    the MATLAB Y of the patch as a 1-component JPEG, PROTOCOL.md).
    ``double``: the share of pairs compressed twice (first at another drawn
    quality, same subsampling); ``shift``: the share of those whose second
    coding sees the image moved by 1..7 px in each direction (a crop after
    the first decode), so the two block grids disagree. ``jpegli``: the
    share of pairs whose (last) file jpegli writes (``codecs/jpegli.py``,
    same subsampling), decoded by libjpeg-turbo as a viewer does;
    ``varied_tables``: the share of the other pairs coded by libjpeg-turbo
    with :func:`varied_tables` instead of IJG's.
    """

    def __init__(self, images: list[np.ndarray], patch_size: int, batch_size: int,
                 qualities: QualityMix = QualityMix(), kinds: tuple[float, ...] = (0.2, 0.6, 0.05, 0.15),
                 double: float = 0.2, shift: float = 0.5, seed: int = 0, rank: int = 0,
                 length: int = 10**9, jpegli: float = 0.0, varied_tables: float = 0.0):
        if len(kinds) != len(KINDS) or abs(sum(kinds) - 1) > 1e-6:
            raise ValueError(f"kinds: {len(KINDS)} probabilities ({', '.join(KINDS)}) summing to 1")
        margin = patch_size + 8
        self.images = [im for im in images if min(im.shape[:2]) >= margin]
        if not self.images:
            raise ValueError(f"no image is at least {margin}px on each side")
        self.patch_size, self.batch_size = patch_size, batch_size
        self.qualities, self.kinds = qualities, np.asarray(kinds, dtype=np.float64)
        for name, share in (("jpegli", jpegli), ("varied_tables", varied_tables)):
            if not 0 <= share <= 1:
                raise ValueError(f"{name}: a share 0..1, got {share}")
        self.double, self.shift, self.jpegli, self.varied_tables = double, shift, jpegli, varied_tables
        self.seed, self.rank, self.length = seed, rank, length

    def __len__(self) -> int:
        return self.length

    def sample(self, img: np.ndarray, kind: str, rng: np.random.Generator):
        """(gt, lq, last quality, luma table, chroma table) of one patch."""
        p = self.patch_size
        codec = JpegCodec(subsampling="4:4:4" if kind == "gray" else kind)
        gt = augment(random_patch(img, p + 8, rng, False), rng)
        gt = as_mode(gt, kind == "gray")
        q = self.qualities.sample(rng)
        if rng.random() < self.double:
            first = codec.decode(codec.encode(gt, self.qualities.sample(rng)))
            dy, dx = (rng.integers(1, 8, size=2) if rng.random() < self.shift else (0, 0))
            gt = gt[dy:dy + p, dx:dx + p]
            src = np.ascontiguousarray(first[dy:dy + p, dx:dx + p])
        else:
            gt = gt[:p, :p]
            src = gt
        # each share is drawn only when asked, so that runs without it draw the batches they always did
        src = np.ascontiguousarray(src)
        if self.jpegli and rng.random() < self.jpegli:
            data = _jpegli(codec.subsampling).encode(src, q)
        elif self.varied_tables and rng.random() < self.varied_tables:
            data = codec.encode_with_tables(src, varied_tables(q, rng)[:1 if kind == "gray" else 2])
        else:
            data = codec.encode(src, q)
        luma, chroma = file_tables(data)
        return np.ascontiguousarray(gt), codec.decode(data), q, luma, chroma

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, int(step)])
        kind = KINDS[int(rng.choice(len(KINDS), p=self.kinds))]
        rows = [self.sample(self.images[int(rng.integers(len(self.images)))], kind, rng)
                for _ in range(self.batch_size)]
        gts, lqs, qs, lum, chrom = zip(*rows)
        return {"lq": _to_chw(list(lqs)), "gt": _to_chw(list(gts)), "quality": torch.tensor(qs),
                "luma_table": torch.from_numpy(np.stack(lum).reshape(-1, 64)).float(),
                "chroma_table": torch.from_numpy(np.stack(chrom).reshape(-1, 64)).float()}
