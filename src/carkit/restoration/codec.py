"""Any codec followed by any zoo restorer: ``<codec>+<restorer>``.

The DESIGN's "any restorer can follow any codec": the bytes are the inner
codec's, unchanged (so the rate is the codec's), and decoding runs the
restorer on the decoded image. BlockCNN's Figure 10 combinations are
``jpeg``, ``jpeg+blockcnn-color``, ``blockcnn`` and ``blockcnn+blockcnn-color``.

    >>> codec = get_codec("jpeg+dagn-small")
    >>> rt = codec.roundtrip(image, quality=20)   # JPEG bytes, restored pixels
"""

from __future__ import annotations

import numpy as np

from ..errors import CarkitError, CodecError
from ..codecs.base import Codec
from ..codecs.registry import SEPARATOR
from ..zoo.registry import weights_record
from .restorer import Restorer


class RestoredCodec(Codec):
    """``inner`` codec, then the zoo model ``restorer`` on its output."""

    def __init__(self, inner: Codec, restorer: str):
        self.inner = inner
        self.restorer = restorer
        self.name = f"{inner.name}{SEPARATOR}{restorer}"
        self.extension = inner.extension
        self.supports_gray = inner.supports_gray
        try:
            self._restorer = Restorer(model=restorer)
        except CarkitError as exc:
            raise CodecError(f"{self.name}: restore model: {exc}") from exc

    def settings(self) -> dict:
        rec = weights_record(self.restorer)
        return {**self.inner.settings(), "codec": self.name,
                "restorer": {"name": self.restorer, "weights_sha256": rec.sha256}}

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        return self.inner.encode(image, quality)

    def restore(self, decoded: np.ndarray) -> np.ndarray:
        """The restorer on an image the inner codec decoded."""
        plan = self._restorer.plan(decoded.ndim == 2, None)
        return self._restorer.restore_pixels(decoded, plan)

    def decode(self, data: bytes) -> np.ndarray:
        return self.restore(self.inner.decode(data))
