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

from ..models.blockcnn import BLOCK, to_model_space
from ..models.blockcnn import sliding_windows as interior_windows
from .engine import TrainTask, pixel_loss, register_task, unwrap

__all__ = ["BlockCnnWindows", "interior_windows"]


@register_task
class BlockCnnWindows(TrainTask):
    name = "blockcnn-windows"

    def loss(self, optimizer, model, extras, batch, recipe):
        net = unwrap(model)
        lq = interior_windows(to_model_space(batch["lq"], net.color_space))
        gt = interior_windows(to_model_space(batch["gt"], net.color_space))
        centre = gt[:, :, BLOCK:2 * BLOCK, BLOCK:2 * BLOCK]
        return pixel_loss(recipe.loss, net.forward_windows(lq).float(), centre.float())
