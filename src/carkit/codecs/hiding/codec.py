"""Residual hiding as a product (the Residual hiding paper, Fig. 1; models in
carkit.models.residual_hiding): ``carkit encode --method hiding --codec jpeg``
and the matching ``carkit decode``.

Encoding (sender side): the standard codec first codes the original IH to
get IL and the residual IR = IH - IL; the encoder E hides IR in
IH_enc = E(IH, IR); the same codec at the same quality then codes IH_enc,
and that file is the output: a standard file any reader opens (it shows
IH_enc, which looks like a slightly sharpened IH, the paper's Fig. 4). A
marker ``carkit-hiding {json}`` names the zoo weights, the first 16 hex
digits of their sha256, the codec and the quality. Rates are the file's
bytes, marker included.

Decoding (receiver side): the codec decodes IL_enc, the decoder D recovers
I'R, the output is I'H = IL_enc + I'R. A JPEG without the marker was not
coded this way: it is restored by the best blind zoo restorer for its
quality instead (``restoration/restorer.py``'s choice), and the caller is told
so.

Both networks run tile by tile (``tiling.tiled_regions``) with overlaps
wider than their receptive fields, so memory stays bounded on large images
and the result equals the untiled one.

Codecs: a codec is supported when its files can carry the marker
(``codecs.markers.CARRIERS``): JPEG (a COM segment after the APPn headers),
a JPEG 2000 codestream (a COM segment in the main header), HEIF (a
top-level ``uuid`` box) and carkit's factorized-prior learned codec (a
``CKMK`` chunk after the .ckfp container, which its decoder skips); the coded image data are the codec's own bytes,
untouched. Each needs zoo weights trained with that codec
(``task_kwargs.codec`` of their recipe). The marker is found by its
content, whatever the file's extension; a marker naming another codec than
the file's format is reported as damage. A gray image for which the zoo
holds only a color pair is coded through it as three equal planes (a color
file; the marker's ``"gray": true`` makes decode return gray).
"""

from __future__ import annotations

import json
import numpy as np

from ..base import Codec, check_image, check_quality
from ..markers import CARRIERS, JPEG_WRITERS, check_weights_digest, find_payload, json_marker
from ...errors import CodecError
from .. import canonical_name, codec_class, get_codec
from ...zoo.registry import load_codec_weights
from ...zoo.defaults import HIDING_CARRIERS, HIDING_DEFAULTS, HIDING_STRENGTH
from ...zoo.select import candidates, select_weights
from ...models.registry import Role
from ...io import to_tensor, to_uint8
from .refine import refine_coded_image

MARKER = b"carkit-hiding "
#: tile and overlap of E and D (receptive fields of about 80 px: keep 48 px a side)
TILE, OVERLAP = 512, 96


def read_marker(data: bytes) -> dict | None:
    """The marker of a residual-hiding file, or None for any other file."""
    found = find_payload(data, MARKER)
    if found is None:
        return None
    carrier, payload = found
    marker = json_marker(payload, MARKER, {"model": str, "sha256": str, "codec": str, "quality": int},
                         "carkit-hiding")
    # the codec named must write the format the marker was found in (jpegli writes JPEG files too)
    named = CARRIERS.get(marker["codec"])
    if named is None or named.format != CARRIERS[carrier].format:
        raise CodecError(f"damaged carkit-hiding marker: it names {marker['codec'][:40]!r} inside a {carrier} file")
    check_weights_digest(marker, "carkit-hiding")
    if not isinstance(marker.get("gray", False), bool):
        raise CodecError("damaged carkit-hiding marker in this file ('gray' is not a boolean)")
    return marker


def trained_for(record) -> tuple[str, tuple[int, int]]:
    """(codec, (lo, hi)) a zoo entry of residual-hiding weights was trained
    with, as its record declares (one quality is ``(q, q)``)."""
    lo, hi = record.qualities
    return canonical_name(record.codec), (int(lo), int(hi))


def choose_weights(codec: str, gray: bool, quality: int) -> str:
    """The zoo weights trained for ``codec`` and the image's mode at ``quality``
    (one quality, or a range holding it) or, failing that, at the nearest
    quality; among equally near pairs the reviewed default of the codec
    (:data:`carkit.zoo.defaults.HIDING_DEFAULTS`), then the name
    (:func:`carkit.zoo.select.select_weights`). ``--model`` picks another."""
    name = select_weights(Role.HIDING, quality, codec=codec, gray=gray, prefer=HIDING_DEFAULTS.get(codec))
    if name is None:
        extra = [r.name for r in candidates(Role.HIDING, codec=codec, gray=gray, include_extra=True)]
        hint = (f"a checkout's weights/bench has {', '.join(extra)} (--model NAME)" if extra else
                "train one with recipes/hiding/*.toml and `carkit zoo export`")
        raise CodecError(f"no residual-hiding weights for {'gray' if gray else 'color'} images and {codec} in the zoo "
                         f"({hint})")
    return name


def default_carrier() -> str:
    """The codec under ``--method hiding`` without ``--codec``: the first of
    :data:`carkit.zoo.defaults.HIDING_CARRIERS` that is installed and has a
    pair in the zoo, else the first."""
    for codec in HIDING_CARRIERS:
        if codec_class(codec).unavailable_reason() is None and candidates(Role.HIDING, codec=codec):
            return codec
    return HIDING_CARRIERS[0]


def hide(net, image, residual, tile: int = TILE, overlap: int = OVERLAP, precision: str = "fp32"):
    """E of (1, C, H, W) image and residual in tiles: IH_enc; ``precision``
    resolved (``nn.precision``)."""
    from ...nn.precision import run_at
    from ...nn.tiling import tiled_regions

    return tiled_regions(lambda y0, y1, x0, x1: run_at(precision, net.hide, image[..., y0:y1, x0:x1],
                                                       residual[..., y0:y1, x0:x1]),
                         tuple(image.shape[-2:]), tile, overlap, device=image.device)


def reconstruct(net, decoded, tile: int = TILE, overlap: int = OVERLAP, precision: str = "fp32"):
    """D of a (1, C, H, W) decoded IL_enc in tiles: I'H = IL_enc + I'R."""
    from ...nn.precision import run_at
    from ...nn.tiling import tiled_apply

    return tiled_apply(lambda t: run_at(precision, net.reconstruct, t), decoded, tile, overlap)


def load_weights(name: str, sha256: str | None = None):
    """(network, record) of the zoo's E/D pair ``name``; ``sha256``, a
    marker's digest prefix, must match the zoo's weights."""
    return load_codec_weights(name, "hiding", "residual-hiding", sha256)


def fallback_note(plan) -> str:
    """The one line saying a file had no marker and what was done instead."""
    return f"no carkit-hiding marker: restored as a plain JPEG instead ({plan.explain()})"


class HidingCodec(Codec):
    """E -> standard codec -> D behind the one codec interface.

    ``codec`` is the codec underneath (registered name with a marker carrier;
    default :func:`default_carrier`, jpegli where installed),
    ``model`` names the zoo weights (default: chosen by the image's mode and
    the quality, :func:`choose_weights`); ``precision`` of E and D: auto
    (bf16 with channels_last where the CPU computes bf16 natively, about 3x
    faster there), fp32 or bf16. E's bf16 rounding changes the coded image
    by far less than the codec's own quantization, and D reads any file
    at either precision: a file is not tied to the machine that wrote it.
    ``strength``: the share of E's change the file carries, IH + strength *
    (E(IH, IR) - IH), 0..1 (default: the pair's reviewed value,
    :data:`carkit.zoo.defaults.HIDING_STRENGTH`, else 1, the paper's E):
    lower looks more like the original in an ordinary viewer. Not in the
    paper; D is unchanged and needs no setting to decode. ``refine``: steps
    of encoder-side refinement of the coded image through the real codec and
    D (:mod:`.refine`; JPEG carriers; 0, the default, is off): a better
    reconstruction for about the same bytes, each step costing about one D
    pass forward and backward. ``progress`` is called with 1 per refinement step."""

    name = "hiding"
    extension = ".jpg"

    @staticmethod
    def sniff(data: bytes) -> bool:
        """A file with a ``carkit-hiding`` payload in a carrier (checked when decoding)."""
        return find_payload(data, MARKER) is not None

    def __init__(self, codec: str | None = None, model: str | None = None, tile: int = TILE,
                 overlap: int = OVERLAP, precision: str = "auto", strength: float | None = None,
                 refine: int = 0, progress=None):
        from ...nn.precision import resolve_precision

        self.precision = resolve_precision(precision)
        if strength is not None and not 0 <= strength <= 1:
            raise CodecError(f"hiding: strength is a share of E's change, 0..1, got {strength}")
        self.strength = strength
        base = canonical_name(codec or default_carrier())
        if base not in CARRIERS:
            raise CodecError(f"hiding: {base} files cannot carry the marker (supported: {', '.join(sorted(CARRIERS))})")
        if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
            raise CodecError(f"hiding: refine is a number of steps, 0 or more, got {refine!r}")
        if refine and base not in JPEG_WRITERS:
            raise CodecError(f"hiding: refine needs a JPEG carrier ({', '.join(JPEG_WRITERS)}), not {base}")
        self.refine, self.progress = refine, progress
        self.codec = base
        self.model = model
        self.tile, self.overlap = int(tile), int(overlap)
        self._base = get_codec(base)
        self.extension = self._base.extension

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not candidates(Role.HIDING):
            return "no residual-hiding weights in the zoo"
        return None

    def _weights(self, name: str, sha256: str | None = None):
        """(network, record) of the E/D pair ``name`` (the zoo's; a bench
        scoring a training run overrides this)."""
        return load_weights(name, sha256)

    def settings(self) -> dict:
        """The base codec's settings and library (and torch's), under this codec's name."""
        import torch

        out = {**self._base.settings(), "codec": self.name, "base_codec": self.codec, "model": self.model,
               "precision": self.precision,
               "strength": self.strength_of(self.model) if self.model else self.strength, "refine": self.refine}
        out["library"] = f"{out['library']}, torch {torch.__version__}"
        return out

    def strength_of(self, name: str) -> float:
        """The share of E's change coded for pair ``name``: the asked one, else its reviewed value, else 1."""
        return float(self.strength if self.strength is not None else HIDING_STRENGTH.get(name, 1.0))

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        import torch

        image = check_image(image)
        quality = check_quality(quality)
        gray = image.ndim == 2
        # A gray image with only color weights for the codec is coded through the color pair
        # (three equal planes, a color file); the marker says so and decode returns gray again.
        via_color = (gray and not self.model and not candidates(Role.HIDING, codec=self.codec, gray=True)
                     and bool(candidates(Role.HIDING, codec=self.codec, gray=False)))
        if via_color:
            image, gray = np.repeat(image[..., None], 3, axis=2), False
        name = self.model or choose_weights(self.codec, gray, quality)
        net, record = self._weights(name)
        if gray != record.gray:
            raise CodecError(f"{name} codes {'gray' if record.gray else 'color'} images, this one is "
                             f"{'gray' if gray else 'color'}")
        if trained_for(record)[0] != self.codec:
            raise CodecError(f"{name} was trained for {trained_for(record)[0]}, not {self.codec}")
        original = to_tensor(image)
        residual = original - to_tensor(self._base.roundtrip(image, quality).decoded)   # IR = IH - IL
        with torch.no_grad():
            encoded = hide(net, original, residual, self.tile, self.overlap, self.precision)
        strength = self.strength_of(name)
        if strength != 1:
            encoded = original + strength * (encoded - original)
        if self.refine:
            pixels = refine_coded_image(net, original, encoded, self._base, quality, self.refine, self.precision,
                                        self.tile, self.overlap, self.progress)
        else:
            pixels = to_uint8(encoded)
        marker = {"model": name, "sha256": record.sha256[:16], "codec": self.codec, "quality": quality}
        if via_color:
            marker["gray"] = True
        data = self._base.encode(pixels, quality)
        return CARRIERS[self.codec].write(data, MARKER + json.dumps(marker, separators=(",", ":")).encode())

    def decode(self, data: bytes) -> np.ndarray:
        """E/D's reconstruction of a marked file. A file without the marker is
        refused: ``carkit.api.decode_file(data, method="hiding")`` restores
        such a JPEG blind instead and says so (:func:`fallback_note`)."""
        import torch

        marker = read_marker(data)
        if marker is None:
            raise CodecError("not a residual-hiding file (no carkit-hiding marker)")
        net, record = self._weights(marker["model"], marker["sha256"])
        decoded = get_codec(marker["codec"]).decode(data)
        if (decoded.ndim == 2) != record.gray:
            raise CodecError(f"damaged carkit-hiding file: {'gray' if decoded.ndim == 2 else 'color'} pixels "
                             f"for the {'gray' if record.gray else 'color'} model {marker['model']}")
        with torch.no_grad():
            pixels = to_uint8(reconstruct(net, to_tensor(decoded), self.tile, self.overlap, self.precision))
        if marker.get("gray") and pixels.ndim == 3:
            # a gray original coded through the color pair: its three planes were equal
            pixels = np.round(pixels.astype(np.float32).mean(axis=2)).astype(np.uint8)
        return pixels
