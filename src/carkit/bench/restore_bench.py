"""``carkit bench restore``: JPEG vs zoo restorers on evaluation sets.

Follows PROTOCOL.md: whole images at native size, Pillow/libjpeg-turbo JPEG
at each quality (4:2:0 for color, 1-component for gray), outputs clipped and
rounded to uint8, metrics from ``metrics.score``, means over images. Gray sets
are used as they are; a color set benchmarked in gray mode is first converted
with the MATLAB Y formula, or with ``plane="green"`` reduced to its green
channel (HR-CNN's protocol). ``double=(q1, shift)`` compresses twice, as
FBCNN's real-image degradation: JPEG at q1, the decoded image cropped by
``shift`` pixels at its top and left (0: the grids stay aligned), then
JPEG at each benchmark quality; the original is cropped alike. ``crop`` splits every image into non-overlapping
crop x crop tiles first (HR-CNN's Table I: 128x128 crops). One JSON result
per dataset, with provenance.

Models of kind ``kspace`` (HR-CNN) restore from the JPEG's bytes, reading its
coefficients (``restoration/kspace.py``), never its pixels; their time
includes that read. A model trained for some qualities only (HR-CNN's
per-quality models) is scored at those qualities only.

``codec`` names the encoder of the benchmark's JPEGs: ``jpeg``
(libjpeg-turbo, PROTOCOL.md) or ``jpegli`` (its own tables and adaptive
quantization), decoded by Pillow either way, as a viewer does; with
``double`` the first compression stays libjpeg-turbo's. The model name
``default`` is what ``carkit restore`` does to each file (the reviewed
default for its quality, read from its tables, or the file passed through):
the product's own guarantee, never worse than the input, measured.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..codecs.jpeg import JpegCodec
from ..errors import UsageError
from ..data.folders import as_mode, list_images
from ..io import read_image
from ..jpeg.jpegfile import coding_tables_of
from ..models.registry import InputKind
from ..restoration.restorer import Restorer, restore_jpeg
from ..codecs import get_codec
from ..zoo.registry import weights_record
from ..metrics import score
from .results import provenance, write_result
from .common import DEFAULT_RESTORER as DEFAULT, add_runs, data_arg
from ..jpeg.coefficients import read_coefficients
from ..codecs.markers import JPEG_WRITERS  # the encoders whose files the bench restores

PRIMARY = {True: ("psnr", "ssim", "psnr_b"), False: ("psnr_rgb", "ssim_rgb", "psnr_b_rgb")}


def _params(net) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def _means(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def crops_of(image: np.ndarray, size: int) -> list[np.ndarray]:
    """Every whole non-overlapping size x size crop, raster order from the corner."""
    h, w = image.shape[:2]
    return [image[y:y + size, x:x + size] for y in range(0, h - size + 1, size)
            for x in range(0, w - size + 1, size)]


def _kspace_restore(net, data: bytes, restorer: Restorer) -> np.ndarray:
    from ..restoration.kspace import restore_coefficients

    return restore_coefficients(net, read_coefficients(data), restorer.tile, restorer.overlap, restorer.device)




def bench_restore(data_dir: str | os.PathLike, models: list[str], qualities: list[int],
                  gray: bool | None = None, limit: int | None = None, progress: bool = True,
                  threads: int | None = None, runs=(), tag: str = "", plane: str = "y",
                  crop: int = 0, double: tuple[int, int] | None = None, codec: str = "jpeg") -> dict:
    """Score JPEG and each model at each quality on every image of ``data_dir``.
    ``models`` are zoo names; ``runs`` are training-run folders scored with
    their final EMA weights (ablation variants that are not shipped)."""
    from tqdm import tqdm
    import torch

    if threads:
        torch.set_num_threads(threads)
    data_dir = Path(data_dir)
    files = list_images(data_dir)[:limit] if limit else list_images(data_dir)
    if not files:
        raise UsageError(f"{data_dir}: no images to benchmark")
    images = [read_image(f).pixels for f in files]
    if gray is None:
        gray = all(im.ndim == 2 for im in images) or plane != "y"
    if plane != "y" and not gray:
        raise UsageError(f"--plane {plane} applies to gray benchmarks")
    images = [as_mode(im, gray, plane) for im in images]
    if crop:
        images = [c for im in images for c in crops_of(im, crop)]
        if not images:
            raise UsageError(f"{data_dir}: no image has a whole {crop}x{crop} crop")
    if codec not in JPEG_WRITERS:
        raise UsageError(f"--codec {codec}: the restore bench codes JPEG files ({', '.join(JPEG_WRITERS)})")
    writer = get_codec(codec)
    restorer = Restorer()
    plans = {}
    for name in models:
        if name == DEFAULT:
            continue
        restorer.forced = name
        plans[name] = restorer.plan(gray, None)
    restorer.forced = None
    from_runs = add_runs(restorer, runs, gray)
    if set(from_runs) & set(models):
        raise UsageError(f"a run and a zoo model share a name: {sorted(set(from_runs) & set(models))}")
    plans.update({name: plan for name, (plan, _) in from_runs.items()})
    models = list(models) + list(from_runs)
    metric_names = PRIMARY[gray]
    rows: dict[str, dict] = {"jpeg": {}}
    rows.update({m: {} for m in models})
    seconds = {m: 0.0 for m in models}
    decode_seconds = 0.0  # PROTOCOL.md: speed beside a reference measured in the same run
    first_codec = JpegCodec()
    zoo_models = [m for m in models if m not in from_runs and m != DEFAULT]
    kspace = {m for m in zoo_models if weights_record(m).kind == "kspace"}
    mismatched = sorted(m for m in kspace if weights_record(m).gray != gray)
    if mismatched:
        raise UsageError(f"{', '.join(mismatched)}: gray HR-CNN models restore gray JPEGs (benchmark them with "
                          "--gray or --plane green), hrcnn-color color ones")
    covers = {m: weights_record(m).covers if m in zoo_models else (lambda q: True) for m in models}
    chosen: dict[str, int] = {}   # the default's per-file choices, counted
    image_mp = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    megapixels = image_mp * len(qualities)
    scored_mp = {m: image_mp * sum(1 for q in qualities if covers[m](q)) for m in models}
    bar = tqdm(total=len(qualities) * len(images), desc=f"bench {data_dir.name}", disable=not progress)
    for q in qualities:
        per: dict[str, list[dict]] = {k: [] for k in rows}
        for gt in images:
            if double:
                first, shift = double
                once = first_codec.roundtrip(gt, first).decoded[shift:, shift:]
                gt = gt[shift:, shift:]
                coded = writer.roundtrip(np.ascontiguousarray(once), q)
            else:
                coded = writer.roundtrip(gt, q)
            lq = coded.decoded
            decode_seconds += coded.decode_s
            per["jpeg"].append(score(lq, gt))
            for m in models:
                if not covers[m](q):
                    continue
                t0 = time.perf_counter()
                if m == DEFAULT:   # as `carkit restore` does: its plan from the file's own tables
                    restored = restore_jpeg(restorer, coded.data)
                    out = restored.pixels
                    key = f"q{q}: {restored.plan.model or 'passed through'}"
                    chosen[key] = chosen.get(key, 0) + 1
                elif m in kspace:
                    out = _kspace_restore(restorer.model(m), coded.data, restorer)
                elif restorer.descriptor(m).input == InputKind.PIXELS_AND_TABLES:  # the coded file's own tables
                    plan = replace(plans[m], tables=coding_tables_of(coded.data))
                    out = restorer.restore_pixels(lq, plan)
                else:
                    out = restorer.restore_pixels(lq, plans[m])
                seconds[m] += time.perf_counter() - t0
                per[m].append(score(out, gt))
            bar.update(1)
        for k, v in per.items():
            if v:
                rows[k][f"q{q}"] = {**_means(v), "n": len(v)}
    bar.close()
    model_info = {}
    for m in models:
        if m == DEFAULT:
            model_info[m] = {"architecture": "carkit restore's choice per file", "mode": "per file",
                             "choices": chosen, "seconds": seconds[m],
                             "megapixels_per_second": scored_mp[m] / max(seconds[m], 1e-9),
                             "weights_sha256": {n: weights_record(n).sha256 for n in sorted(
                                 {k.split(": ", 1)[1] for k in chosen} - {"passed through"})}}
            continue
        if m in from_runs:
            model_info[m] = {**from_runs[m][1], "mode": plans[m].mode, "seconds": seconds[m],
                             "megapixels_per_second": scored_mp[m] / max(seconds[m], 1e-9)}
            continue
        rec = weights_record(m)
        model_info[m] = {"architecture": rec.model, "weights_sha256": rec.sha256,
                         "mode": "kspace" if m in kspace else plans[m].mode, "params": _params(restorer.model(m)),
                         "seconds": seconds[m], "megapixels_per_second": scored_mp[m] / max(seconds[m], 1e-9),
                         "training": {k: rec.training.get(k) for k in ("steps", "wall_seconds", "data")}}
    return {
        "kind": "restore",
        "dataset": data_dir.name + (f"_crops{crop}" if crop else ""),
        "data": data_arg(data_dir),
        "tag": tag,
        "gray": gray,
        "plane": plane if gray else "rgb",
        "crop": crop,
        "double": {"first_quality": double[0], "shift": double[1]} if double else None,
        "codec": codec,
        "qualities": list(qualities),
        "metrics": list(metric_names),
        "rows": rows,
        "models": model_info,
        "threads": torch.get_num_threads(),
        "precision": restorer.precision,
        "jpeg_decode_megapixels_per_second": megapixels / max(decode_seconds, 1e-9),
        "provenance": provenance(dataset_dir=data_dir, files=files,
                                 codec_settings={**writer.settings(),
                                                 "subsampling": "4:2:0" if not gray else f"gray ({plane})",
                                                 "qualities": list(qualities),
                                                 **({"first_quality": double[0], "grid_shift": double[1]}
                                                    if double else {})}),
    }


def result_path(results_dir: str | os.PathLike, payload: dict) -> Path:
    plane = payload.get("plane", "y")
    mode = ("gray" if plane == "y" else plane) if payload["gray"] else "color"
    tag = f"_{payload['tag']}" if payload.get("tag") else ""
    return Path(results_dir) / f"restore_{payload['dataset']}_{mode}{tag}.json"


def run_restore_bench(data_dirs: list[str], models: list[str], qualities: list[int], gray: bool | None,
                      limit: int | None, results_dir: str, threads: int | None,
                      runs=(), tag: str = "", plane: str = "y", crop: int = 0,
                      double: tuple[int, int] | None = None, codec: str = "jpeg") -> list[Path]:
    written = []
    for d in data_dirs:
        payload = bench_restore(d, models, qualities, gray=gray, limit=limit, threads=threads, runs=runs, tag=tag,
                                plane=plane, crop=crop, double=double, codec=codec)
        path = write_result(result_path(results_dir, payload), payload)
        written.append(path)
        print(format_restore_table(payload))
    return written


def format_restore_table(payload: dict) -> str:
    """Markdown table: one row per quality, PSNR/SSIM/PSNR-B per method."""
    names = ["jpeg"] + list(payload["models"])
    keys = payload["metrics"]
    first = payload["rows"]["jpeg"]["q%d" % payload["qualities"][0]]
    mode = ("gray" if payload.get("plane", "y") == "y" else payload["plane"]) if payload["gray"] else "color"
    twice = payload.get("double")
    twice = (f", compressed at QF {twice['first_quality']} first (grid shift {twice['shift']} px)"
             if twice else "")
    writer = "" if payload.get("codec", "jpeg") == "jpeg" else f", files written by {payload['codec']}"
    lines = [f"{payload['dataset']} ({mode}){twice}{writer}, {first['n']} images: PSNR / SSIM / PSNR-B",
             "", "| QF | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for q in payload["qualities"]:
        cells = []
        base = payload["rows"]["jpeg"][f"q{q}"][keys[0]]
        for n in names:
            v = payload["rows"][n].get(f"q{q}")
            if v is None:  # a per-quality model is not scored at other qualities
                cells.append("-")
                continue
            gain = "" if n == "jpeg" else f" ({v[keys[0]] - base:+.2f})"
            cells.append(f"{v[keys[0]]:.2f}{gain} / {v[keys[1]]:.4f} / {v[keys[2]]:.2f}")
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
