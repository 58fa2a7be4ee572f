"""Residual hiding training (the Residual hiding paper, sections 3.3-3.4;
models in carkit.models.residual_hiding) as one task of the training engine.

One step, for a batch of originals IH (``batch["gt"]``):

1. IL = the real codec's decode of IH (``carkit.codecs.get_codec``; default
   Pillow/libjpeg-turbo JPEG at quality 50 with PROTOCOL.md's settings), and
   the residual IR = IH - IL.
2. IH_enc = E(IH, IR).
3. The compression proxy (section 3.3). IL_enc is always the *real* codec's
   decode of IH_enc rounded to 8 bits, so D sees in training exactly what it
   sees in use:

   - Strategy II (eq. 3): the skip component IH_enc + (IL_enc - IH_enc), the
     difference detached: the forward value is IL_enc, the gradient to
     IH_enc the identity.
   - Strategy I (eqs. 1-2): a simulation network S gives ISL_enc = S(IH_enc)
     and the skip component ISL_enc + (IL_enc - ISL_enc), detached likewise:
     forward IL_enc, gradients through S. For JPEG, S is carkit's
     differentiable JPEG (``carkit.jpeg.proxy.DiffJPEG``, straight-through
     rounding): the paper re-implements JPEG's quantization (HiDDeN's noise
     layer without its mask). For other codecs S is the 8-block
     conv-ReLU :class:`~carkit.models.residual_hiding.CodecSimulator`,
     updated jointly by L_sim = ||ISL_enc - IL_enc||^2 (eq. 2) with its own
     optimizer ("sim"), on the (IH_enc, IL_enc) pairs of the same step.
     ``simulator="autoencoder"`` also trains that network for JPEG. As in
     the paper, the autoencoder is first pretrained alone on (IH, IL) pairs
     (the codec's input and output) for ``sim_pretrain`` steps, then
     fine-tuned jointly on (IH_enc, IL_enc).
   - ``"direct"``, for a learned codec (Fig. 2, Table 1's deep-codec group):
     the codec is differentiable, so it is its own proxy: the frozen codec
     network with straight-through rounding (``Codec.differentiable``) in
     the skip component, forward the real codec's IL_enc (from the coded
     file; the same values before 8-bit rounding), gradients through its
     synthesis and analysis transforms to E.

4. I'H = IL_enc' + D(IL_enc') with IL_enc' the proxy's output, and the
   objective (eqs. 4-6) L = lambda * L_rec + L_con, L_rec = ||I'H - IH||^2,
   L_con = ||IH_enc - IH||^2, lambda = 5; the recipe sets Adam (the engine's
   AdamW with weight_decay 0) at the paper's 1e-4.

``rate_weight`` > 0 (JPEG files only: libjpeg-turbo's or jpegli's; beyond
the paper) adds a rate term on E's
output: ``rate_weight * R(IH_enc)``, R the bits per pixel that
:func:`carkit.jpeg.proxy.jpeg_rate_proxy` estimates from carkit's differentiable JPEG's
quantized coefficients (IJG tables: for jpegli, whose adaptive quantization
and tables differ, an approximation). Without it E's image costs more real bits than IH,
which keeps a pair's BD-rate short of its same-quality PSNR gain; the
paper's L_con alone does not see bits.

Validation logs the PSNR of IL_enc as an ordinary decoder shows it (no D)
beside the codec's own on the originals: what a viewer without carkit sees.

What differs from the paper: squared errors are means over pixels, not sums
(the same minimiser; lambda keeps its meaning because both terms are scaled
alike). The simulator starts as the identity (its zero-initialised skip, not in the
paper) before its pretraining; E and D wait during it (their optimizer is
idle, the steps count in the recipe's ``iterations``). Images are patches of the recipe's data, not Kinetics frames.
The real codec and the JPEG proxy run in float32 outside bf16 autocast.
"""

from __future__ import annotations

import numpy as np
import torch

from ..codecs.markers import JPEG_WRITERS
from ..io import to_tensor, to_uint8
from ..jpeg.proxy import jpeg_rate_proxy
from ..models.residual_hiding import CodecSimulator, skip_component
from .engine import TrainTask, register_task, unwrap
from .recipe import RecipeError

STRATEGIES = ("I", "II", "direct")
SIMULATORS = ("proxy", "autoencoder")
QUALITY_STREAM = 7  # keeps the quality draws apart from the data pipeline's per-step streams


def codec_roundtrips(codec, images: torch.Tensor, quality) -> tuple[torch.Tensor, list[int]]:
    """The real codec's decode of every image of a (N, C, H, W) batch in [0, 1],
    each rounded to 8 bits first (what a file holds), float32 on the batch's
    device, and the byte count of each file. ``quality``: one for the batch,
    or a sequence of one per image."""
    per_image = [quality] * len(images) if isinstance(quality, int) else list(quality)
    rts = [codec.roundtrip(to_uint8(x), q) for x, q in zip(images.detach(), per_image, strict=True)]
    return torch.cat([to_tensor(rt.decoded) for rt in rts]).to(images.device), [rt.nbytes for rt in rts]


def codec_batch(codec, images: torch.Tensor, quality) -> torch.Tensor:
    """The decoded batch of :func:`codec_roundtrips`."""
    return codec_roundtrips(codec, images, quality)[0]


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.float() - b.float()) ** 2).mean()


@register_task
class ResidualHidingTask(TrainTask):
    """E and D of a ``hiding-*`` model trained through a compression proxy.

    Args:
        strategy: ``"II"`` (skip component only), ``"I"`` (simulation network
            with the skip component), or ``"direct"`` (a learned codec as its
            own proxy).
        codec: registered codec name (``carkit.codecs``), ``codec_options`` its options.
        quality: the codec's quality 1..100, or ``[lo, hi]`` (Strategy II
            only): every image of a step draws its own quality in that range,
            the same for its residual IL and for IL_enc, so one E/D pair
            serves a codec's whole quality scale (beyond the paper, whose
            pairs are trained at one quality; ``carkit encode`` then uses the
            pair at any quality in the range). Validation runs at the
            recipe's ``val.qualities``, each within the range.
        simulator: Strategy I's network: ``"proxy"`` (differentiable JPEG; JPEG
            only) or ``"autoencoder"`` (:class:`CodecSimulator`); default
            ``"proxy"`` for JPEG, ``"autoencoder"`` otherwise.
        rec_weight: lambda of eq. (6).
        sim_features, sim_blocks: the autoencoder's width and depth.
        sim_pretrain: steps at the start that train only the autoencoder, on
            (IH, IL) pairs, before the joint training (Strategy I with the
            autoencoder only).
        rate_weight: weight of the rate term on IH_enc (module doc; JPEG
            only, 0 = the paper's loss).
        sim_init: where the autoencoder starts (Strategy I with the
            autoencoder only): ``zoo:NAME``, shipped ``hiding-sim-*`` weights,
            or a run folder (its checkpoint's simulator), so a Strategy I run
            whose folder is gone goes on from the zoo (with ``init_from`` for
            E and D); a resumed run keeps its own checkpoint's simulator.
    """

    name = "residual-hiding"

    def __init__(self, strategy: str = "II", codec: str = "jpeg", quality: int = 50,
                 simulator: str | None = None, rec_weight: float = 5.0, codec_options: dict | None = None,
                 sim_features: int = 64, sim_blocks: int = 8, sim_pretrain: int = 0, rate_weight: float = 0.0,
                 sim_init: str = ""):
        from ..codecs import canonical_name, check_quality

        if strategy not in STRATEGIES:
            raise RecipeError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.codec_name = canonical_name(codec)
        if strategy == "direct" and simulator is not None:
            raise RecipeError("strategy 'direct' trains through the learned codec itself; leave out simulator")
        self.codec_options = dict(codec_options or {})
        try:
            bounds = [quality, quality] if isinstance(quality, int) else list(quality)
            if len(bounds) != 2 or bounds[0] > bounds[1]:
                raise ValueError(f"quality must be an int or [lo, hi] with lo <= hi, got {quality!r}")
            self.qualities = (check_quality(bounds[0]), check_quality(bounds[1]))
        except (TypeError, ValueError) as exc:
            raise RecipeError(str(exc)) from None
        if self.qualities[0] != self.qualities[1] and strategy != "II":
            raise RecipeError(f"a quality range trains Strategy II only (Strategy {strategy}'s proxy is built "
                              "for one quality)")
        # the fixed quality, or the range's low end where one number is needed (Strategy I's
        # proxy, which a range never reaches; validation's default)
        self.quality = self.qualities[0]
        self._seed, self._step = 0, 0
        self._direct = None
        if simulator is None:
            simulator = "proxy" if self.codec_name == "jpeg" else "autoencoder"
        if simulator not in SIMULATORS:
            raise RecipeError(f"simulator must be one of {SIMULATORS}, got {simulator!r}")
        if simulator == "proxy" and self.codec_name != "jpeg":
            raise RecipeError(f"the differentiable proxy is JPEG's; {self.codec_name} needs simulator='autoencoder'")
        self.simulator = simulator if strategy == "I" else None
        self.rec_weight = float(rec_weight)
        self.sim_features, self.sim_blocks = int(sim_features), int(sim_blocks)
        self.optimizers = ("main", "sim") if self.simulator == "autoencoder" else ("main",)
        if sim_pretrain and self.simulator != "autoencoder":
            raise RecipeError("sim_pretrain applies to Strategy I with simulator='autoencoder'")
        self.sim_pretrain = int(sim_pretrain)
        if sim_init and self.simulator != "autoencoder":
            raise RecipeError("sim_init applies to Strategy I with simulator='autoencoder'")
        self.sim_init = str(sim_init)
        self.rate_weight = float(rate_weight)
        if self.rate_weight < 0 or (self.rate_weight and self.codec_name not in JPEG_WRITERS):
            raise RecipeError("rate_weight is a non-negative weight of the JPEG rate proxy (JPEG only: "
                              f"{', '.join(JPEG_WRITERS)})")
        self._pretraining = False
        self._codec = None
        self._proxy = None
        self._pair: tuple[torch.Tensor, torch.Tensor] | None = None  # this step's (IH_enc, IL_enc)
        self._val_extra: dict[str, list[float]] = {}  # validation's bpp and PSNR per image, for val_extra

    @property
    def codec(self):
        if self._codec is None:
            from ..codecs import get_codec

            self._codec = get_codec(self.codec_name, **self.codec_options)
        return self._codec

    def trained_for(self, recipe):
        """The task's codec and quality (range), not the recipe's data codec."""
        return self.codec_name, list(self.qualities)

    def extras(self, model, recipe):
        if self.simulator != "autoencoder":
            return {}
        sim = CodecSimulator(unwrap(model).in_channels, self.sim_features, self.sim_blocks)
        if self.sim_init:
            # here, as the engine's init_from for the model: built once, before a
            # resumed run's checkpoint (whose simulator then wins) is loaded
            from .engine import init_from_run

            init_from_run(sim, self.sim_init, part="sim", runs_root=self.runs_root)
        return {"sim": sim}

    def extra_models(self, gray):
        """The autoencoder simulator ships too, so the zoo holds the simulation
        network beside its pair, as the registered ``hiding-sim-*`` model."""
        if self.simulator != "autoencoder":
            return {}
        return {"sim": (f"hiding-sim-{'gray' if gray else 'color'}",
                        {"features": self.sim_features, "blocks": self.sim_blocks})}

    def differentiable_codec(self):
        """Strategy "direct"'s proxy, the codec's ``differentiable`` form (once)."""
        if self._direct is None:
            from ..errors import CodecError

            try:
                self._direct = self.codec.differentiable(self.quality)
            except CodecError as exc:
                raise RecipeError(f"strategy 'direct': {exc}") from None
        return self._direct

    def prepare(self, model, extras, recipe):
        if self.strategy == "direct":  # a standard codec fails here, before any step
            self.differentiable_codec()
        lo, hi = self.qualities
        if any(not lo <= q <= hi for q in recipe.val_qualities):
            raise RecipeError(f"{recipe.name}: validation compares with the codec at the task's quality "
                              + (f"{lo}; set val.qualities = [{lo}]" if lo == hi else
                                 f"range {lo}..{hi}; set val.qualities within it"))

        self._seed = recipe.seed

    def draw_qualities(self, n: int) -> list[int]:
        """This step's quality for each of ``n`` images: the fixed one, or one
        drawn uniformly from the range by a generator seeded with the recipe's
        seed and the step (as the engine's batches), so a resumed run draws
        the same ones."""
        lo, hi = self.qualities
        if lo == hi:
            return [lo] * n
        rng = np.random.default_rng([self._seed, QUALITY_STREAM, self._step])
        return [int(q) for q in rng.integers(lo, hi + 1, n)]

    def begin_step(self, step, model, extras):
        self._step = step
        self._pretraining = step < self.sim_pretrain

    def optimizers_at(self, step):
        """Only the simulator during its pretraining, then E/D and the simulator."""
        return ("sim",) if step < self.sim_pretrain else self.optimizers

    def parameters(self, optimizer, model, extras):
        return list(extras["sim"].parameters() if optimizer == "sim" else model.parameters())

    def jpeg_proxy(self):
        """Carkit's differentiable JPEG with the codec's subsampling (once)."""
        if self._proxy is None:
            from ..jpeg.proxy import DiffJPEG

            self._proxy = DiffJPEG(subsampling=getattr(self.codec, "subsampling", "4:2:0"))
        return self._proxy

    def simulate(self, encoded: torch.Tensor, extras: dict) -> torch.Tensor:
        """Strategy I's ISL_enc = S(IH_enc)."""
        if self.simulator == "autoencoder":
            return extras["sim"](encoded)
        with torch.autocast(encoded.device.type, enabled=False):
            return self.jpeg_proxy().to(encoded.device)(encoded.float(), self.quality)

    def compress(self, encoded: torch.Tensor, extras: dict, qualities: list[int] | None = None) -> torch.Tensor:
        """The compression proxy's output: the real codec's IL_enc in value
        (at ``qualities``, one per image; default the task's quality), with
        the strategy's gradient."""
        real = codec_batch(self.codec, encoded, qualities or self.quality)
        if self.strategy == "II":
            return skip_component(real, encoded.float())
        if self.strategy == "direct":
            return skip_component(real, self.differentiable_codec()(encoded).float())
        if self.simulator == "autoencoder":
            self._pair = (encoded.detach().float(), real)
        return skip_component(real, self.simulate(encoded, extras).float())

    def loss(self, optimizer, model, extras, batch, recipe):
        if optimizer == "sim":  # eq. (2) on this step's pair, after the main update
            extras["sim"].requires_grad_(True)
            if self._pretraining:  # the codec's own input and output: (IH, IL)
                gt = batch["gt"].float()
                return mse(extras["sim"](gt), codec_batch(self.codec, gt, self.quality))
            encoded, real = self._pair
            return mse(extras["sim"](encoded), real)
        if "sim" in extras:  # gradients pass through S to E, S's own weights learn from L_sim only
            extras["sim"].requires_grad_(False)
        net = unwrap(model)
        gt = batch["gt"]
        qualities = self.draw_qualities(len(gt))
        residual = gt - codec_batch(self.codec, gt, qualities)
        encoded = net.hide(gt, residual)
        restored = net.reconstruct(self.compress(encoded, extras, qualities))
        loss = self.rec_weight * mse(restored, gt) + mse(encoded, gt)
        if self.rate_weight:
            with torch.autocast(encoded.device.type, enabled=False):
                rate = jpeg_rate_proxy(encoded, qualities, self.jpeg_proxy())
                loss = loss + self.rate_weight * rate.mean()
        return loss

    def val_degradation(self):
        """The log's baseline is the task's own codec at its quality (for JPEG
        the same as the default); before this, JPEG 2000 and HEIF runs were
        logged against JPEG at their quality number, another rate."""
        if self.codec_name == "jpeg":
            return None
        return lambda gt, q: self.codec.roundtrip(gt, q).decoded

    def infer(self, model, lq, gt, quality):
        """Validation: the real pipeline, E -> codec -> D, at the validation
        quality (``prepare`` keeps it within the task's); the bits of IL and
        IL_enc are counted for ``val_extra``."""
        net = unwrap(model)
        plain, plain_bytes = codec_roundtrips(self.codec, gt, quality)
        encoded = net.hide(gt, gt - plain)
        coded, coded_bytes = codec_roundtrips(self.codec, encoded, quality)
        pixels = gt.shape[-1] * gt.shape[-2]
        for key, sizes in (("bpp", coded_bytes), ("codec_bpp", plain_bytes)):
            self._val_extra.setdefault(key, []).extend(8 * n / pixels for n in sizes)
        for key, decoded in (("plain_psnr", coded), ("codec_psnr", plain)):  # an ordinary viewer's pictures
            errors = ((decoded.float() - gt.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
            self._val_extra.setdefault(key, []).extend((-10 * torch.log10(errors)).tolist())
        return net.reconstruct(coded)

    def val_extra(self, quality):
        """The mean bpp of IL_enc (``bpp``) and of the codec alone on the
        originals (``codec_bpp``): E may buy its gain with bits, which the PSNR
        gain alone hides; and the mean PSNR of IL_enc as an ordinary decoder
        shows it (``plain_psnr``) and of the codec alone (``codec_psnr``)."""
        out = {k: float(sum(v) / len(v)) for k, v in self._val_extra.items() if v}
        self._val_extra = {}
        return out
