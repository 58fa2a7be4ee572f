"""One interface for every image codec, learned or standard.

A codec maps uint8 images (H, W) or (H, W, 3) to bytes and back. Rates are
always measured from the real bytes (PROTOCOL.md: bpp = 8 * bytes / (H * W)).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import CodecError
from ..jpeg.tables import check_quality  # noqa: F401  (re-exported: codecs take JPEG's 1..100)


@dataclass
class RoundTrip:
    """Result of encoding then decoding one image."""

    decoded: np.ndarray
    data: bytes
    encode_s: float
    decode_s: float

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        h, w = self.decoded.shape[:2]
        return 8.0 * self.nbytes / (h * w)


class Codec:
    """Base class: subclasses set ``name`` and implement encode/decode.

    ``quality`` is the codec's own rate knob, an int 1..100 (higher = better),
    so every codec can be swept the same way in RD benchmarks.

    Class attributes a subclass may set:
    - ``extension``: the file suffix of what ``encode`` returns;
    - ``lossless``: True when decode(encode(x)) == x at every quality;
    - ``supports_gray``: False when the format has no 1-component mode. Such a
      codec's ``decode`` returns RGB; ``roundtrip`` of a gray image then returns
      the G channel (a gray picture coded as RGB decodes to channels that agree
      within +-1; G carries the largest luma weight).

    - ``plain_image``: True when its files are standard images that any
      reader opens as they are (decode dispatch reads them with ``carkit.io``,
      metadata kept).

    Hooks: ``unavailable_reason()`` (None when this machine can run the codec)
    and ``library()`` (the version string of the library doing the work), both
    used by the registry and by result provenance through ``settings()``;
    ``sniff(data)`` and ``for_file(data)`` for decode dispatch
    (:func:`carkit.codecs.registry.sniff`).
    """

    name: str = "codec"
    extension: str = ".bin"
    lossless: bool = False
    supports_gray: bool = True
    plain_image: bool = False

    @staticmethod
    def sniff(data: bytes) -> bool:
        """Whether ``data`` is this codec's file, by its content alone (magic
        bytes, a marker): cheap, and never raises on foreign or damaged bytes."""
        return False

    @classmethod
    def for_file(cls, data: bytes) -> "Codec":
        """A codec set up to decode ``data``, a file its ``sniff`` recognised,
        with what the file itself names (its header or marker)."""
        return cls()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the codec can run here, else a one-line reason."""
        return None

    @classmethod
    def library(cls) -> str | None:
        """Name and version of the underlying library, for provenance."""
        return None

    def settings(self) -> dict:
        """Everything that fixes the codec's output besides quality: the codec
        name, its public constructor options, and the library version."""
        out = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        out["codec"] = self.name
        out["library"] = self.library()
        return out

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def differentiable(self, quality: int):
        """A torch callable (N, C, H, W) in [0, 1] -> the codec's decode,
        differentiable, for learned codecs (the Residual hiding paper's Fig. 2:
        a deep codec is its own compression proxy); standard codecs have none."""
        raise CodecError(f"{self.name} is not differentiable; train through it with a compression proxy "
                         "(Strategy I or II)")

    def distinct_qualities(self, qualities) -> tuple[int, ...]:
        """Of ``qualities``, those that give different files (RD sweeps):
        all of them for a codec whose rate every quality steers."""
        return tuple(int(q) for q in qualities)

    def roundtrip(self, image: np.ndarray, quality: int) -> RoundTrip:
        image = check_image(image)
        t0 = time.perf_counter()
        data = self.encode(image, quality)
        t1 = time.perf_counter()
        decoded = self.decode(data)
        if image.ndim == 2 and decoded.ndim == 3:
            decoded = np.ascontiguousarray(decoded[:, :, 1])
        t2 = time.perf_counter()
        if decoded.shape != image.shape or decoded.dtype != np.uint8:
            raise CodecError(
                f"{self.name}: decoded {decoded.dtype}{decoded.shape}, expected uint8{image.shape}")
        return RoundTrip(decoded=decoded, data=data, encode_s=t1 - t0, decode_s=t2 - t1)


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate a codec input: uint8, (H, W) or (H, W, 3), non-empty. Returns it
    C-contiguous. Alpha is never coded (``carkit.io`` keeps it aside)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"codec input must be uint8, got {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"codec input must be (H, W) or (H, W, 3), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"codec input is empty, shape {arr.shape}")
    return np.ascontiguousarray(arr)
