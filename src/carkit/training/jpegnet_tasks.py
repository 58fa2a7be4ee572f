"""Training task of JpegNet (carkit.models.jpegnet).

``task = "jpegnet"``: batches from :class:`carkit.data.jpeg_mix.JpegMixBatches`
(qualities 5..100 with 60..95 weighted as 5..40, gray / 4:2:0 / 4:2:2 /
4:4:4 files, a share compressed twice, some with a shifted grid, a share
written by jpegli, a share with tables shaped unlike IJG's), each with
the quantization tables of its file; the loss is the recipe's pixel loss on
the model's output (RGB, or Y for gray batches). The recipe's
``quality_range`` only names the qualities the weights are for (the zoo
record); the draw is the task's (``task_kwargs``).

Validation: the recipe's val set coded as PROTOCOL.md does (Pillow, 4:2:0,
IJG tables), so the model gets the IJG tables of the validation quality.
"""

from __future__ import annotations

from ..data.jpeg_mix import JpegMixBatches, QualityMix
from ..jpeg.tables import ijg_tables
from .engine import TrainTask, pixel_loss, register_task


@register_task
class JpegNetTask(TrainTask):
    name = "jpegnet"

    def __init__(self, kinds: tuple[float, ...] = (0.2, 0.6, 0.05, 0.15), double: float = 0.2,
                 shift: float = 0.5, low: tuple[int, int] = (5, 40), high: tuple[int, int] = (60, 95),
                 p_low: float = 0.4, p_high: float = 0.4, jpegli: float = 0.0, varied_tables: float = 0.0):
        self.kinds, self.double, self.shift = tuple(kinds), double, shift
        self.jpegli, self.varied_tables = jpegli, varied_tables
        self.qualities = QualityMix(low=tuple(low), high=tuple(high), p_low=p_low, p_high=p_high)

    def batches(self, images, degradation, recipe, rank):
        return JpegMixBatches(images, recipe.patch_size, recipe.batch_size, self.qualities, self.kinds,
                              self.double, self.shift, seed=recipe.seed, rank=rank, jpegli=self.jpegli,
                              varied_tables=self.varied_tables)

    def loss(self, optimizer, model, extras, batch, recipe):
        out = model(batch["lq"], batch["luma_table"], batch["chroma_table"])
        return pixel_loss(recipe.loss, out, batch["gt"])

    def infer(self, model, lq, gt, quality):
        luma, chroma = ijg_tables(int(quality))
        return model(lq, luma, chroma)
