"""``carkit restore``: JPEG file in, restored PNG out.

Steps for one file: check it is a JPEG, read its quantization tables and
estimate the quality, decode it with libjpeg-turbo (the same decoder the
models were trained behind), pick a zoo model for (gray/color, quality),
restore tile by tile, write the PNG atomically.

Color JPEGs are restored by whichever zoo model measures best on color
images at that quality (``carkit bench restore`` stores the measurements in
the zoo records): a color model (DAGN), or a gray model restoring the BT.601
Y channel (the Y the gray models were trained on) with the decoded chroma
kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import CarkitError, ModelError
from ..io import orient, read_image, to_tensor, to_uint8, write_image
from ..zoo.registry import WeightsRecord, list_weights, load_pretrained, weights_record
from .tiling import tiled_apply

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".mpo")
#: A model trained up to quality hi is still used up to hi + this margin.
QUALITY_MARGIN = 10
#: Side of the centre crop a model's own quality estimate looks at (bounded memory on any image).
ESTIMATE_CROP = 1024


@dataclass
class RestorePlan:
    quality: int | None
    standard_tables: bool | None
    model: str | None
    mode: str  # "gray", "color", "color-via-Y", or "passthrough"
    reason: str
    #: the model's own blind estimate of the quality (models with a QF predictor, e.g. DAGN)
    model_quality: float | None = None

    def explain(self) -> str:
        q = "unknown" if self.quality is None else str(self.quality)
        tables = "" if self.standard_tables is None else (
            " (standard IJG tables)" if self.standard_tables else " (non-standard tables, nearest IJG quality)")
        own = "" if self.model_quality is None else f"; model's own estimate {self.model_quality:.0f}"
        return f"quality {q}{tables}{own}; model {self.model or 'none'} [{self.mode}]: {self.reason}"


def grid_aligned_crop(pixels: np.ndarray, size: int = ESTIMATE_CROP) -> np.ndarray:
    """Centre crop of at most ``size`` x ``size`` whose corner sits on the 8x8
    JPEG grid (so the crop's blocks are the file's blocks)."""
    h, w = pixels.shape[:2]
    ch, cw = min(h, size), min(w, size)
    top, left = ((h - ch) // 2) // 8 * 8, ((w - cw) // 2) // 8 * 8
    return pixels[top:top + ch, left:left + cw]


@torch.no_grad()
def estimate_quality(net: torch.nn.Module, pixels: np.ndarray, device: str = "cpu") -> float | None:
    """The network's own estimate of the JPEG quality of decoded ``pixels``
    (uint8 gray or RGB), from a grid-aligned centre crop; None for networks
    without a quality predictor. Gray images are given to color networks as RGB."""
    predict = getattr(net, "predict_quality", None)
    if predict is None:
        return None
    crop = grid_aligned_crop(pixels)
    if crop.ndim == 2 and getattr(net, "in_channels", 1) == 3:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    return float(predict(to_tensor(crop).to(device)).expected[0])


def _measured_gain(record: WeightsRecord, quality: int, color: bool) -> float | None:
    """Mean measured PSNR gain over JPEG, at the benchmarked quality nearest to
    ``quality``, on color sets scored in RGB (``color``; result keys ending in
    ``_rgb``) or on gray sets; None when the record has no such measurement.
    Green-plane results (HR-CNN's protocol, keys ending in ``_green``) are
    left out: not every model is measured that way, so they would skew the
    comparison."""
    gains = []
    for dataset, per_quality in record.results.items():
        if dataset.endswith("_rgb") != color or dataset.endswith("_green"):
            continue
        if not isinstance(per_quality, dict) or not per_quality:
            continue
        qs = [int(k[1:]) for k in per_quality if k.startswith("q") and k[1:].isdigit()]
        if qs:
            nearest = min(qs, key=lambda q: abs(q - quality))
            gain = per_quality[f"q{nearest}"].get("gain_psnr")
            if gain is not None:
                gains.append(gain)
    return float(np.mean(gains)) if gains else None


def choose_model(gray: bool, quality: int | None, records: list[WeightsRecord] | None = None) -> RestorePlan:
    """Pick the zoo model for an image. Candidates: gray models for gray
    images; color models and gray models through Y for color images. Among
    those trained for the quality, the one that measures best on images of
    that kind (RGB gain on color sets, gain on gray sets) wins; unmeasured
    models rank after measured ones, and color models before gray ones on a
    tie. No model covers the quality: the nearest within ``QUALITY_MARGIN``,
    else the decoded JPEG is passed through."""
    if records is None:
        records = [weights_record(n) for n in list_weights()]
    # JPEG restorers only: a DnCNN trained on JPEG 2000 (a residual hiding baseline) is not one
    records = [r for r in records if r.kind == "restorer" and r.trained_codec == "jpeg"]
    q = 10 if quality is None else quality
    if gray:
        candidates = [("gray", r) for r in records if r.gray]
    else:
        candidates = [("color", r) for r in records if not r.gray] + [("color-via-Y", r) for r in records if r.gray]

    covering = [c for c in candidates if c[1].covers(q)]
    if covering:
        gains = {r.name: _measured_gain(r, q, color=not gray) for _, r in covering}

        def rank(candidate):
            mode, r = candidate
            gain = gains[r.name]
            return (gain is not None, gain or 0.0, mode != "color-via-Y", r.qualities[1] - r.qualities[0])

        mode, best = max(covering, key=rank)
        gain = gains[best.name]
        measured = "" if gain is None else f", measured {gain:+.2f} dB over JPEG near this quality"
        return RestorePlan(quality, None, best.name, mode,
                           f"trained for QF {best.qualities[0]}..{best.qualities[1]}{measured}")
    near = [c for c in candidates if c[1].qualities[0] - QUALITY_MARGIN <= q <= c[1].qualities[1] + QUALITY_MARGIN]
    if near:
        mode, best = min(near, key=lambda c: (min(abs(q - c[1].qualities[0]), abs(q - c[1].qualities[1])),
                                              c[0] == "color-via-Y"))
        return RestorePlan(quality, None, best.name, mode,
                           f"nearest model (trained for QF {best.qualities[0]}..{best.qualities[1]})")
    return RestorePlan(quality, None, None, "passthrough",
                       "no model is trained near this quality; output is the decoded JPEG")


class Restorer:
    """Restores decoded JPEG pixels with zoo models (loaded once, reused)."""

    def __init__(self, model: str | None = None, device: str = "cpu", tile: int = 512,
                 overlap: int = 32):
        self.forced = model
        if model is not None:
            record = weights_record(model)  # fail early on unknown names
            if record.kind not in ("restorer", "kspace"):
                raise ModelError(f"{model} is a {record.kind}, not an artifact remover")
        self.device = device
        self.tile = tile
        self.overlap = overlap
        self._models: dict[str, torch.nn.Module] = {}

    def model(self, name: str) -> torch.nn.Module:
        if name not in self._models:
            self._models[name] = load_pretrained(name, self.device)
        return self._models[name]

    def plan(self, gray: bool, quality: int | None) -> RestorePlan:
        if self.forced is None:
            return choose_model(gray, quality)
        record = weights_record(self.forced)
        # A color model on a gray image runs on an RGB copy (see restore_pixels).
        mode = ("gray" if gray else "color-via-Y") if record.gray else "color"
        return RestorePlan(quality, None, record.name, mode, "chosen with --model")

    def _run(self, net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return tiled_apply(lambda t: net(t.to(self.device)).float().cpu(), x, self.tile, self.overlap)

    @torch.no_grad()
    def restore_pixels(self, pixels: np.ndarray, plan: RestorePlan) -> np.ndarray:
        """uint8 (H, W) or (H, W, 3) decoded JPEG -> restored uint8 of the same shape."""
        if plan.model is None:
            return pixels
        net = self.model(plan.model)
        gray = pixels.ndim == 2
        if plan.mode == "gray":
            return to_uint8(self._run(net, to_tensor(pixels)))
        if plan.mode == "color" and gray:
            rgb = np.repeat(pixels[:, :, None], 3, axis=2)
            return to_uint8(self._run(net, to_tensor(rgb)).mean(dim=1, keepdim=True))
        if plan.mode == "color":
            return to_uint8(self._run(net, to_tensor(pixels)))
        # color-via-Y: restore BT.601 Y, keep the decoded Cb/Cr.
        from ..color import rgb_to_ycbcr_bt601, ycbcr_bt601_to_rgb

        ycc = rgb_to_ycbcr_bt601(to_tensor(pixels))
        # The gray models were trained on Y rounded to uint8 (PROTOCOL.md's gray sets).
        y = torch.round(ycc[:, :1] * 255.0) / 255.0
        ycc[:, :1] = ycc[:, :1] + (self._run(net, y) - y)
        return to_uint8(ycbcr_bt601_to_rgb(ycc).clamp_(0, 1))


def read_jpeg_for_restore(path: Path):
    """Decode a JPEG and read its quality; typed errors for anything wrong."""
    from ..jpeg.files import require_jpeg_path
    from ..jpeg.quality import estimate_quality_of_file

    require_jpeg_path(path)
    estimate = estimate_quality_of_file(path)
    # Restore in the stored orientation: that is where the 8x8 grid starts at
    # the corner, as in training. EXIF orientation is applied to the output.
    image = read_image(path, apply_orientation=False)
    return image, estimate


def restore_file(restorer: Restorer, src: str | os.PathLike, dst: str | os.PathLike,
                 explain: bool = False) -> RestorePlan:
    """Restore one JPEG into ``dst`` (PNG by its suffix). Never overwrites ``src``;
    writes nothing when anything fails. ``explain`` also fills the plan's
    ``model_quality`` (the model's own quality estimate, where it has one)."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and dst.resolve() == src.resolve():
        raise CarkitError(f"{dst}: output would overwrite the input")
    if restorer.forced is not None and weights_record(restorer.forced).kind == "kspace":
        from .kspace_restore import restore_kspace_file

        return restore_kspace_file(restorer, src, dst)
    image, estimate = read_jpeg_for_restore(src)
    plan = restorer.plan(image.is_gray, estimate.quality)
    plan.standard_tables = estimate.standard
    if explain and plan.model is not None:
        plan.model_quality = estimate_quality(restorer.model(plan.model), image.pixels, restorer.device)
    out = orient(restorer.restore_pixels(image.pixels, plan), image.orientation)
    alpha = None if image.alpha is None else orient(image.alpha, image.orientation)
    write_image(dst, out, alpha=alpha)
    return plan


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders expanded to the JPEGs directly inside them."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in JPEG_SUFFIXES))
        else:
            files.append(p)
    return files


def output_paths(files: list[Path], inputs: list[str], output: str) -> list[Path]:
    """One input file and an OUTPUT with an image suffix: OUTPUT is that file.
    Otherwise OUTPUT is a folder receiving STEM.png for each input."""
    out = Path(output)
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and len(files) == 1
    if single and out.suffix and not out.is_dir():
        return [out]
    if out.exists() and not out.is_dir():
        raise CarkitError(f"{out}: several inputs need OUTPUT to be a folder")
    paths = [out / f"{f.stem}.png" for f in files]
    seen: dict[Path, Path] = {}
    for f, p in zip(files, paths):
        if p in seen:
            raise CarkitError(f"{f} and {seen[p]} would both be written to {p}")
        seen[p] = f
    return paths


def ensure_model_names(names: list[str]) -> None:
    for n in names:
        if n not in list_weights():
            raise ModelError(f"unknown model {n!r}; known: {', '.join(list_weights())}")
