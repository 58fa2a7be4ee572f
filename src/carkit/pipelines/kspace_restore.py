"""``carkit restore --model hrcnn...``: restore straight from a JPEG file's
quantized DCT coefficients (HR-CNN, Niu 2020), never calling a pixel decoder.

The file's coefficients and tables are read with jpeglib
(``carkit.jpeg.kspace.read_kspace``); the k-space code runs through the
model tile by tile (tiles on the 8x8 grid, so each tile is whole blocks);
the output is cropped to the image size, EXIF orientation applied (read
from the header, not from decoded pixels) and written atomically.

The paper's models are gray (one plane: trained on the green channel, they
restore one-component JPEGs); a per-quality model is told when the file's
tables are not the ones it was trained on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import CarkitError
from ..io import exif_orientation, orient, to_uint8, write_image
from ..zoo.registry import weights_record
from .tiling import tiled_apply


def restore_coefficients(net: torch.nn.Module, coeffs, tile: int = 512, overlap: int = 32,
                         device: str = "cpu") -> np.ndarray:
    """A one-component JPEG's coefficients (``JpegCoefficients``) -> restored
    uint8 (H, W), tile by tile, without any pixel decoding."""
    from ..jpeg.kspace import blocks_to_plane

    if len(coeffs.components) != 1:
        raise CarkitError(f"HR-CNN models restore one-component (gray) JPEGs from their coefficients; "
                          f"this file has {len(coeffs.components)} components")
    table = torch.from_numpy(np.asarray(coeffs.quant_tables[0], dtype=np.float32)).to(device)
    levels = torch.from_numpy(blocks_to_plane(coeffs.components[0]).astype(np.float32))[None, None]

    def run(part: torch.Tensor) -> torch.Tensor:
        return net(part.to(device), table if net.dequantize else None).float().cpu()

    with torch.no_grad():
        out = tiled_apply(run, levels, tile, overlap)
    return to_uint8(out)[:coeffs.height, :coeffs.width]


def restore_kspace_file(restorer, src: str | os.PathLike, dst: str | os.PathLike):
    """Restore ``src`` with the restorer's forced k-space model into ``dst``;
    returns the RestorePlan (mode ``kspace``)."""
    from ..jpeg.coefficients import read_coefficients
    from ..jpeg.files import require_jpeg_path
    from ..jpeg.quality import estimate_quality_of_file
    from .restore import RestorePlan

    src = Path(src)
    require_jpeg_path(src)
    record = weights_record(restorer.forced)
    coeffs = read_coefficients(src)
    if len(coeffs.components) != 1:
        raise CarkitError(f"{src}: {record.name} restores one-component (gray) JPEGs from their coefficients; "
                          f"this file has {len(coeffs.components)} components")
    estimate = estimate_quality_of_file(src)
    net = restorer.model(record.name)
    pixels = restore_coefficients(net, coeffs, restorer.tile, restorer.overlap, restorer.device)
    lo, hi = record.qualities
    trained = f"trained for QF {lo}" if lo == hi else f"trained for QF {lo}..{hi}"
    q = estimate.quality
    note = "" if q is None or lo <= q <= hi or net.dequantize else \
        f"; this file is QF {q}: the levels are read at the wrong scale, expect a poor result"
    write_image(dst, orient(pixels, exif_orientation(src)))
    return RestorePlan(q, estimate.standard, record.name, "kspace",
                       f"{trained}, restored from the file's DCT coefficients{note}")
