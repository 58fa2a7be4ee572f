"""Rate-distortion training of a learned codec (Ballé, Minnen, Singh, Hwang,
Johnston 2018, section 3; model in carkit.models.factorized_prior) as one task
of the training engine.

One step, for a batch of RGB patches x in [0, 1] (``batch["gt"]``; the
engine's JPEG-degraded ``lq`` is not used):

    x_hat, p = model(x)  with uniform noise on the latents
    loss = lambda * 255^2 * MSE(x_hat, x) + bpp,   bpp = sum(-log2 p) / pixels

(CompressAI's RateDistortionLoss; lambda values of its quality ladder are in
recipes/learned/). The medians and tail quantiles need no auxiliary loss
here: the entropy bottleneck solves them from its density (see
carkit.nn.entropy_bottleneck), so the task has one optimizer.

The loss runs in float32; under the recipe's bf16 autocast only the
convolutions away from the latent use bf16 (GDN, the latent-side layers and
the density stay float32, see the model's docstring).

Validation (``infer``): the eval-mode model on the original, i.e. latents
rounded around the medians exactly as the real codec codes them; the log's
PSNR is that of the codec's output (its "jpeg" column is JPEG at the
recipe's validation quality, only a reference point at another rate).
"""

from __future__ import annotations

import torch

from .engine import TrainTask, register_task
from .recipe import RecipeError


def rate_distortion(x_hat: torch.Tensor, x: torch.Tensor, likelihoods: torch.Tensor,
                    lmbda: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, bpp, mse) of Ballé 2018 for a batch, all float32."""
    n, _, h, w = x.shape
    bpp = -torch.log2(likelihoods.float()).sum() / (n * h * w)
    mse = ((x_hat.float() - x.float()) ** 2).mean()
    return lmbda * 255.0 ** 2 * mse + bpp, bpp, mse


@register_task
class LearnedCodecTask(TrainTask):
    """lambda * 255^2 * MSE + bpp for a model whose ``forward(x, return_likelihoods=True)``
    returns (reconstruction, latent likelihoods).

    Args:
        lmbda: the rate-distortion trade-off (CompressAI's ladder: 0.0018,
            0.0035, 0.0067, 0.0130, 0.025, 0.0483, 0.0932, 0.18).
    """

    name = "learned-codec"

    def trained_for(self, recipe):
        """A learned codec is its own codec (its record's ``codec`` is "factorized")."""
        return "factorized", super().trained_for(recipe)[1]

    def __init__(self, lmbda: float = 0.0130):
        if not lmbda > 0:
            raise RecipeError(f"lmbda must be positive, got {lmbda!r}")
        self.lmbda = float(lmbda)

    def loss(self, optimizer, model, extras, batch, recipe):
        x = batch["gt"]
        x_hat, likelihoods = model(x, return_likelihoods=True)
        with torch.autocast(x.device.type, enabled=False):
            return rate_distortion(x_hat, x, likelihoods, self.lmbda)[0]

    def infer(self, model, lq, gt, quality):
        """Validation: the codec's reconstruction (rounded latents) of the original."""
        return model(gt).clamp(0, 1)
