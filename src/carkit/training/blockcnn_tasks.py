"""BlockCNN training on block windows (Maleki et al. 2018, section 2; model in
carkit.models.blockcnn).

Each batch patch (a multiple of 8 on a side, JPEG-coded whole by the data
pipeline, so its 8x8 grid starts at the corner) yields every interior 24x24
window, stride 8: a 48x48 patch gives 16 windows whose centre blocks sit at
all four positions of a 4:2:0 macroblock. The loss is the paper's mean squared
error on the centre block, in the model's colour space (the paper: Lab).

One task, ``task = "blockcnn-windows"``, serves both jobs; the model decides:
an artifact remover (``causal=False``) sees the whole JPEG window (section
2.2), a predictor (``causal=True``) only its four causal blocks (section 2.3:
the codec predicts from *decoded* neighbours, so training uses compressed
context). Either way the target is the original centre block.

Runs in one process (the task calls ``forward_windows``, which DDP does not
wrap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .engine import TrainTask, pixel_loss, register_task


def interior_windows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, P, P) with P a multiple of 8, P >= 24 -> (N * ((P-16)/8)^2, C, 24, 24)."""
    from ..models.blockcnn import BLOCK, WINDOW

    n, c, h, w = x.shape
    if h % BLOCK or w % BLOCK or min(h, w) < WINDOW:
        raise ValueError(f"BlockCNN patches must be multiples of 8 and at least 24, got {h}x{w}")
    cols = F.unfold(x, WINDOW, stride=BLOCK)
    return cols.transpose(1, 2).reshape(-1, c, WINDOW, WINDOW)


def _net(model):
    return model.module if hasattr(model, "module") else model


@register_task
class BlockCnnWindows(TrainTask):
    name = "blockcnn-windows"

    def loss(self, optimizer, model, extras, batch, recipe):
        from ..models.blockcnn import BLOCK, to_model_space

        net = _net(model)
        lq = interior_windows(to_model_space(batch["lq"], net.color_space))
        gt = interior_windows(to_model_space(batch["gt"], net.color_space))
        centre = gt[:, :, BLOCK:2 * BLOCK, BLOCK:2 * BLOCK]
        return pixel_loss(recipe.loss, net.forward_windows(lq).float(), centre.float())
