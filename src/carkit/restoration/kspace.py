"""``carkit restore --model hrcnn...``: restore straight from a JPEG file's
quantized DCT coefficients (HR-CNN, Niu 2020), never calling a pixel decoder.

The file's coefficients and tables are read with jpeglib
(``carkit.jpeg.kspace.read_kspace``); the k-space code runs through the
model tile by tile (tiles on the 8x8 grid, so each tile is whole blocks);
the output is cropped to the image size, EXIF orientation applied (read
from the header, not from decoded pixels) and written atomically.

The paper's models are gray (one plane: trained on the green channel, they
restore one-component JPEGs); a per-quality model is told when the file's
tables are not the ones it was trained on. ``hrcnn-color`` restores YCbCr
files, each plane read at its own resolution (4:2:0 chroma at half size).
"""

from __future__ import annotations


import numpy as np
import torch

from ..errors import CarkitError, InvalidTableError
from ..io import check_pixel_limit, orient, read_image_header, to_uint8
from ..zoo.registry import weights_record
from ..nn.tiling import tiled_regions
from ..jpeg.kspace import blocks_to_plane
from ..jpeg.coefficients import read_coefficients
from ..jpeg.files import require_jpeg_bytes
from ..jpeg.jpegfile import read_source_bytes
from ..jpeg.quality import estimate_quality_of_file
from .plan import RestorePlan, Restored


def restore_coefficients(net: torch.nn.Module, coeffs, tile: int = 512, overlap: int = 32,
                         device: str = "cpu") -> np.ndarray:
    """A JPEG's coefficients (``JpegCoefficients``) -> restored uint8 pixels,
    tile by tile, without any pixel decoding: (H, W) from a one-component
    file with a gray model, (H, W, 3) from a YCbCr file with the colour model."""
    color = getattr(net, "in_channels", 1) == 3
    n = len(coeffs.components)
    if not color and n != 1:
        raise CarkitError(f"this HR-CNN restores one-component (gray) JPEGs from their coefficients; "
                          f"this file has {n} components (use hrcnn-color)")
    if color and (n != 3 or coeffs.color_space != "ycbcr"):
        raise CarkitError(f"hrcnn-color restores 3-component YCbCr JPEGs; this file is {coeffs.color_space} "
                          f"with {n} component(s)")
    hmax = max(h for h, _ in coeffs.sampling)
    vmax = max(v for _, v in coeffs.sampling)
    # Whole MCUs, so every plane covers the same area: a file stores only the
    # blocks inside the image per component (a 120 px wide 4:2:0 image has 15
    # luma but 8 chroma blocks); extra blocks repeat the edge block, much as
    # the encoder's own MCU padding repeats edge pixels. They are cropped off.
    mcu_rows, mcu_cols = -(-coeffs.height // (8 * vmax)), -(-coeffs.width // (8 * hmax))
    planes = []
    for comp, (h, v) in zip(coeffs.components, coeffs.sampling):
        pad = ((0, mcu_rows * v - comp.shape[0]), (0, mcu_cols * h - comp.shape[1]), (0, 0), (0, 0))
        whole = np.pad(comp, pad, mode="edge")
        planes.append(torch.from_numpy(blocks_to_plane(whole).astype(np.float32))[None, None])
    tables = [torch.from_numpy(np.asarray(t, dtype=np.float32)).to(device) for t in coeffs.quant_tables]
    # Region (y0, y1, x0, x1) of the luma grid -> the same region of each plane.
    steps = [(vmax // v, hmax // h) for h, v in coeffs.sampling]
    align = 8 * max(vmax, hmax)

    def region(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        parts = [p[:, :, y0 // sy:-(-y1 // sy), x0 // sx:-(-x1 // sx)].to(device)
                 for p, (sy, sx) in zip(planes, steps)]
        if color:
            out = net(parts[0], parts[1], parts[2], tables[0], tables[1])
        else:
            out = net(parts[0], tables[0] if net.dequantize else None)
        return out.float().cpu()

    luma = planes[0].shape[-2:]
    with torch.no_grad():
        out = tiled_regions(region, (int(luma[0]), int(luma[1])), tile, overlap, align)
    pixels = to_uint8(out)
    return pixels[:coeffs.height, :coeffs.width]


def restore_kspace(restorer, source, name: str | None = None):
    """Restore a JPEG (path or bytes) with the restorer's forced k-space model;
    returns a :class:`~carkit.restoration.restorer.Restored` (plan mode ``kspace``)."""
    data, name = read_source_bytes(source, name)
    require_jpeg_bytes(data, name)
    header = read_image_header(data, name)
    check_pixel_limit(header.size[0], header.size[1], name)
    record = weights_record(restorer.forced)
    try:
        estimate = estimate_quality_of_file(data, name)
    except InvalidTableError:
        estimate = None
    coeffs = read_coefficients(data)
    net = restorer.model(record.name)
    pixels = restore_coefficients(net, coeffs, restorer.tile, restorer.overlap, restorer.device)
    lo, hi = record.qualities
    trained = f"trained for QF {lo}" if lo == hi else f"trained for QF {lo}..{hi}"
    q = None if estimate is None else estimate.quality
    note = "" if q is None or lo <= q <= hi or net.dequantize else \
        f"; this file is QF {q}: the levels are read at the wrong scale, expect a poor result"
    plan = RestorePlan(q, None if estimate is None else estimate.standard, record.name, "kspace",
                       f"{trained}, restored from the file's DCT coefficients{note}")
    return Restored(orient(pixels, header.orientation), None, header.metadata, plan)
