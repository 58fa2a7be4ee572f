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
