"""``carkit bench qf``: how well a model's own QF predictor reads JPEG quality.

DAGN's compression-sensitive branch predicts the JPEG quality factor of its
input (III-A2). This bench compares that blind estimate with the quality read
from the file's quantization tables (``carkit.jpeg.quality``), on

- real files (``jpeg/real``): whatever the tables say, standard IJG tables or
  not; files that cannot be decoded are listed and skipped;
- evaluation images compressed here at known qualities (Pillow/libjpeg-turbo,
  4:2:0), where the truth is exact.

The estimate is the expectation over the predictor's 100 classes, on the
grid-aligned centre crop ``carkit restore --explain`` uses
(``restoration/restorer.py's predict_quality``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..codecs.jpeg import JpegCodec
from ..data.folders import as_mode, list_images
from ..errors import CarkitError, UsageError
from ..io import read_image
from ..jpeg.jpegfile import JpegFile
from ..restoration.restorer import JPEG_SUFFIXES, predict_quality
from ..zoo.registry import load_pretrained, weights_record
from .results import provenance, write_result

DEFAULT_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def _summary(truth: list[float], est: list[float]) -> dict:
    t, e = np.asarray(truth, float), np.asarray(est, float)
    err = e - t
    return {"n": int(t.size), "mae": float(np.abs(err).mean()), "bias": float(err.mean()),
            "within_5": float((np.abs(err) <= 5).mean()), "within_10": float((np.abs(err) <= 10).mean())}


def _real_files(real_dir: Path, net, progress: bool) -> dict:
    from tqdm import tqdm

    files = sorted(f for f in real_dir.iterdir() if f.is_file() and f.suffix.lower() in JPEG_SUFFIXES)
    rows, skipped = [], []
    for f in tqdm(files, desc="qf real", disable=not progress):
        try:
            jpeg = JpegFile.read(f)  # as restore reads it: stored orientation, 8x8 grid at the corner
        except CarkitError as exc:
            skipped.append({"file": f.name, "reason": str(exc)})
            continue
        image, tables = jpeg.image, jpeg.quality
        if tables is None:
            skipped.append({"file": f.name, "reason": jpeg.quality_problem or "no quality in the tables"})
            continue
        rows.append({"file": f.name, "table_quality": int(tables.quality), "standard": bool(tables.standard),
                     "gray": bool(image.is_gray), "estimate": predict_quality(net, image.pixels)})
    standard = [r for r in rows if r["standard"]]
    return {"dir": str(real_dir), "files": rows, "skipped": skipped,
            "all": _summary([r["table_quality"] for r in rows], [r["estimate"] for r in rows]) if rows else None,
            "standard_tables": _summary([r["table_quality"] for r in standard], [r["estimate"] for r in standard])
            if standard else None}


def _known_qualities(data_dir: Path, qualities, net, limit: int | None, progress: bool) -> dict:
    from tqdm import tqdm

    files = list_images(data_dir)[:limit] if limit else list_images(data_dir)
    if not files:
        raise CarkitError(f"{data_dir}: no images")
    images = [as_mode(read_image(f).pixels, False) for f in files]
    codec = JpegCodec()
    per_q, truth, est = {}, [], []
    bar = tqdm(total=len(images) * len(qualities), desc=f"qf {data_dir.name}", disable=not progress)
    for q in qualities:
        e = []
        for im in images:
            e.append(predict_quality(net, codec.roundtrip(im, q).decoded))
            bar.update(1)
        per_q[f"q{q}"] = {**_summary([q] * len(e), e), "mean_estimate": float(np.mean(e)),
                          "estimates": [round(v, 2) for v in e]}
        truth += [q] * len(e)
        est += e
    bar.close()
    return {"dataset": data_dir.name, "n_images": len(images), "per_quality": per_q, "all": _summary(truth, est),
            "provenance": provenance(dataset_dir=data_dir, files=files,
                                     codec_settings={"codec": "jpeg", "library": "Pillow/libjpeg-turbo",
                                                     "subsampling": "4:2:0", "qualities": list(qualities)})}


def bench_qf(model: str, real_dir: str | os.PathLike | None, data_dirs: list[str | os.PathLike],
             qualities=DEFAULT_QUALITIES, limit: int | None = None, progress: bool = True) -> dict:
    rec = weights_record(model)
    net = load_pretrained(model)
    if getattr(net, "predict_quality", None) is None:
        raise UsageError(f"{model} ({rec.model}) has no quality predictor")
    return {
        "kind": "qf",
        "model": model,
        "architecture": rec.model,
        "weights_sha256": rec.sha256,
        "real": _real_files(Path(real_dir), net, progress) if real_dir else None,
        "known": [_known_qualities(Path(d), qualities, net, limit, progress) for d in data_dirs],
        "provenance": provenance(),
    }


def format_qf_tables(payload: dict) -> str:
    lines = [f"QF predictor of {payload['model']}: blind estimate vs quality read from the tables "
             "(MAE, bias = mean(estimate - truth), share within 5 / 10)", ""]
    lines += ["| images | truth | n | MAE | bias | within 5 | within 10 |", "|---|---|---|---|---|---|---|"]

    def row(name: str, truth: str, s: dict | None) -> None:
        if s:
            lines.append(f"| {name} | {truth} | {s['n']} | {s['mae']:.1f} | {s['bias']:+.1f} | "
                         f"{100 * s['within_5']:.0f} % | {100 * s['within_10']:.0f} % |")

    real = payload.get("real")
    if real:
        row("jpeg/real, all readable", "table quality", real["all"])
        row("jpeg/real, standard IJG tables", "table quality", real["standard_tables"])
    for k in payload["known"]:
        for q, s in k["per_quality"].items():
            row(f"{k['dataset']} coded here", q[1:], s)
        row(f"{k['dataset']} coded here, all", "each", k["all"])
    return "\n".join(lines)


def run_qf_bench(model: str, real_dir, data_dirs, qualities, limit, results_dir: str) -> Path:
    payload = bench_qf(model, real_dir, data_dirs, qualities, limit)
    path = write_result(Path(results_dir) / f"qf_{model}.json", payload)
    print(format_qf_tables(payload))
    return path
