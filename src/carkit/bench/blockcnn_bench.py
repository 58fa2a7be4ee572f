"""BlockCNN's compression experiments (Maleki et al. 2018, section 3.2-3.3).

On an image folder (the paper: Kodak, 24 images, full size), at each quality:

* ``jpeg``: plain JPEG (PROTOCOL.md settings);
* ``jpeg+<restorer>``: the same JPEG bytes, decoded, then BlockCNN artifact
  removal (paper Fig. 10, combination 2);
* ``blockcnn``: the block-predictive codec (combination 3);
* ``blockcnn+<restorer>``: its decoded image, then artifact removal
  (combination 4).

Each image is encoded once per codec and quality; the two restored rows reuse
the decoded pixels (their bytes are the codec's). The codec's reconstruction
is its encoder's own (``encode_with_reconstruction``); each of the first
``verify_images`` images (default: all) is also decoded from its bytes at one
quality, the qualities taken in turn (image i at the i-th quality, cyclically),
timed, and must equal it bit for bit (a mismatch is an error, not a number).
So every image's round trip is checked once and every quality on several
images, at a fraction of the cost of decoding everything.

The payload has the layout of ``carkit bench codecs`` (so the same table and
BD code apply) plus:

* ``bd_window``: BD-rate against JPEG averaged over the paper's low-rate range
  (default 0.15-0.6 bpp, the project's target range);
* ``at_bpp``: every curve's PSNR and SSIM interpolated (PCHIP on log rate) at
  one rate (default 0.45 bpp, paper Fig. 10);
* ``speed``: encode and decode time per megapixel of the codec beside
  Pillow's JPEG on the same images, in the same run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CodecError
from ..extras import require_bench_deps
from .common import (
    bd_table, bench_images, curve_at, dataset_name, fmt, format_codec_table, mean_of, progress_bar,
    rd_curve, read_bench_images, round_stored,
)
from ..codecs import get_codec
from .results import provenance
from .plots import save_figure
from .. import metrics

DEFAULT_QUALITIES: tuple[int, ...] = (5, 10, 20, 30, 60)  # Kodak JPEG: about 0.2-1.0 bpp
DEFAULT_WINDOW = (0.15, 0.6)
DEFAULT_AT_BPP = 0.45
RD_METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "psnr", "ssim")


def _point(per: dict, pixels: float) -> dict:
    mean = {k: mean_of(v) for k, v in per.items()}
    for kind in ("encode", "decode"):
        times = [t for t in per.get(f"{kind}_s", []) if t is not None]
        mean[f"{kind}_mpix_s"] = (pixels * len(times) / max(sum(times), 1e-12)) if times else None
    return {"mean": mean, "per_image": {k: [round_stored(k, x) for x in v] for k, v in per.items()}}


def bench_blockcnn(data_dir: str | os.PathLike, qualities: Sequence[int] | None = None,
                   predictor: str = "blockcnn-predictor", restorer: str = "blockcnn-color",
                   limit: int | None = None, verify_images: int | None = None, window=DEFAULT_WINDOW,
                   at_bpp: float = DEFAULT_AT_BPP, progress: bool = True) -> dict:
    require_bench_deps()   # BD-rate and the plot, before minutes of coding
    from ..restoration.codec import RestoredCodec

    quals = sorted(set(int(q) for q in (qualities or DEFAULT_QUALITIES)))
    files = bench_images(data_dir, limit)
    images, mode = read_bench_images(files, gray=False)
    metric_keys = list(metrics.score(images[0], images[0]).keys())
    jpeg = get_codec("jpeg")
    bcnn = get_codec("blockcnn", model=predictor)
    jpeg_ar, bcnn_ar = RestoredCodec(jpeg, restorer), RestoredCodec(bcnn, restorer)
    names = ["jpeg", jpeg_ar.name, "blockcnn", bcnn_ar.name]
    fields = ("bytes", "bpp", *metric_keys, "encode_s", "decode_s")
    curves = {n: [] for n in names}
    mpix = float(np.mean([im.shape[0] * im.shape[1] for im in images])) / 1e6
    n_verify = len(images) if verify_images is None else verify_images
    bar = progress_bar(len(quals) * len(images), progress)
    try:
        for qi, q in enumerate(quals):
            bar.set_description(f"q{q}")
            per = {n: {k: [] for k in fields} for n in names}
            for i, img in enumerate(images):
                h, w = img.shape[:2]

                def add(name, data_len, decoded, enc_s, dec_s):
                    row = per[name]
                    row["bytes"].append(data_len)
                    row["bpp"].append(metrics.bpp(data_len, h, w))
                    for k, v in metrics.score(decoded, img).items():
                        row[k].append(v)
                    row["encode_s"].append(enc_s)
                    row["decode_s"].append(dec_s)

                t0 = time.perf_counter()
                data = jpeg.encode(img, q)
                t1 = time.perf_counter()
                dec = jpeg.decode(data)
                t2 = time.perf_counter()
                restored = jpeg_ar.restore(dec)
                t3 = time.perf_counter()
                add("jpeg", len(data), dec, t1 - t0, t2 - t1)
                add(jpeg_ar.name, len(data), restored, t1 - t0, t3 - t1)

                t0 = time.perf_counter()
                data, recon = bcnn.encode_with_reconstruction(img, q)
                t1 = time.perf_counter()
                dec_s = None
                if i < n_verify and i % len(quals) == qi:
                    decoded = bcnn.decode(data)
                    dec_s = time.perf_counter() - t1
                    if not np.array_equal(decoded, recon):
                        raise CodecError(f"blockcnn: decoding {files[i].name} at q{q} differs from the "
                                         "encoder's reconstruction")
                t2 = time.perf_counter()
                restored = bcnn_ar.restore(recon)
                ar_s = time.perf_counter() - t2
                add("blockcnn", len(data), recon, t1 - t0, dec_s)
                add(bcnn_ar.name, len(data), restored, t1 - t0, None if dec_s is None else dec_s + ar_s)
                bar.update(1)
            for n in names:
                curves[n].append({"quality": q, **_point(per[n], mpix)})
    finally:
        bar.close()

    settings = {"jpeg": jpeg.settings(), jpeg_ar.name: jpeg_ar.settings(), "blockcnn": bcnn.settings(),
                bcnn_ar.name: bcnn_ar.settings()}
    payload = {
        "kind": "blockcnn_bench",
        "config": {"data_dir": str(Path(data_dir).resolve()), "codecs": names, "qualities": quals,
                   "gray": False, "mode": mode, "limit": limit, "anchor": "jpeg", "metrics": metric_keys,
                   "predictor": predictor, "restorer": restorer, "verify_images": n_verify},
        "images": [{"name": f.name, "height": int(im.shape[0]), "width": int(im.shape[1])}
                   for f, im in zip(files, images)],
        "codecs": {n: {"settings": settings[n], "points": curves[n]} for n in names},
        "provenance": provenance(dataset_dir=data_dir, files=files, codec_settings=settings,
                                 model=f"{predictor} (codec), {restorer} (artifact removal)"),
    }
    payload["bd"] = bd_table(payload)
    payload["bd_window"] = bd_table(payload, rate_window=tuple(window))
    payload["at_bpp"] = {"bpp": at_bpp, "codecs": {
        n: {m: curve_at(payload["codecs"][n], m, at_bpp) for m in ("psnr_rgb", "ssim_rgb")} for n in names}}
    payload["speed"] = speed_summary(payload)
    return payload


def speed_summary(payload: dict) -> dict:
    """Seconds per megapixel to encode and decode, per codec, over every timed image."""
    pixels = [im["height"] * im["width"] / 1e6 for im in payload["images"]]
    out = {}
    for name in ("jpeg", "blockcnn"):
        enc, dec, mp_enc, mp_dec = 0.0, 0.0, 0.0, 0.0
        for p in payload["codecs"][name]["points"]:
            for mp, e, d in zip(pixels, p["per_image"]["encode_s"], p["per_image"]["decode_s"]):
                enc, mp_enc = enc + e, mp_enc + mp
                if d is not None:
                    dec, mp_dec = dec + d, mp_dec + mp
        out[name] = {"encode_s_per_mpix": enc / mp_enc if mp_enc else None,
                     "decode_s_per_mpix": dec / mp_dec if mp_dec else None}
    return out


def format_blockcnn_tables(payload: dict) -> str:
    """The RD tables (as ``bench codecs``), the Fig. 10 table, window BD-rates and speed."""

    lines = [format_codec_table(payload), ""]
    at = payload["at_bpp"]
    lines += [f"Four combinations at {at['bpp']} bpp (paper Fig. 10; PCHIP on log rate):",
              f"{'combination':<28} {'PSNR-RGB':>9} {'SSIM-RGB':>9}"]
    for name, row in at["codecs"].items():
        lines.append(f"{name:<28} {fmt(row['psnr_rgb'], '9.2f')} {fmt(row['ssim_rgb'], '9.4f')}")
    bw = payload["bd_window"]
    lo, hi = bw["window_bpp"]
    lines += ["", f"BD-rate vs {bw['anchor']} within {lo}-{hi} bpp (negative = fewer bits):"]
    for name, row in bw["codecs"].items():
        cells = [f"{m} {r['bd_rate']:+.1f}%" if "bd_rate" in r else f"{m} n/a ({r['error']})"
                 for m, r in row.items()]
        lines.append(f"{name:<28} " + "; ".join(cells))
    sp = payload["speed"]
    lines += ["", "Speed, seconds per megapixel (same run, same images; decode timed on the verified images):"]
    for name, row in sp.items():
        lines.append(f"{name:<28} encode {fmt(row['encode_s_per_mpix'], '.3f')} s/MP, "
                     f"decode {fmt(row['decode_s_per_mpix'], '.3f')} s/MP")
    return "\n".join(lines)


def plot_rd(payload: dict, out: str | os.PathLike) -> Path:
    """PSNR-RGB and SSIM-RGB against bpp for every curve, to a PNG."""
    require_bench_deps()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in ((axes[0], "psnr_rgb", "PSNR RGB (dB)"), (axes[1], "ssim_rgb", "SSIM RGB")):
        for name, entry in payload["codecs"].items():
            rates, values = rd_curve(entry, metric)
            ax.plot(rates, values, marker="o", ms=3, label=name)
        lo, hi = payload["bd_window"]["window_bpp"]
        ax.axvspan(lo, hi, color="0.92", zorder=0)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)

    ds = dataset_name(payload)
    fig.suptitle(f"BlockCNN codec and artifact removal on {ds} (shaded: {lo}-{hi} bpp)")
    fig.tight_layout()

    return save_figure(fig, out)


def default_out(data_dir: str | os.PathLike) -> Path:
    return Path("results") / f"blockcnn_{Path(data_dir).resolve().name}.json"
