"""The virtual codec as a product (Zhao et al. 2017; models in
carkit.models.virtual_codec): ``carkit encode --method vcnn`` and the
matching ``carkit decode``.

Encoding runs FDNN on the image and writes its half-resolution description
as a standard baseline JPEG (Pillow/libjpeg-turbo, 4:2:0 for color): any
viewer opens it as a half-size thumbnail. A JPEG comment (COM) segment
carries the marker ``carkit-vcodec {json}`` naming the zoo weights, the
first 16 hex digits of their sha256 and the full image size. Decoding reads
the marker, decodes the JPEG and runs PPNN back to full size. Rates are the
file's bytes (marker included) over the *full* image's pixels.

Both networks run tile by tile (``tiling.tiled_regions``) with overlaps
wider than their receptive fields, so memory stays bounded on large images
and the result equals the untiled one.

Color images use color weights when the zoo has them. Otherwise they are
coded in *luma mode* (``"planes": "luma"`` in the marker): the gray pair
describes and restores the JFIF luma, while Cb and Cr are averaged over 2x2
into the description and upsampled bicubically after decoding (beyond the
paper, which only codes gray images).
"""

from __future__ import annotations

import json

import numpy as np

from ..base import Codec, check_image, check_quality
from ..markers import check_weights_digest, jpeg_read, json_marker
from ...errors import CodecError
from ...models.registry import Role
from ...zoo.registry import load_codec_weights
from ...zoo.select import candidates, select_weights
from ...color import rgb_to_ycbcr_jpeg, ycbcr_jpeg_to_rgb
from ..jpeg import JpegCodec
from .._pillow import pil_decode, pil_encode
from ...io import check_pixel_limit, to_tensor, to_uint8

MARKER = b"carkit-vcodec "
#: description-grid tile and overlap for FDNN, image-grid ones for PPNN
DESCRIBE_TILE, DESCRIBE_OVERLAP = 256, 32
RECONSTRUCT_TILE, RECONSTRUCT_OVERLAP = 512, 64


def choose_weights(gray: bool, quality: int) -> str:
    """The package's weights trained at ``quality`` or, failing that, at the
    nearest quality (the paper trains one pair per quality; then the name:
    :func:`carkit.zoo.select.select_weights`). Color images fall back to the
    gray weights (luma mode) when the package has no color pair. Only the
    package's weights are candidates: pairs in other weights folders (Jiang
    et al.'s directly connected baseline in weights/bench, same networks and
    same decoding) are used only when named (``model``)."""
    name = select_weights(Role.VCODEC, quality, gray=gray)
    if name is None and not gray:
        name = select_weights(Role.VCODEC, quality, gray=True)
    if name is None:
        raise CodecError("no virtual-codec weights in the zoo "
                         "(train one with recipes/vcodec/*.toml and `carkit zoo export`)")
    return name


def _pad_even(x):
    """Replicate one row/column so both sides are even (the description grid)."""
    import torch.nn.functional as F

    return F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate")


def describe_luma(net, rgb):
    """Luma mode: (1, 3, H, W) RGB -> (1, 3, ceil(H/2), ceil(W/2)) RGB description
    whose luma is FDNN's description of the image's luma and whose chroma is
    the image's chroma averaged over 2x2."""
    import torch
    import torch.nn.functional as F

    ycc = rgb_to_ycbcr_jpeg(rgb)
    chroma = F.avg_pool2d(_pad_even(ycc[:, 1:]), 2)
    return ycbcr_jpeg_to_rgb(torch.cat([describe(net, ycc[:, :1].clamp(0, 1)), chroma], 1))


def reconstruct_luma(net, z, size: tuple[int, int]):
    """Luma mode: the decoded (1, 3, h, w) RGB description -> (1, 3, H, W) RGB,
    PPNN on the luma, bicubic on the chroma."""
    import torch
    import torch.nn.functional as F

    ycc = rgb_to_ycbcr_jpeg(z)
    chroma = F.interpolate(ycc[:, 1:], scale_factor=2, mode="bicubic", align_corners=False)
    return ycbcr_jpeg_to_rgb(torch.cat([reconstruct(net, ycc[:, :1], size),
                                        chroma[..., :size[0], :size[1]]], 1))


def describe(net, x, tile: int = DESCRIBE_TILE, overlap: int = DESCRIBE_OVERLAP):
    """FDNN of (1, C, H, W) in tiles: the (1, C, ceil(H/2), ceil(W/2)) description."""
    from ...models.virtual_codec import description_size
    from ...nn.tiling import tiled_regions

    size = description_size(*x.shape[-2:])
    return tiled_regions(lambda y0, y1, x0, x1: net.describe(x[..., 2 * y0:2 * y1, 2 * x0:2 * x1]),
                         size, tile, overlap, device=x.device)


def reconstruct(net, z, size: tuple[int, int], tile: int = RECONSTRUCT_TILE, overlap: int = RECONSTRUCT_OVERLAP):
    """PPNN of a (1, C, h, w) decoded description in tiles of the output: (1, C, H, W)."""
    from ...nn.tiling import tiled_regions

    def region(y0, y1, x0, x1):  # y0, x0 are even (tiles sit on multiples of 8)
        return net.ppnn(z[..., y0 // 2:(y1 + 1) // 2, x0 // 2:(x1 + 1) // 2])[..., :y1 - y0, :x1 - x0]

    return tiled_regions(region, size, tile, overlap, device=z.device)


def read_marker(data: bytes) -> dict | None:
    """The marker of a virtual-codec JPEG, or None for any other file."""
    comment = next((c for c in jpeg_read(data) if c.startswith(MARKER)), None)
    if comment is None:
        return None
    marker = json_marker(comment, MARKER, {"model": str, "sha256": str, "height": int, "width": int},
                         "carkit-vcodec")
    check_weights_digest(marker, "carkit-vcodec")
    return marker


class VirtualCodecCodec(Codec):
    """FDNN -> JPEG -> PPNN behind the one codec interface.

    ``model`` names the zoo weights (default: chosen per image by its mode and
    the quality, :func:`choose_weights`)."""

    name = "vcnn"
    extension = ".jpg"

    @staticmethod
    def sniff(data: bytes) -> bool:
        """A JPEG with a ``carkit-vcodec`` comment (checked when decoding)."""
        return any(c.startswith(MARKER) for c in jpeg_read(data))

    def __init__(self, model: str | None = None):
        self.model = model

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not candidates(Role.VCODEC):
            return "no virtual-codec weights in the zoo"
        return None

    @classmethod
    def library(cls) -> str | None:
        import torch

        return f"{JpegCodec.library()}, torch {torch.__version__}"

    def _net(self, name: str):
        return load_codec_weights(name, "vcodec", "virtual-codec")

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        import torch

        image = check_image(image)
        quality = check_quality(quality)
        gray = image.ndim == 2
        name = self.model or choose_weights(gray, quality)
        net, record = self._net(name)
        if gray and not record.gray:
            raise CodecError(f"{name} codes color images, this one is gray")
        luma = record.gray and not gray
        with torch.no_grad():
            y = (describe_luma if luma else describe)(net, to_tensor(image))
        marker = {"model": name, "sha256": record.sha256[:16], "height": image.shape[0], "width": image.shape[1]}
        if luma:
            marker["planes"] = "luma"
        return pil_encode(to_uint8(y), "JPEG", self.name, quality=quality, subsampling=2,
                          comment=MARKER + json.dumps(marker, separators=(",", ":")).encode())

    def decode(self, data: bytes) -> np.ndarray:
        import torch

        from ...models.virtual_codec import description_size

        marker = read_marker(data)
        if marker is None:
            raise CodecError("not a virtual-codec JPEG (no carkit-vcodec marker)")
        net, record = self._net(marker["model"])
        if not record.sha256.startswith(marker["sha256"]):
            raise CodecError(f"this file was coded with other {marker['model']} weights "
                             f"(sha256 {marker['sha256']}, the zoo has {record.sha256[:16]})")
        size = (marker["height"], marker["width"])
        check_pixel_limit(size[1], size[0], "carkit-vcodec file")  # the output, before anything is decoded
        luma = marker.get("planes") == "luma"
        if luma and not record.gray:
            raise CodecError(f"damaged carkit-vcodec marker: luma mode with the color model {marker['model']}")
        z = pil_decode(data, "JPEG", self.name)
        if z.shape[:2] != description_size(*size) or (z.ndim == 2) != (record.gray and not luma):
            raise CodecError(f"the JPEG's {z.shape} pixels do not fit the marker's {size} image")
        with torch.no_grad():
            if luma:
                return to_uint8(reconstruct_luma(net, to_tensor(z), size))
            return to_uint8(reconstruct(net, to_tensor(z), size))
