"""HR-CNN training from k-space codes (Niu 2020, section III-B; model in
carkit.models.hrcnn).

Each patch's code is made the paper's way, from the *original*: level shift,
8x8 DCT, division by the quality's table, rounding
(``carkit.jpeg.kspace.encode_kspace``, libjpeg-turbo's own integer DCT, so
the code is the one a real file of that patch holds, tested). The loss is the
recipe's pixel loss (the paper: MSE) between the network's output and the
original. The data pipeline's JPEG-decoded patch (``batch["lq"]``) is not
used: HR-CNN never sees decoded pixels.

Recipes set ``gray = true`` with ``gray_plane = "green"`` (the paper trains
on the green channel) and patch sizes that are multiples of 8; each patch's
quality is the batch's ``quality`` entry, so the same task trains a
per-quality model (``qualities = [10]``) and the all-quality one
(``quality_range``, ``hrcnn-blind``, which also receives the table).

``hrcnn-kspace-color`` trains ``hrcnn-color`` (beyond the paper) on RGB
patches, taking each patch's Y, Cb and Cr levels from a real 4:2:0 JPEG of it
(:func:`color_codes`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..jpeg.kspace import encode_kspace
from ..jpeg.tables import ijg_tables
from .engine import TrainTask, pixel_loss, register_task, unwrap


def luma_tables(qualities) -> np.ndarray:
    """(N, 8, 8) IJG luminance tables (a gray JPEG's one table) of the qualities."""
    return np.stack([ijg_tables(int(q))[0] for q in np.asarray(qualities).reshape(-1)])


@register_task
class HrcnnKspace(TrainTask):
    name = "hrcnn-kspace"

    def loss(self, optimizer, model, extras, batch, recipe):
        gt = batch["gt"]
        if gt.shape[1] != 1:
            raise ValueError("hrcnn-kspace trains on one plane: set gray = true in the recipe")
        tables = luma_tables(batch["quality"].cpu())
        code = encode_kspace(gt, tables)
        if recipe.channels_last:
            code = code.contiguous(memory_format=torch.channels_last)
        table_t = torch.from_numpy(tables).float().to(gt.device)
        out = model(code, table_t if unwrap(model).dequantize else None)
        return pixel_loss(recipe.loss, out.float(), gt.float())

    def infer(self, model, lq, gt, quality):
        tables = luma_tables([quality])
        return model(encode_kspace(gt, tables), torch.from_numpy(tables).float().to(gt.device)
                     if unwrap(model).dequantize else None)


def color_codes(gt: torch.Tensor, qualities) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                      torch.Tensor, torch.Tensor]:
    """RGB patches (N, 3, P, P) in [0, 1], P a multiple of 16 -> the k-space
    planes a real 4:2:0 JPEG of each holds at its quality: Y (N, 1, P, P), Cb
    and Cr (N, 1, P/2, P/2), luma and chroma tables (N, 8, 8).

    Made by encoding each patch with the real codec (PROTOCOL.md: Pillow,
    libjpeg-turbo, 4:2:0) and reading its coefficients back: the colour
    conversion and chroma downsampling are then libjpeg's own, exactly."""
    from ..codecs.jpeg import JpegCodec
    from ..io import to_uint8
    from ..jpeg.coefficients import read_coefficients
    from ..jpeg.kspace import blocks_to_plane

    codec = JpegCodec()
    ys, cbs, crs, lts, cts = [], [], [], [], []
    for img, q in zip(gt.detach().float().cpu(), np.asarray(qualities).reshape(-1)):
        jc = read_coefficients(codec.encode(to_uint8(img), int(q)))
        y, cb, cr = (torch.from_numpy(blocks_to_plane(c).astype(np.float32)) for c in jc.components)
        ys.append(y)
        cbs.append(cb)
        crs.append(cr)
        lts.append(torch.from_numpy(np.asarray(jc.quant_tables[0], dtype=np.float32)))
        cts.append(torch.from_numpy(np.asarray(jc.quant_tables[1], dtype=np.float32)))
    dev = gt.device
    return (torch.stack(ys)[:, None].to(dev), torch.stack(cbs)[:, None].to(dev), torch.stack(crs)[:, None].to(dev),
            torch.stack(lts).to(dev), torch.stack(cts).to(dev))


@register_task
class HrcnnKspaceColor(TrainTask):
    """``hrcnn-color`` (beyond the paper): RGB patches, codes from real 4:2:0
    files at each patch's quality, pixel loss in RGB."""

    name = "hrcnn-kspace-color"

    def loss(self, optimizer, model, extras, batch, recipe):
        gt = batch["gt"]
        if gt.shape[1] != 3 or gt.shape[-1] % 16 or gt.shape[-2] % 16:
            raise ValueError("hrcnn-kspace-color trains on RGB patches whose sides are multiples of 16")
        out = model(*color_codes(gt, batch["quality"].cpu()))
        return pixel_loss(recipe.loss, out.float(), gt.float())

    def infer(self, model, lq, gt, quality):
        h, w = gt.shape[-2:]
        gt = gt[:, :, :h // 16 * 16, :w // 16 * 16]
        return model(*color_codes(gt, [quality]))
