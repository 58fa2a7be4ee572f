"""Algorithm 1 of DAGN (Ma et al., see carkit.models.dagn) as two training tasks.

Stage one (``task = "dagn-stage1"``) trains the two auto-encoders around the
model's awareness encoders: the compression-insensitive one adversarially
against its discriminator (eqs. 3-6, alternating updates: the discriminator
first, then encoder and decoder), the compression-sensitive one with the QF
predictor (eqs. 7-9). Batches carry their JPEG quality (``batch["quality"]``),
sampled from the recipe's range (the paper: 10..95).

Stage two (``task = "dagn-stage2"``, ``init_from`` = the stage-one run)
freezes both encoders (and the QF predictor) and trains the restorer with the
L1 loss of eq. 14 over ``restorer_parameters()`` (eq. 15).

Stage zero (``task = "dagn-qf-warmup"``, an addition to the paper) trains
only E_cs and the QF predictor with eq. 9. The paper starts both encoders
from ImageNet weights; from scratch, a QF classifier on 64x64 patches sits on
a long plateau before it starts to learn, which stage one alone may never
leave. A cheap warm-up of the sensitive branch alone (no decoder, no
insensitive branch) gets it off the plateau; stage one then continues from
it (``init_from``).

Known limit: under ``torchrun`` the engine wraps only the model in DDP, and
stage one trains through the auto-encoder extras, so its gradients are not
averaged across processes yet; run stage one in one process (stage two is
fine: it trains through the wrapped model).

``form`` options pick the paper's literal losses or bounded equivalents (see
the model's docstring): ``adversarial = "paper" | "bce"``, ``qf = "paper" | "ce"``.
"""

from __future__ import annotations

import torch

from .engine import TrainTask, pixel_loss, register_task, unwrap


def _unique(params):
    seen, out = set(), []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


@register_task
class DagnStageOne(TrainTask):
    name = "dagn-stage1"
    optimizers = ("discriminator", "main")
    find_unused_parameters = True

    def __init__(self, lambda_ci: float = 1.0, lambda_cs: float = 1.0, adversarial: str = "bce",
                 qf: str = "ce"):
        self.lambda_ci, self.lambda_cs = lambda_ci, lambda_cs
        self.adversarial, self.qf = adversarial, qf

    def extras(self, model, recipe):
        return {"ci_ae": model.insensitive_autoencoder(), "cs_ae": model.sensitive_autoencoder()}

    def parameters(self, optimizer, model, extras):
        if optimizer == "discriminator":
            return list(extras["ci_ae"].discriminator.parameters())
        return _unique([*extras["ci_ae"].autoencoder_parameters(), *extras["cs_ae"].parameters()])

    def loss(self, optimizer, model, extras, batch, recipe):
        c, o = batch["lq"], batch["gt"]
        ci = extras["ci_ae"]
        if optimizer == "discriminator":
            with torch.no_grad():
                fc, fo = ci._encode(c), ci._encode(o)
            return ci.discriminator_loss(fc, fo, form=self.adversarial)
        l_ci = ci.losses(c, o, self.lambda_ci, form=self.adversarial)["total"]
        l_cs = extras["cs_ae"].losses(c, o, batch["quality"], self.lambda_cs, form=self.qf)["total"]
        return l_ci + l_cs


@register_task
class DagnStageTwo(TrainTask):
    name = "dagn-stage2"
    find_unused_parameters = True

    def prepare(self, model, extras, recipe):
        unwrap(model).freeze_awareness_encoders()

    def parameters(self, optimizer, model, extras):
        return list(unwrap(model).restorer_parameters())

    def loss(self, optimizer, model, extras, batch, recipe):
        return pixel_loss(recipe.loss, model(batch["lq"]), batch["gt"])


@register_task
class DagnQfWarmup(TrainTask):
    name = "dagn-qf-warmup"

    def __init__(self, qf: str = "ce"):
        self.qf = qf

    def parameters(self, optimizer, model, extras):
        m = unwrap(model)
        return [*m.cs_encoder.parameters(), *m.qf_predictor.parameters()]

    def loss(self, optimizer, model, extras, batch, recipe):
        from ..models.dagn import sensitive_constraint

        m = unwrap(model)
        c, o = batch["lq"], batch["gt"]
        return sensitive_constraint(m.qf_logits(c), batch["quality"], m.qf_logits(o), 100, self.qf)
