"""Algorithm 1 of the virtual codec paper (Zhao et al. 2017, section II-C;
model in carkit.models.virtual_codec), as one resumable training task.

Phases, run one after another inside a single recipe's step budget:

0. ``init``: "the initialization of the FDNN network's output by
   down-sampling" (step 1): FDNN is fitted (L1) to the image down-sampled by
   an interpolation drawn per batch from the paper's five (bicubic, nearest,
   linear, area, Lanczos; Pillow's resamplers), so the first PPNN phase sees
   JPEG-coded interpolated descriptions, as section II-C describes.
1. ``ppnn``: PPNN learns Z -> X, with Z the real JPEG (Pillow/libjpeg-turbo)
   of the current description Y = FDNN(X); L1 content + L1 gradient
   difference (eqs. 2-3).
2. ``vcnn``: VCNN learns Y -> PPNN(Z), the codec followed by the current
   post-processor (eqs. 4-5).
3. ``fdnn``: FDNN learns through the frozen VCNN: eqs. 2-3 between X and
   VCNN(Y), plus the SSIM loss between the bilinear up-sampled Y and X
   (eqs. 6-7, c1 = 1e-4, c2 = 9e-4, pytorch-msssim's 11x11 Gaussian window).

Phases 1-3 repeat ``cycles`` times (the paper's K = 3), then a final PPNN
phase (step 23). Phase lengths are the recipe's ``iterations`` split in the
proportions of ``weights`` (the paper: p = 60 epochs for PPNN and VCNN, q = 30
for FDNN), so ``carkit train --iterations N`` scales the whole algorithm. The
learning rate restarts in every phase and follows the paper's steps inside it:
the recipe's ``lr`` (paper 2e-4), halved at 3/5 and quartered at 4/5 of the
phase.

``bridge = "direct"`` trains Jiang et al.'s end-to-end framework ("An
end-to-end compression framework based on CNNs", 2017) with FDNN/PPNN in
place of ComCNN/RecCNN, as the paper did for its comparison: no VCNN, the
FDNN phase back-propagates through the frozen PPNN connected directly to
FDNN, the codec skipped.

The description is clipped to [0, 1] wherever it enters VCNN, PPNN or the
SSIM loss, because the real codec only ever sees it clipped (8-bit).
Recipes should set ``ema = 0``: the networks are trained in turns, and an
EMA of FDNN would lag the FDNN whose descriptions PPNN last learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..extras import require_train_deps
from ..models.virtual_codec import PostProcessing, upsample_description
from .engine import TrainTask, register_task, unwrap
from .recipe import RecipeError

#: The paper's phase lengths in epochs (p = 60, q = 30); ``init`` is ours.
PAPER_WEIGHTS = {"init": 10, "ppnn": 60, "vcnn": 60, "fdnn": 30, "final": 60}
RESAMPLERS = ("bicubic", "nearest", "bilinear", "box", "lanczos")  # box = area


@dataclass(frozen=True)
class Phase:
    name: str        # init | ppnn | vcnn | fdnn
    start: int
    length: int


def algorithm_1(iterations: int, cycles: int = 3, weights: dict | None = None,
                bridge: str = "vcnn") -> list[Phase]:
    """The phases of Algorithm 1 laid over ``iterations`` steps."""
    w = {**PAPER_WEIGHTS, **(weights or {})}
    order = ["init"] + cycles * (["ppnn", "vcnn", "fdnn"] if bridge == "vcnn" else ["ppnn", "fdnn"]) + ["final"]
    total = sum(w[n] for n in order)
    bounds = np.round(np.cumsum([0] + [w[n] for n in order]) * iterations / total).astype(int)
    phases = [Phase("ppnn" if n == "final" else n, int(a), int(b - a))
              for n, a, b in zip(order, bounds[:-1], bounds[1:])]
    if any(p.length < 1 for p in phases):
        raise RecipeError(f"{iterations} iterations are too few for {len(phases)} phases")
    return phases


def phase_at(phases: list[Phase], step: int) -> Phase:
    for p in phases:
        if step < p.start + p.length:
            return p
    return phases[-1]


def gradient_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. (3)/(5): mean L1 distance of horizontal and vertical finite differences."""
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def content_and_gradient(out: torch.Tensor, target: torch.Tensor, gradient_weight: float) -> torch.Tensor:
    out, target = out.float(), target.float()
    return (out - target).abs().mean() + gradient_weight * gradient_difference(out, target)


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. (6): minus the mean SSIM (here 1 - SSIM, same gradient), in float32."""
    require_train_deps()
    from pytorch_msssim import ssim

    with torch.autocast(a.device.type, enabled=False):
        return 1.0 - ssim(a.float(), b.float(), data_range=1.0, size_average=True)


def _as_uint8(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> uint8 (H, W) or (H, W, C), rounded."""
    a = (t.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    return a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0))


def _as_tensor(a: np.ndarray, device) -> torch.Tensor:
    t = torch.from_numpy(np.array(a, dtype=np.float32)) / 255.0
    return (t[None] if t.ndim == 2 else t.permute(2, 0, 1)).to(device)


def jpeg_code(descriptions: torch.Tensor, qualities) -> torch.Tensor:
    """Z = g(Y): every description through the real codec (PROTOCOL.md's
    Pillow/libjpeg-turbo JPEG, 4:2:0 for color) at its quality."""
    from ..codecs.jpeg import JpegCodec

    codec = JpegCodec()
    out = [_as_tensor(codec.roundtrip(_as_uint8(y), int(q)).decoded, descriptions.device)
           for y, q in zip(descriptions, np.asarray(qualities).reshape(-1))]
    return torch.stack(out)


def interpolate_down(images: torch.Tensor, method: str) -> torch.Tensor:
    """Pillow down-sampling of each image to its description size, ceil(H/2) x ceil(W/2)."""
    from PIL import Image

    resample = getattr(Image.Resampling, method.upper())
    h, w = images.shape[-2:]
    size = ((w + 1) // 2, (h + 1) // 2)
    out = [_as_tensor(np.asarray(Image.fromarray(_as_uint8(x)).resize(size, resample)), images.device)
           for x in images]
    return torch.stack(out)


@register_task
class VirtualCodecTask(TrainTask):
    """Algorithm 1 (``bridge = "vcnn"``) or Jiang et al.'s direct connection
    (``bridge = "direct"``) for a ``vcodec-*`` model at the recipe's quality."""

    name = "virtual-codec"

    def __init__(self, bridge: str = "vcnn", cycles: int = 3, weights: dict | None = None,
                 gradient_weight: float = 1.0, ssim_weight: float = 1.0):
        if bridge not in ("vcnn", "direct"):
            raise ValueError("bridge must be 'vcnn' (the paper) or 'direct' (Jiang et al.)")
        unknown = set(weights or {}) - set(PAPER_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown phase weights {sorted(unknown)}; known: {sorted(PAPER_WEIGHTS)}")
        self.bridge, self.cycles, self.weights = bridge, int(cycles), dict(weights or {})
        self.gradient_weight, self.ssim_weight = float(gradient_weight), float(ssim_weight)
        self.optimizers = ("init", "ppnn", "vcnn", "fdnn") if bridge == "vcnn" else ("init", "ppnn", "fdnn")
        self._phases: list[Phase] = []
        self._phase: Phase | None = None
        self._step = 0

    def extras(self, model, recipe):
        if self.bridge != "vcnn":
            return {}
        ppnn = unwrap(model).ppnn
        return {"vcnn": PostProcessing(ppnn.up.out_channels, ppnn.up.in_channels, ppnn.skip)}

    def prepare(self, model, extras, recipe):
        self._phases = algorithm_1(recipe.iterations, self.cycles, self.weights, self.bridge)

    def parameters(self, optimizer, model, extras):
        net = extras["vcnn"] if optimizer == "vcnn" else unwrap(model).ppnn if optimizer == "ppnn" \
            else unwrap(model).fdnn
        return list(net.parameters())

    def phases(self) -> list[Phase]:
        return list(self._phases)

    def begin_step(self, step, model, extras):
        self._step = step
        self._phase = phase_at(self._phases, step)
        active = {"init": model.fdnn, "fdnn": model.fdnn, "ppnn": model.ppnn}.get(self._phase.name, extras.get("vcnn"))
        # only the network being trained needs weight gradients (the others are frozen this phase)
        for net in (model.fdnn, model.ppnn, *extras.values()):
            net.requires_grad_(net is active)

    def optimizers_at(self, step):
        return (phase_at(self._phases, step).name,)

    def learning_rate(self, recipe, step):
        phase = phase_at(self._phases, step)
        done = (step - phase.start) / phase.length
        return recipe.lr * (1.0 if done < 0.6 else 0.5 if done < 0.8 else 0.25)

    def loss(self, optimizer, model, extras, batch, recipe):
        net = unwrap(model)
        x, qualities = batch["gt"], batch["quality"].cpu()
        size = tuple(x.shape[-2:])
        if optimizer == "init":
            method = RESAMPLERS[self._step % len(RESAMPLERS)]
            return (net.describe(x).float() - interpolate_down(x, method)).abs().mean()
        if optimizer in ("ppnn", "vcnn"):
            with torch.no_grad():
                y = net.describe(x).float().clamp(0, 1)
                z = jpeg_code(y, qualities)
            if optimizer == "ppnn":
                return content_and_gradient(net.reconstruct(z, size), x, self.gradient_weight)
            with torch.no_grad():
                target = net.reconstruct(z, size)
            return content_and_gradient(extras["vcnn"](y)[..., :size[0], :size[1]], target, self.gradient_weight)
        y = net.describe(x).float().clamp(0, 1)
        bridge = extras["vcnn"] if self.bridge == "vcnn" else net.ppnn
        out = bridge(y)[..., :size[0], :size[1]]
        loss = content_and_gradient(out, x, self.gradient_weight)
        if self.ssim_weight:
            loss = loss + self.ssim_weight * ssim_loss(upsample_description(y, size), x)
        return loss

    def infer(self, model, lq, gt, quality):
        """Validation: the real pipeline, FDNN -> JPEG at ``quality`` -> PPNN."""
        net = unwrap(model)
        z = jpeg_code(net.describe(gt).float().clamp(0, 1), [quality])
        return net.reconstruct(z, tuple(gt.shape[-2:]))
