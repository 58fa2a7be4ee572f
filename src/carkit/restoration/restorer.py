"""``carkit restore``: JPEG in, restored image out.

Steps for one file: read it once (:class:`~carkit.jpeg.jpegfile.JpegFile`:
SOI, declared size against the pixel limit, quantization tables and the
quality they give, decode by libjpeg-turbo, the same decoder the models were
trained behind), pick a zoo model for (gray/color, quality), restore tile by
tile, write the result atomically with the input's ICC profile, EXIF, XMP and
DPI (lossless unless asked otherwise; :func:`carkit.io.output_format`).
A file whose tables are invalid but which still decodes has no known quality:
it goes to the blind model (the widest trained quality range).

Color JPEGs are restored by whichever zoo model measures best on color
images at that quality (``carkit bench restore`` stores the measurements in
the zoo records): a color model (DAGN), or a gray model restoring the BT.601
Y channel (the Y the gray models were trained on) with the decoded chroma
kept.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import CarkitError, ModelError, OutputExistsError, UsageError
from ..io import (check_output_path, encode_image, orient, output_format, to_tensor,
                  to_uint8, write_bytes)
from ..jpeg.jpegfile import JpegFile
from ..models.registry import InputKind, ModelDescriptor, Role, describe
from ..zoo.registry import WeightsRecord, list_weights, load_pretrained, weights_record
from .plan import RestorePlan, Restored
from ..nn.tiling import tiled_apply
from ..nn.precision import resolve_precision, run_at
from ..zoo.defaults import RESTORE_DEFAULTS, default_restorer
from ..zoo import select as zoo_select
from .kspace import restore_kspace
from ..color import rgb_to_ycbcr_bt601, ycbcr_bt601_to_rgb

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".mpo")
#: A model trained up to quality hi is still used up to hi + this margin.
QUALITY_MARGIN = 10
#: Side of the centre crop a model's own quality estimate looks at (bounded memory on any image).
ESTIMATE_CROP = 1024


def grid_aligned_crop(pixels: np.ndarray, size: int = ESTIMATE_CROP) -> np.ndarray:
    """Centre crop of at most ``size`` x ``size`` whose corner sits on the 8x8
    JPEG grid (so the crop's blocks are the file's blocks)."""
    h, w = pixels.shape[:2]
    ch, cw = min(h, size), min(w, size)
    top, left = ((h - ch) // 2) // 8 * 8, ((w - cw) // 2) // 8 * 8
    return pixels[top:top + ch, left:left + cw]


@torch.no_grad()
def predict_quality(net: torch.nn.Module, pixels: np.ndarray, device: str = "cpu") -> float | None:
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


def _reviewed_plan(gray: bool, quality: int | None) -> RestorePlan | None:
    """The plan of the reviewed default table (:mod:`carkit.zoo.defaults`):
    its model where the zoo ships it, a pass-through where no row covers the
    quality; None when the zoo lacks the table's models (a custom zoo), so
    that the choice falls back to ranking the records."""
    shipped = set(list_weights())
    if not {row.model for row in RESTORE_DEFAULTS} <= shipped:
        return None
    row = default_restorer(gray, quality)
    if row is None:
        return RestorePlan(quality, None, None, "passthrough",
                           "no model is measured near this quality; output is the decoded JPEG")
    lo, hi = weights_record(row.model).qualities
    known = "quality unknown: blind model" if quality is None else "reviewed default"
    return RestorePlan(quality, None, row.model, row.mode, f"{known} (trained for QF {lo}..{hi}): {row.why}")


def choose_model(gray: bool, quality: int | None, records: list[WeightsRecord] | None = None) -> RestorePlan:
    """Pick the zoo model for an image: the reviewed default table
    (:mod:`carkit.zoo.defaults`) when the zoo ships its models. Otherwise
    (``records`` given, or a custom zoo) by what the records declare.
    Candidates: gray models for gray images; color models and gray models
    through Y for color images. Among those trained for the quality, color
    models before gray ones through Y, then the narrowest trained range (the
    most specialised), then the name. No model covers the quality: the
    nearest within ``QUALITY_MARGIN``, else the decoded JPEG is passed through."""
    if records is None:
        reviewed = _reviewed_plan(gray, quality)
        if reviewed is not None:
            return reviewed
    # JPEG restorers only (carkit.zoo.select.candidates): a DnCNN trained on JPEG 2000 (a residual
    # hiding baseline) is not one
    records = zoo_select.candidates(Role.RESTORER, codec="jpeg", records=records)
    if gray:
        candidates = [("gray", r) for r in records if r.gray]
    else:
        candidates = [("color", r) for r in records if not r.gray] + [("color-via-Y", r) for r in records if r.gray]
    if quality is None:
        if not candidates:
            return RestorePlan(None, None, None, "passthrough", "quality unknown and no blind model; "
                               "output is the decoded JPEG")
        # Unknown quality: the blind model, i.e. the widest trained range (color models first).
        mode, best = max(candidates, key=lambda c: (c[1].qualities[1] - c[1].qualities[0], c[0] != "color-via-Y"))
        return RestorePlan(None, None, best.name, mode,
                           f"quality unknown: blind model (trained for QF {best.qualities[0]}..{best.qualities[1]})")
    q = quality

    covering = [c for c in candidates if c[1].covers(q)]
    if covering:
        mode, best = min(covering, key=lambda c: (c[0] == "color-via-Y", c[1].qualities[1] - c[1].qualities[0],
                                                  c[1].name))
        return RestorePlan(quality, None, best.name, mode,
                           f"trained for QF {best.qualities[0]}..{best.qualities[1]}")
    near = [c for c in candidates if c[1].qualities[0] - QUALITY_MARGIN <= q <= c[1].qualities[1] + QUALITY_MARGIN]
    if near:
        mode, best = min(near, key=lambda c: (min(abs(q - c[1].qualities[0]), abs(q - c[1].qualities[1])),
                                              c[0] == "color-via-Y"))
        return RestorePlan(quality, None, best.name, mode,
                           f"nearest model (trained for QF {best.qualities[0]}..{best.qualities[1]})")
    return RestorePlan(quality, None, None, "passthrough",
                       "no model is trained near this quality; output is the decoded JPEG")


def check_device(device: str) -> str:
    """A torch device this build can run, or a one-line UsageError."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UsageError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r}: this PyTorch build has no CUDA, or no GPU is visible; use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {device!r}: Apple MPS is not available here; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"device {device!r} is not supported; use cpu, cuda or mps")
    return device


class Restorer:
    """Restores decoded JPEG pixels with zoo models (loaded once, reused).

    ``precision``: auto (bf16 + channels_last where the CPU computes bf16
    natively, else fp32), fp32 or bf16."""

    def __init__(self, model: str | None = None, device: str = "cpu", tile: int = 512,
                 overlap: int = 32, precision: str = "auto"):
        if tile % 16 or tile < overlap + 32:
            raise UsageError(f"tile must be a multiple of 16 and at least {overlap + 32} px "
                             f"(overlap {overlap} px), got {tile}")
        self.device = check_device(device)
        self.precision = resolve_precision(precision, device)
        self.forced = model
        if model is not None:
            record = weights_record(model)  # fail early on unknown names
            if record.kind not in ("restorer", "kspace"):
                raise ModelError(f"{model} is a {record.kind}, not an artifact remover")
        self.tile = tile
        self.overlap = overlap
        self._models: dict[str, torch.nn.Module] = {}
        self._descriptors: dict[str, ModelDescriptor] = {}

    def model(self, name: str) -> torch.nn.Module:
        if name not in self._models:
            self._models[name] = load_pretrained(name, self.device)
        return self._models[name]

    def add(self, name: str, net: torch.nn.Module, described: ModelDescriptor) -> None:
        """Use ``net`` (built elsewhere: a training run's, say) under ``name``."""
        self._models[name], self._descriptors[name] = net, described

    def descriptor(self, name: str) -> ModelDescriptor:
        """How zoo weights ``name`` run: their model's descriptor."""
        if name not in self._descriptors:
            self._descriptors[name] = describe(weights_record(name).model)
        return self._descriptors[name]

    def plan(self, gray: bool, quality: int | None) -> RestorePlan:
        if self.forced is None:
            return choose_model(gray, quality)
        record = weights_record(self.forced)
        # A color model on a gray image runs on an RGB copy (see restore_pixels).
        mode = ("gray" if gray else "color-via-Y") if record.gray else "color"
        return RestorePlan(quality, None, record.name, mode, "chosen with --model")

    def _run(self, net: torch.nn.Module, described: ModelDescriptor, x: torch.Tensor, progress=None,
             tables=None) -> torch.Tensor:
        kwargs = {}
        if described.input == InputKind.PIXELS_AND_TABLES and tables is not None:
            kwargs = {"luma_table": torch.as_tensor(np.asarray(tables[0]), dtype=torch.float32).reshape(64),
                      "chroma_table": torch.as_tensor(np.asarray(tables[1]), dtype=torch.float32).reshape(64)}

        def run(t: torch.Tensor) -> torch.Tensor:
            return run_at(self.precision, net, t.to(self.device), **kwargs).float().cpu()

        return tiled_apply(run, x, self.tile, self.overlap, progress=progress,
                           align=described.size_multiple)

    @torch.no_grad()
    def restore_pixels(self, pixels: np.ndarray, plan: RestorePlan,
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
        """uint8 (H, W) or (H, W, 3) decoded JPEG -> restored uint8 of the same
        shape; ``progress`` is called with 1 per tile."""
        if plan.model is None:
            return pixels
        net, described = self.model(plan.model), self.descriptor(plan.model)
        gray = pixels.ndim == 2
        if described.input == InputKind.PIXELS_AND_TABLES:  # gray or RGB as it is, with the file's tables
            if plan.tables is None:  # never guess them: a model given other tables restores the wrong file
                raise ModelError(f"{plan.model} reads the JPEG file's quantization tables; restore the file "
                                 "(a path or its bytes), not its decoded pixels")
            return to_uint8(self._run(net, described, to_tensor(pixels), progress, plan.tables))
        if plan.mode == "gray":
            return to_uint8(self._run(net, described, to_tensor(pixels), progress))
        if plan.mode == "color" and gray:
            rgb = np.repeat(pixels[:, :, None], 3, axis=2)
            return to_uint8(self._run(net, described, to_tensor(rgb), progress).mean(dim=1, keepdim=True))
        if plan.mode == "color":
            return to_uint8(self._run(net, described, to_tensor(pixels), progress))
        # color-via-Y: restore BT.601 Y, keep the decoded Cb/Cr.

        ycc = rgb_to_ycbcr_bt601(to_tensor(pixels))
        # The gray models were trained on Y rounded to uint8 (PROTOCOL.md's gray sets).
        y = torch.round(ycc[:, :1] * 255.0) / 255.0
        ycc[:, :1] = ycc[:, :1] + (self._run(net, described, y, progress) - y)
        return to_uint8(ycbcr_bt601_to_rgb(ycc).clamp_(0, 1))


def restore_jpeg(restorer: Restorer, source: str | os.PathLike | bytes, name: str | None = None,
                 explain: bool = False, progress: Callable[[int], None] | None = None) -> Restored:
    """Restore a JPEG given as a path or its bytes. ``explain`` also fills the
    plan's ``model_quality`` (the model's own quality estimate, where it has one);
    ``progress`` is called with 1 per restored tile."""
    if restorer.forced is not None and weights_record(restorer.forced).kind == "kspace":
        return restore_kspace(restorer, source, name)
    jpeg = JpegFile.read(source, name)
    quality = None if jpeg.quality is None else jpeg.quality.quality
    plan = restorer.plan(jpeg.is_gray, quality)
    plan.standard_tables = None if jpeg.quality is None else jpeg.quality.standard
    plan.quality_problem = jpeg.quality_problem
    plan.tables = jpeg.coding_tables
    if explain and plan.model is not None:
        plan.model_quality = predict_quality(restorer.model(plan.model), jpeg.pixels, restorer.device)
    image = jpeg.image
    out = orient(restorer.restore_pixels(image.pixels, plan, progress), image.orientation)
    alpha = None if image.alpha is None else orient(image.alpha, image.orientation)
    return Restored(out, alpha, image.metadata, plan)


@dataclass
class RestoreRecord:
    """What happened to one input (``carkit restore --json`` prints these)."""

    input: str
    output: str | None = None
    quality: int | None = None
    standard_tables: bool | None = None
    model: str | None = None
    mode: str | None = None
    seconds: float = 0.0
    error: str | None = None
    explain: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class OutputOptions:
    """How restored images are written: ``quality`` for lossy formats (JPEG,
    lossy WebP), ``strip_metadata`` drops ICC/EXIF/XMP/DPI, ``force``
    overwrites an existing output."""

    quality: int | None = None
    strip_metadata: bool = False
    force: bool = False


def encode_restored(restored: Restored, dst: str, options: OutputOptions) -> bytes:
    """The bytes of ``restored`` in the format ``dst``'s suffix names ("-": PNG)."""
    fmt, save = output_format(dst, options.quality)
    metadata = None if options.strip_metadata else restored.metadata
    return encode_image(restored.pixels, fmt, alpha=restored.alpha, metadata=metadata, name=dst, **save)


def restore_file(restorer: Restorer, src: str | os.PathLike, dst: str | os.PathLike,
                 explain: bool = False, options: OutputOptions | None = None,
                 progress: Callable[[int], None] | None = None) -> RestorePlan:
    """Restore one JPEG into ``dst`` (format by its suffix, :func:`carkit.io.output_format`).
    Never overwrites ``src``, nor an existing ``dst`` unless ``options.force``;
    writes nothing when anything fails."""
    return _restore_one(restorer, os.fspath(src), os.fspath(dst), explain, options or OutputOptions(), None,
                        progress)[0]


def restore_to_record(restorer: Restorer, src: str, dst: str, explain: bool = False,
                      options: OutputOptions | None = None, stdin: bytes | None = None,
                      progress: Callable[[int], None] | None = None) -> tuple[RestoreRecord, bytes | None]:
    """Restore one input for a batch: never raises for a bad input. Returns the
    record and, for ``dst == "-"``, the encoded bytes for standard output.
    An exception that is not a CarkitError is a bug: the record says so."""
    import warnings

    options = options or OutputOptions()
    record = RestoreRecord(input=src, output=dst)
    start = time.perf_counter()
    data = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            plan, data = _restore_one(restorer, src, dst, explain, options, stdin, progress)
            record.quality, record.standard_tables = plan.quality, plan.standard_tables
            record.model, record.mode = plan.model, plan.mode
            if explain:
                record.explain = plan.explain()
        except UsageError as exc:
            if not isinstance(exc, OutputExistsError):  # that one is this file's failure
                raise
            record.output, record.error = None, str(exc)
        except CarkitError as exc:
            record.output, record.error = None, str(exc)
        except MemoryError:
            record.output, record.error = None, f"{src}: out of memory (try a smaller --tile)"
        except Exception as exc:  # a bug: name the file, keep the batch going
            text = " ".join(str(exc).split())[:200]
            record.output = None
            record.error = (f"{src}: internal error {type(exc).__name__}: {text} "
                            "(this is a bug in carkit; please report it with the file)")
    for w in caught:
        text = str(w.message).splitlines()[0] if str(w.message) else w.category.__name__
        record.warnings.append(text if text.startswith(str(src)) else f"{src}: {text}")
    record.seconds = round(time.perf_counter() - start, 3)
    return record, data


def _restore_one(restorer: Restorer, src: str, dst: str, explain: bool, options: OutputOptions,
                 stdin: bytes | None, progress) -> tuple[RestorePlan, bytes | None]:
    """One input ("-": ``stdin``) to one output ("-": the returned bytes).
    The output is checked (never the input, never an existing file without
    ``force``, a format by its suffix) before any work."""
    if dst != "-":
        check_output_path(None if src == "-" else src, dst, options.force)
    output_format(dst, options.quality)
    source, name = (stdin, "<stdin>") if src == "-" else (src, None)
    restored = restore_jpeg(restorer, source, name, explain=explain, progress=progress)
    data = encode_restored(restored, dst, options)
    if dst != "-":
        write_bytes(Path(dst), data)
        data = None
    return restored.plan, data


def collect_inputs(inputs: list[str], recursive: bool = False) -> list[Path]:
    """Files as given; folders expanded to the JPEGs directly inside them (and
    in their subfolders with ``recursive``), sorted."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            files.extend(sorted(f for f in found if f.is_file() and f.suffix.lower() in JPEG_SUFFIXES))
        else:
            files.append(p)
    return files


def output_paths(files: list[Path], inputs: list[str], output: str, suffix: str = ".png") -> list[Path]:
    """One input file and an OUTPUT with a suffix (or "-"): OUTPUT is the output
    file. Several inputs or a folder: OUTPUT is a folder receiving
    STEM.png for each input (the input's relative folder kept under a folder
    input, so a recursive batch does not collide). Several inputs with an
    OUTPUT that names a file (it has an image suffix, or is a file) is a
    UsageError."""
    out = Path(output)
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and len(files) == 1
    if single and (out.suffix or output == "-") and not out.is_dir():
        return [out]
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: several inputs need OUTPUT to be a folder")
    if not out.exists() and out.suffix.lower() in (".png", ".webp", ".tif", ".tiff", ".jpg", ".jpeg"):
        raise UsageError(f"{out}: several inputs need OUTPUT to be a folder, not an image file name")
    roots = [Path(i) for i in inputs if Path(i).is_dir()]
    paths = []
    for f in files:
        rel = Path(f.name)
        for root in roots:
            try:
                rel = f.relative_to(root)
                break
            except ValueError:
                continue
        paths.append(out / rel.with_suffix(suffix))
    seen: dict[Path, Path] = {}
    for f, p in zip(files, paths):
        if p in seen:
            raise UsageError(f"{f} and {seen[p]} would both be written to {p}")
        seen[p] = f
    return paths
