"""On-the-fly degradation through the real codec (PROTOCOL.md: Pillow's
libjpeg-turbo, baseline, 4:2:0 for color, gray as a 1-component JPEG), or
through another codec of the registry (JPEG 2000, HEIF, ...) for restorers
trained as the baselines of that codec."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..codecs.jpeg import jpeg_roundtrip
from ..codecs import canonical_name, get_codec
from .folders import as_mode


@dataclass(frozen=True)
class Degradation:
    """A codec at a fixed quality (``qualities=(q,)``) or a quality drawn
    uniformly from an inclusive range (``quality_range=(lo, hi)``); a
    subclass says which codec (``__call__``)."""

    qualities: tuple[int, ...] = ()
    quality_range: tuple[int, int] | None = None

    #: whether ``pair`` wants color images even for a gray model (see PlaneOfColor)
    color_input = False

    def __post_init__(self):
        if not self.qualities and self.quality_range is None:
            raise ValueError("give qualities or quality_range")

    def sample_quality(self, rng: np.random.Generator) -> int:
        if self.quality_range is not None:
            lo, hi = self.quality_range
            return int(rng.integers(lo, hi + 1))
        return int(self.qualities[rng.integers(len(self.qualities))])

    def __call__(self, gt: np.ndarray, quality: int) -> np.ndarray:
        raise NotImplementedError

    def pair(self, gt: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
        """The training pair (target, degraded input) of one patch."""
        return gt, self(gt, quality)


@dataclass(frozen=True)
class JpegDegradation(Degradation):
    """JPEG through libjpeg-turbo (PROTOCOL.md)."""

    subsampling: str = "4:2:0"

    def __call__(self, gt: np.ndarray, quality: int) -> np.ndarray:
        return jpeg_roundtrip(gt, quality, self.subsampling)


@lru_cache(maxsize=None)
def _registry_codec(name: str):
    """One codec instance per name: degradation runs once a patch."""
    return get_codec(name)


@dataclass(frozen=True)
class CodecDegradation(Degradation):
    """Another codec of the registry (``carkit.codecs``) at its own quality
    scale: the residual hiding paper's DnCNN/MemNet baselines for JPEG 2000
    or HEVC are trained on that codec's output, as for JPEG."""

    codec: str = "jpeg2000"

    def __call__(self, gt: np.ndarray, quality: int) -> np.ndarray:
        return _registry_codec(self.codec).roundtrip(gt, quality).decoded


@dataclass(frozen=True)
class PlaneOfColor:
    """A gray model behind a codec other than JPEG learns from one plane of
    the *color* image's decoding, as it is used (restoring the Y of a decoded
    color file). Coding the gray plane alone would not match: JPEG 2000's
    rate control gives a 1-component image a third of a color image's bits
    at the same ratio. (JPEG keeps its 1-component coding, whose luma is the
    color file's: the same tables, no chroma in the rate control.)"""

    inner: CodecDegradation
    plane: str = "y"
    color_input = True

    def sample_quality(self, rng: np.random.Generator) -> int:
        return self.inner.sample_quality(rng)

    def pair(self, gt: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
        return as_mode(gt, True, self.plane), as_mode(self.inner(gt, quality), True, self.plane)


def make_degradation(codec: str = "jpeg", qualities=(), quality_range=None, subsampling: str = "4:2:0",
                     gray: bool = False, plane: str = "y") -> Degradation | PlaneOfColor:
    """The degradation of a recipe's ``data.codec`` (JPEG keeps its
    subsampling; a gray model behind another codec gets PlaneOfColor)."""
    kwargs = {"qualities": tuple(qualities), "quality_range": tuple(quality_range) if quality_range else None}
    if canonical_name(codec) == "jpeg":
        return JpegDegradation(subsampling=subsampling, **kwargs)
    other = CodecDegradation(codec=canonical_name(codec), **kwargs)
    return PlaneOfColor(other, plane) if gray else other
