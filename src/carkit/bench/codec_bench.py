"""Rate-distortion benchmark of real codecs on an image folder.

``bench_codecs`` round-trips every image of a folder through each codec at
each quality and records, per image, the real file size (bytes, bpp), the
PROTOCOL.md metrics (``metrics.score``: psnr_rgb, ssim_rgb, psnr_b_rgb, psnr_y,
ssim_y, psnr_b_y for color; psnr, ssim, psnr_b for gray) and the encode and
decode times; then means over images (mean of per-image values), and the
Bjontegaard delta (BD-rate, BD-PSNR; PCHIP, overlapping range only) of each
codec against the JPEG anchor, computed on the mean curves (mean bpp, mean PSNR
per quality). ``format_codec_table`` renders the payload as text.
``run_codec_bench_cli`` is the body of ``carkit bench codecs``.

Defaults: every available standard codec (jpeg, jpeg2000, webp, avif, heif)
and carkit's learned codec (factorized) at qualities 10, 20, ..., 90 (nine
points a curve, BD needs at least four). A codec whose qualities do not all
give different files (the learned codec: one zoo entry per quality range)
keeps one quality per distinct file (``Codec.distinct_qualities``): its curve
has one point per trained rate point.

Images: the files directly inside the folder (PNG, BMP, TIFF, JPEG, PPM/PGM),
sorted by name, used whole at native size; ``limit`` keeps the first N. Alpha
is dropped. ``gray=True`` scores the gray versions (MATLAB Y rounded to uint8,
PROTOCOL.md); ``gray=False`` keeps color images as RGB, keeps an all-gray
folder gray, and turns the gray images of a mixed folder into 3-channel RGB.

Timings are one run per image after a one-image warm-up per codec, on
whatever CPU the process gets (AVIF is pinned to 1 thread, the other coders
are single-threaded; HEIF/x265 may use more). They are indicative, not the
PROTOCOL.md speed measurement.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..extras import require_bench_deps
from .common import (
    ANCHOR, bd_table, bench_images, format_codec_table, mean_of, parse_list, progress_bar, read_bench_images,
    round_stored,
)
from ..codecs import available_codecs, canonical_name, get_codec
from ..codecs.base import check_quality
from .results import provenance, write_result
from .. import metrics

DEFAULT_CODECS: tuple[str, ...] = ("jpeg", "jpegli", "jpeg2000", "webp", "avif", "heif", "factorized")
DEFAULT_QUALITIES: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)

def bench_codecs(data_dir: str | os.PathLike, codecs: Sequence[str] | str | None = None,
                 qualities: Sequence[int] | str | None = None, gray: bool = False,
                 limit: int | None = None, progress: bool = True,
                 codec_options: dict[str, dict] | None = None, anchor: str = ANCHOR) -> dict:
    """Run the benchmark; return the result payload (see module doc).

    ``codecs``: registry names (aliases allowed), default: every available
    one of ``DEFAULT_CODECS``. ``qualities``: ints 1..100, default
    ``DEFAULT_QUALITIES``. ``codec_options``: {name: constructor options}.
    BD is reported only when the anchor (``jpeg``) is among ``codecs``.

    Payload layout::

        {"kind": "codec_bench", "provenance": {...}, "config": {...},
         "images": [{"name", "height", "width"}],
         "codecs": {name: {"settings": {...}, "points": [
             {"quality": q, "mean": {"bpp", "bytes", <metrics>, "encode_s", "decode_s",
                                     "encode_mpix_s", "decode_mpix_s"},
              "per_image": {"bytes": [...], "bpp": [...], <metric>: [...], ...}}]}},
         "bd": {"anchor": "jpeg", "metrics": [...], "codecs": {name: {metric:
                {"bd_rate": %, "bd_psnr": dB} or {"error": why}}}}}

    Per-image lists follow the order of ``images``.
    """
    require_bench_deps()   # the BD table, before minutes of coding
    names = parse_list(codecs, str)
    if names is None:
        avail = set(available_codecs())
        names = [n for n in DEFAULT_CODECS if n in avail]
    names = list(dict.fromkeys(canonical_name(n) for n in names))
    if not names:
        raise UsageError("no codec to benchmark")
    quals = parse_list(qualities, int) or list(DEFAULT_QUALITIES)
    quals = sorted(set(check_quality(q) for q in quals))
    codec_options = {canonical_name(k): dict(v) for k, v in (codec_options or {}).items()}
    coders = {n: get_codec(n, **codec_options.get(n, {})) for n in names}

    files = bench_images(data_dir, limit)
    images, mode = read_bench_images(files, gray)
    metric_keys = list(metrics.score(images[0], images[0]).keys())

    # qualities that give the same file (a learned codec's quality range) are coded once
    sweeps = {n: c.distinct_qualities(quals) or tuple(quals[:1]) for n, c in coders.items()}
    results: dict[str, dict] = {}
    bar = progress_bar(sum(len(s) for s in sweeps.values()) * len(images), progress)
    try:
        for name, codec in coders.items():
            sweep = sweeps[name]
            codec.roundtrip(images[0], sweep[len(sweep) // 2])  # warm-up (libraries, caches)
            points = []
            for q in sweep:
                bar.set_description(f"{name} q{q}")
                per: dict[str, list] = {k: [] for k in ("bytes", "bpp", *metric_keys,
                                                        "encode_s", "decode_s")}
                for img in images:
                    rt = codec.roundtrip(img, q)
                    h, w = img.shape[:2]
                    s = metrics.score(rt.decoded, img)
                    per["bytes"].append(rt.nbytes)
                    per["bpp"].append(metrics.bpp(rt.nbytes, h, w))
                    for k in metric_keys:
                        per[k].append(s[k])
                    per["encode_s"].append(rt.encode_s)
                    per["decode_s"].append(rt.decode_s)
                    bar.update(1)
                mpix = sum(i.shape[0] * i.shape[1] for i in images) / 1e6
                mean = {k: mean_of(v) for k, v in per.items()}
                mean["encode_mpix_s"] = mpix / max(sum(per["encode_s"]), 1e-12)
                mean["decode_mpix_s"] = mpix / max(sum(per["decode_s"]), 1e-12)
                per = {k: [round_stored(k, x) for x in v] for k, v in per.items()}
                points.append({"quality": q, "mean": mean, "per_image": per})
            results[name] = {"settings": codec.settings(), "points": points}
    finally:
        bar.close()

    payload = {
        "kind": "codec_bench",
        "config": {"data_dir": str(Path(data_dir).resolve()), "codecs": names,
                   "qualities": quals, "gray": bool(gray), "mode": mode, "limit": limit,
                   "anchor": anchor, "metrics": metric_keys},
        "images": [{"name": f.name, "height": int(i.shape[0]), "width": int(i.shape[1])}
                   for f, i in zip(files, images)],
        "codecs": results,
        "provenance": provenance(dataset_dir=data_dir, files=files,
                                 codec_settings={n: r["settings"] for n, r in results.items()}),
    }
    payload["bd"] = bd_table(payload, anchor=anchor)
    return payload


def named_codecs(codecs: Sequence[str]) -> list[str]:
    """The benched codecs when they are not the default set (a partial run
    names them in its file name and report command), else []."""
    codecs = list(codecs or [])
    return codecs if codecs != list(DEFAULT_CODECS) else []


def default_out(data_dir: str | os.PathLike, gray: bool, codecs: Sequence[str] = ()) -> Path:
    """``results/codecs_<folder>[_gray][_<codec>-<codec>...].json`` (relative to
    the working folder); a run of other than the default codecs gets their
    names, so it never replaces the full set's result."""
    named = named_codecs(codecs)
    suffix = ("_gray" if gray else "") + ("_" + "-".join(named) if named else "")
    return Path("results") / f"codecs_{Path(data_dir).resolve().name}{suffix}.json"


def run_codec_bench_cli(data, codecs=None, qualities=None, gray: bool = False,
                        limit: int | None = None, out=None, progress: bool = True) -> int:
    """``carkit bench codecs``: run, write the JSON (``out`` or
    ``default_out``), print the table and the output path; return 0.
    ``codecs``/``qualities`` may be comma-separated strings. Errors propagate
    as ``CarkitError``/``ValueError`` for the CLI to report."""
    payload = bench_codecs(data, codecs=codecs, qualities=qualities, gray=gray, limit=limit,
                           progress=progress)
    path = write_result(out if out is not None else default_out(data, gray, payload["config"]["codecs"]), payload)
    print(format_codec_table(payload))
    print(f"\nwrote {path}")
    return 0


def add_bench_codecs_arguments(parser) -> None:
    """The argparse options of ``carkit bench codecs``."""
    codecs = ",".join(DEFAULT_CODECS)
    quals = ",".join(map(str, DEFAULT_QUALITIES))
    parser.add_argument("--data", required=True,
                        help="image folder (e.g. ../shared/data/eval/kodak)")
    parser.add_argument("--codecs", default=None,
                        help=f"comma-separated codec names (default: the available ones of {codecs})")
    parser.add_argument("--qualities", default=None,
                        help=f"comma-separated qualities 1..100 (default: {quals})")
    parser.add_argument("--gray", action="store_true", help="benchmark the MATLAB-Y gray versions")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--out", default=None,
                        help="result JSON (default: results/codecs_<folder>[_gray].json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main_bench_codecs(args) -> int:
    """Entry for an argparse namespace built with ``add_bench_codecs_arguments``."""
    return run_codec_bench_cli(args.data, codecs=args.codecs, qualities=args.qualities,
                               gray=args.gray, limit=args.limit, out=args.out,
                               progress=not getattr(args, "no_progress", False))


__all__ = ["DEFAULT_CODECS", "DEFAULT_QUALITIES", "bench_codecs", "bd_table", "format_codec_table",
           "run_codec_bench_cli", "add_bench_codecs_arguments", "main_bench_codecs", "bench_images",
           "default_out", "named_codecs"]
