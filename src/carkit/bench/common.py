"""Helpers the benches share: result naming and provenance, image sets,
RD curves and points, Bjontegaard and equal-rate comparisons, their tables
and plot, and the command-line options of the RD benches.

Benches (``*_bench.py``) import this module and no other bench; ``report.py``
renders the benches' payloads.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ..errors import ImageReadError, UsageError
from ..extras import require_bench_deps
from ..training.recipe import default_data_root
from ..models.registry import describe
from ..color import rgb_to_y_matlab_uint8
from ..io import read_image
from ..codecs.jpeg import JpegCodec
from ..data.folders import as_mode, list_images
from ..zoo.registry import weights_record
from ..metrics import quality_at_rate
from .plots import save_figure
from .. import metrics

if TYPE_CHECKING:
    from ..restoration.restorer import Restorer

#: the project's equal-rate target rates (bpp window of the RD comparisons)
EQUAL_RATE_WINDOW = (0.1, 0.3)


def dataset_name(payload: dict, default: str = "") -> str:
    """The evaluation set a result was measured on (from its provenance)."""
    return (payload.get("provenance", {}).get("dataset") or {}).get("name") or default


def provenance_line(p: dict) -> str:
    proj, ver, ds = p["project"], p["versions"], p.get("dataset") or {}
    dirty = " (uncommitted changes)" if proj.get("git_dirty") else ""
    commit = (proj.get("git_commit") or "unknown")[:10]
    libs = ", ".join(f"{k} {v}" for k, v in sorted(ver.items()) if v)
    data = f"{ds.get('name')} ({ds.get('n_files')} files, list hash {str(ds.get('file_list_hash'))[:12]})" if ds else "-"
    return f"carkit {proj.get('version')} at {commit}{dirty}; {libs}; data {data}; {p.get('date')}"


def data_arg(data_dir: Path) -> str:
    """How the command names the folder: relative to the data root when under it."""
    try:
        return str(data_dir.resolve().relative_to(default_data_root().resolve()))
    except ValueError:
        return str(data_dir)


def add_runs(restorer: Restorer, runs, gray: bool) -> dict[str, tuple]:
    """Load training runs (not in the zoo) into ``restorer``; name -> (plan, info)."""
    from ..restoration.restorer import RestorePlan
    from ..training.export import load_run_model, run_budget

    added = {}
    for run in runs:
        net, recipe = load_run_model(run)
        name = recipe["name"]
        if name in added:
            raise UsageError(f"two runs are named {name!r}")
        restorer.add(name, net, describe(recipe["model"]))
        mode = ("gray" if gray else "color-via-Y") if recipe["gray"] else "color"
        budget = run_budget(run, recipe)
        info = {"architecture": recipe["model"], "model_kwargs": recipe["model_kwargs"], "run": str(run),
                "training": {"steps": budget["steps"], "wall_seconds": budget["wall_seconds"],
                             "data": recipe["train_dirs"]}}
        added[name] = (RestorePlan(None, None, name, mode, "training run"), info)
    return added


BENCH_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".ppm", ".pgm")


def bench_images(data_dir: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """The benchmark files of a folder: images directly inside it, sorted."""
    root = Path(data_dir)
    if not root.is_dir():
        raise ImageReadError(f"{root}: not a folder")
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and p.suffix.lower() in BENCH_EXTENSIONS and not p.name.startswith("."))
    if limit is not None:
        if int(limit) < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        files = files[: int(limit)]
    if not files:
        raise ImageReadError(f"{root}: no images ({', '.join(BENCH_EXTENSIONS)})")
    return files


def read_bench_images(files: Sequence[Path], gray: bool) -> tuple[list[np.ndarray], str]:
    """The files' pixels and their mode: MATLAB-Y gray with ``gray``, else RGB
    (gray files repeated to 3 channels) unless every file is gray."""
    pixels = [read_image(f).pixels for f in files]
    if gray:
        return [p if p.ndim == 2 else rgb_to_y_matlab_uint8(p) for p in pixels], "gray"
    if all(p.ndim == 2 for p in pixels):
        return pixels, "gray"
    return [p if p.ndim == 3 else np.repeat(p[:, :, None], 3, axis=2) for p in pixels], "color"


def load_image_set(data_dir: Path, gray: bool | None, limit: int | None):
    """(files, images, gray) of an image folder (the first ``limit``); ``gray``
    None keeps an all-gray set gray and a color set RGB."""
    files = list_images(data_dir)[:limit] if limit else list_images(data_dir)
    if not files:
        raise UsageError(f"{data_dir}: no images to benchmark")
    images = [read_image(f).pixels for f in files]
    if gray is None:
        gray = all(im.ndim == 2 for im in images)
    return files, [as_mode(im, gray) for im in images], bool(gray)


def parse_list(value, cast) -> list | None:
    """A comma-separated string (or a sequence) as a list of ``cast`` values; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    return [cast(v) for v in value]


def parse_ints(value) -> list[int] | None:
    """``parse_list`` of integers, a one-line ``UsageError`` when it is not."""
    try:
        return parse_list(value, int)
    except ValueError:
        raise UsageError(f"not a comma-separated list of integers: {value!r}") from None


def round_stored(key: str, v):
    """Stored precision: 1e-4 dB, 1e-6 SSIM/bpp, 1 microsecond (keeps result files small)."""
    if v is None or isinstance(v, int) or not math.isfinite(v):
        return v
    return round(float(v), 4 if key.startswith("psnr") else 6)


def mean_of(values: Iterable[float]) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return float(np.mean(vals))


def progress_bar(total: int, enabled: bool):
    """A tqdm bar over images, shown only when enabled and stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit="img", disable=not (enabled and sys.stderr.isatty()),
                dynamic_ncols=True, leave=False)


def fmt(v, spec: str) -> str:
    """``format(v, spec)``, or "-" for None and non-finite floats."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


#: the "codec + restorer" curves' default: what ``carkit restore`` does to the file
DEFAULT_RESTORER = "default"


class RestoreStep:
    """The artifact remover of the benches' "codec + restorer" curves: a coded
    file (its bytes and its decoded pixels) in, restored pixels out.

    ``name`` None (or :data:`DEFAULT_RESTORER`) is what a user gets from
    ``carkit restore``: for a JPEG file (libjpeg-turbo's or jpegli's) the
    reviewed default for its kind and quality, reading the file's own
    quantization tables, or the file passed through where no default
    gains; for other formats the reviewed default for an unknown quality
    (a blind model). A zoo name forces that restorer, JPEG files again
    through ``restore_jpeg`` so a table-reading model gets the tables."""

    def __init__(self, name: str | None, gray: bool):
        from ..restoration.restorer import Restorer
        from ..zoo.defaults import RESTORE_DEFAULTS, UNKNOWN_QUALITY

        forced = None if name in (None, DEFAULT_RESTORER) else name
        image = "gray" if gray else "color"
        if forced is not None:
            rec = weights_record(forced)
            if rec.kind != "restorer":
                raise UsageError(f"{forced} is a {rec.kind}, not a pixel artifact remover")
            models = {forced: rec}
            qualities = list(rec.qualities)
        else:
            rows = [r for r in RESTORE_DEFAULTS if r.image == image]
            models = {r.model: weights_record(r.model) for r in [*rows, UNKNOWN_QUALITY[image]]}
            qualities = [min(r.qualities[0] for r in rows), max(r.qualities[1] for r in rows)]
        self.restorer = Restorer(model=forced)
        self.plan = self.restorer.plan(gray, None)   # for files that are not JPEG
        self.info = {"name": forced or DEFAULT_RESTORER,
                     "architecture": ", ".join(sorted({r.model for r in models.values()})),
                     "weights_sha256": {n: r.sha256 for n, r in models.items()},
                     "qualities": qualities, "mode": "per file (carkit restore)" if forced is None else self.plan.mode,
                     "precision": self.restorer.precision}

    @property
    def name(self) -> str:
        return self.info["name"]

    def __call__(self, data: bytes, decoded: np.ndarray) -> np.ndarray:
        from ..restoration.restorer import restore_jpeg

        if JpegCodec.sniff(data):
            return restore_jpeg(self.restorer, data).pixels
        return self.restorer.restore_pixels(decoded, self.plan)


#: (PSNR, SSIM) the RD curves plot; gray sets score gray, color sets RGB (PROTOCOL.md color tables)
RD_METRICS = {True: ("psnr", "ssim"), False: ("psnr_rgb", "ssim_rgb")}


def add_row(per: dict, nbytes: int, decoded: np.ndarray, ref: np.ndarray) -> None:
    """One image's row: real bytes, bpp over the full image, PROTOCOL.md metrics."""
    h, w = ref.shape[:2]
    per.setdefault("bytes", []).append(int(nbytes))
    per.setdefault("bpp", []).append(metrics.bpp(nbytes, h, w))
    for k, v in metrics.score(decoded, ref).items():
        per.setdefault(k, []).append(v)


def rd_point(quality: int, per: dict, **extra) -> dict:
    """One RD point: quality, ``extra`` fields, the means and the stored per-image rows."""
    return {"quality": int(quality), **extra, "mean": {k: mean_of(v) for k, v in per.items()},
            "per_image": {k: [round_stored(k, x) for x in v] for k, v in per.items()}}


def rd_curve(entry: dict, metric: str) -> tuple[list[float], list[float]]:
    """(rates, values) of a curve's mean points with a finite ``metric`` and a positive rate."""
    pts = [p["mean"] for p in entry["points"]]
    pairs = [(m["bpp"], m.get(metric)) for m in pts]
    pairs = [(r, d) for r, d in pairs if d is not None and math.isfinite(d) and r and r > 0]
    return [r for r, _ in pairs], [d for _, d in pairs]


def curve_at(entry: dict, metric: str, bpp: float) -> float | None:
    """A curve's ``metric`` at ``bpp`` by PCHIP on log rate; None outside its range."""
    return quality_at_rate(*rd_curve(entry, metric), bpp)


ANCHOR = "jpeg"


#: metrics shown in the text table, in order (those present in the payload)
TABLE_METRICS = ("psnr_rgb", "psnr_y", "psnr", "ssim_rgb", "ssim_y", "ssim")


#: PSNR flavours BD-rate/BD-PSNR are computed on (those present)
BD_METRICS = ("psnr_rgb", "psnr_y", "psnr")


def bd_table(payload: dict, anchor: str = ANCHOR, rate_window: tuple[float, float] | None = None) -> dict:
    """BD-rate (%) and BD-PSNR (dB) of every codec against ``anchor`` for each
    PSNR flavour present, on the mean RD curves. A pair that cannot be
    computed (fewer than 4 points, no overlap) gets {"error": reason}.
    ``rate_window`` (bpp): BD-rate only, averaged within that window
    (``metrics.bd_rate``)."""
    keys = payload["config"]["metrics"]
    bd_metrics = [m for m in BD_METRICS if m in keys]
    out: dict = {"anchor": anchor, "metrics": bd_metrics, "codecs": {}}
    if rate_window is not None:
        out["window_bpp"] = list(rate_window)
    if anchor not in payload["codecs"]:
        out["error"] = f"anchor {anchor!r} was not benchmarked"
        return out
    ref = payload["codecs"][anchor]
    for name, entry in payload["codecs"].items():
        if name == anchor:
            continue
        row = {}
        for m in bd_metrics:
            ra, da = rd_curve(ref, m)
            rb, db = rd_curve(entry, m)
            try:
                row[m] = {"bd_rate": metrics.bd_rate(ra, da, rb, db, rate_window=rate_window)}
                if rate_window is None:
                    row[m]["bd_psnr"] = metrics.bd_psnr(ra, da, rb, db)
            except ValueError as exc:
                row[m] = {"error": str(exc)}
        out["codecs"][name] = row
    return out


def format_codec_table(payload: dict) -> str:
    """Text tables: per codec, one row per quality (mean bpp, PSNRs, SSIMs,
    encode/decode ms per image), then the BD table against the anchor."""
    cfg = payload["config"]
    prov = payload.get("provenance") or {}
    ds = (prov.get("dataset") or {}).get("name") or Path(cfg["data_dir"]).name
    lines = [f"Codec benchmark: {ds}, {len(payload['images'])} images, {cfg['mode']}, "
             f"qualities {','.join(map(str, cfg['qualities']))}"]
    cols = [m for m in TABLE_METRICS if m in cfg["metrics"]]
    header = f"{'q':>4} {'bpp':>7} " + " ".join(f"{c:>9}" for c in cols) + f" {'enc ms':>8} {'dec ms':>8}"
    for name, entry in payload["codecs"].items():
        st = entry.get("settings") or {}
        opts = ", ".join(f"{k}={v}" for k, v in sorted(st.items())
                         if k not in ("codec", "library", "rate_map"))
        lines += ["", f"{name}  [{st.get('library') or '?'}{'; ' + opts if opts else ''}]", header]
        for p in entry["points"]:
            m = p["mean"]
            row = f"{p['quality']:>4} {fmt(m['bpp'], '7.4f')} "
            row += " ".join(f"{fmt(m.get(c), '9.4f' if c.startswith('ssim') else '9.2f')}" for c in cols)
            row += f" {fmt(m['encode_s'] * 1e3 if m.get('encode_s') is not None else None, '8.1f')}"
            row += f" {fmt(m['decode_s'] * 1e3 if m.get('decode_s') is not None else None, '8.1f')}"
            lines.append(row)
    bd = payload.get("bd") or {}
    if bd.get("codecs"):
        lines += ["", f"BD vs {bd['anchor']} on the mean curves (BD-rate %: negative = fewer bits "
                      f"for the same PSNR; BD-PSNR dB: positive = better)"]
        head = f"{'codec':<10}" + "".join(f" {'BD-rate ' + m:>18} {'BD-PSNR ' + m:>18}"
                                        for m in bd["metrics"])
        lines.append(head)
        for name, row in bd["codecs"].items():
            cells = []
            for m in bd["metrics"]:
                r = row.get(m, {})
                if "error" in r:
                    cells.append(f" {'n/a':>18} {'n/a':>18}")
                else:
                    cells.append(f" {fmt(r['bd_rate'], '+17.1f')}% {fmt(r['bd_psnr'], '+15.2f')} dB")
            lines.append(f"{name:<10}" + "".join(cells))
        for name, row in bd["codecs"].items():
            for m in bd["metrics"]:
                if "error" in row.get(m, {}):
                    lines.append(f"  {name} {m}: {row[m]['error']}")
    elif bd.get("error"):
        lines += ["", f"BD: {bd['error']}"]
    return "\n".join(lines)


def bd_metric(anchor: dict, entry: dict, metric: str, window=None) -> dict:
    """BD-rate (and, without a window, the quality delta ``bd_<metric>``) of one
    non-PSNR metric, by the same Bjontegaard functions ``bd_table`` uses."""
    ra, qa = rd_curve(anchor, metric)
    rb, qb = rd_curve(entry, metric)
    try:
        out = {"bd_rate": metrics.bd_rate(ra, qa, rb, qb, rate_window=window)}
        if window is None:
            out[f"bd_{metric}"] = metrics.bd_psnr(ra, qa, rb, qb)
    except ValueError as exc:
        out = {"error": str(exc)}
    return out


#: rates the equal-rate gain is read at inside the window (log-spaced)
WINDOW_SAMPLES = 9


def equal_rate_gain(entry: dict, anchor: dict, metric: str, window=EQUAL_RATE_WINDOW) -> dict:
    """``metric`` of ``entry`` minus that of ``anchor`` at equal rate, the
    anchor read by PCHIP on log rate (as BD does): at each of ``entry``'s own
    points that ``anchor`` covers, and in the part of ``window`` both cover,
    at ``WINDOW_SAMPLES`` log-spaced rates (``entry`` read alike; a one-point
    ``entry`` at its point if inside), with the mean, range and verdict there
    ("wins": higher at every sampled rate, "loses": lower at every one,
    "equal", or "mixed"). Curves that do not overlap are checked for
    :func:`dominance` instead (verdict "dominates": points below the anchor's
    lowest rate that beat its quality there)."""

    ra, qa = rd_curve(entry, metric)
    rb, _ = rd_curve(anchor, metric)
    if len(set(rb)) < 2 or not ra:
        return {"error": "equal-rate reading needs a reference curve of 2 or more rates and a point"}

    def ref(r):
        return curve_at(anchor, metric, r)

    at = [{"bpp": r, "gain": q - ref(r)} for r, q in sorted(zip(ra, qa)) if ref(r) is not None]
    lo, hi = max(min(ra), min(rb)), min(max(ra), max(rb))
    if hi < lo or (hi == lo and not at):
        out = {"error": "the curves do not overlap in bpp"}
        dominating = dominance(entry, anchor, metric)
        if dominating:
            out["dominates"] = dominating
            inside = [d for d in dominating if window[0] <= d["bpp"] <= window[1]]
            if inside:
                margins = [d["margin"] for d in inside]
                out["window"] = {"bpp": [inside[0]["bpp"], inside[-1]["bpp"]], "mean_gain": float(np.mean(margins)),
                                 "min_gain": float(min(margins)), "max_gain": float(max(margins)),
                                 "n_rates": len(inside), "verdict": "dominates"}
        return out
    out = {"overlap_bpp": [lo, hi], "at": at}
    wlo, whi = max(lo, window[0]), min(hi, window[1])
    if len(set(ra)) >= 2 and whi > wlo:
        pairs = [(curve_at(entry, metric, r), ref(r)) for r in np.geomspace(wlo, whi, WINDOW_SAMPLES)]
        gains = [a - b for a, b in pairs if a is not None and b is not None]
    else:
        gains = [p["gain"] for p in at if window[0] <= p["bpp"] <= window[1]]
    if not gains:
        out["window"] = {"bpp": None, "error": f"the curves do not both cover any of {window[0]}-{window[1]} bpp"}
        return out
    if np.allclose(gains, 0.0, atol=1e-9):
        verdict = "equal"
    else:
        verdict = "wins" if min(gains) > 0 else "loses" if max(gains) < 0 else "mixed"
    out["window"] = {"bpp": [wlo, whi], "mean_gain": float(np.mean(gains)), "min_gain": float(min(gains)),
                     "max_gain": float(max(gains)), "n_rates": len(gains), "verdict": verdict}
    return out


def dominance(entry: dict, anchor: dict, metric: str) -> list[dict]:
    """``entry``'s points below the lowest rate ``anchor`` reaches that still
    score higher than ``anchor`` does at that lowest rate: fewer bits *and*
    more quality than any operating point of ``anchor`` (JPEG cannot go below
    quality 1's rate). ``margin`` is the quality above that lowest-rate point,
    a lower bound of the gain at equal rate for a curve rising with rate."""

    ra, qa = rd_curve(entry, metric)
    rb, qb = rd_curve(anchor, metric)
    if not ra or not rb:
        return []
    lowest = min(rb)
    q_low = qb[rb.index(lowest)]
    return [{"bpp": r, "margin": q - q_low, "anchor_lowest_bpp": lowest}
            for r, q in sorted(zip(ra, qa)) if r < lowest and q > q_low]


def compare(payload: dict, method: str, against: str) -> dict:
    """BD (PSNR flavours through ``codec_bench.bd_table``, SSIM alike), window
    BD-rate and equal-rate gains of curve ``method`` against curve ``against``."""

    window = tuple(payload["config"]["window_bpp"])
    psnr_key, ssim_key = payload["config"]["rd_metrics"]
    view = {"config": payload["config"], "codecs": {k: payload["codecs"][k] for k in (against, method)}}
    full = bd_table(view, anchor=against)["codecs"][method]
    win = bd_table(view, anchor=against, rate_window=window)["codecs"][method]
    anchor, entry = payload["codecs"][against], payload["codecs"][method]
    full[ssim_key] = bd_metric(anchor, entry, ssim_key)
    win[ssim_key] = bd_metric(anchor, entry, ssim_key, window)
    return {"method": method, "against": against, "bd": full, "bd_window": win,
            "equal_rate": {m: equal_rate_gain(entry, anchor, m, window) for m in (psnr_key, ssim_key)}}


#: families of the reference curves (a standard codec alone, and followed by a restorer); every
#: other curve is a learned method's ("codec" is another bench's name for a non-JPEG anchor)
REFERENCE_FAMILIES = ("jpeg", "codec", "restored")


def curves_of(payload: dict) -> list[tuple[str, dict]]:
    """(name, entry) of every curve in measuring order (result files sort their keys)."""
    order = payload["config"].get("curves") or list(payload["codecs"])
    return [(n, payload["codecs"][n]) for n in order + [n for n in payload["codecs"] if n not in order]]


def points_table(payload: dict) -> list[str]:
    """Markdown rows of every curve's RD points (bpp and the two RD metrics)."""
    psnr_key, ssim_key = payload["config"]["rd_metrics"]
    out = [f"| method | model | quality | bpp | {psnr_key} | {ssim_key} |", "|---|---|---|---|---|---|"]
    for name, entry in curves_of(payload):
        for p in entry["points"]:
            m = p["mean"]
            flag = (" (outside the restorer's qualities)" if p.get("restorer_in_range") is False else
                    " (outside its training quality)" if p.get("in_training_quality") is False else "")
            out.append(f"| {name} | {p.get('model', '-')} | {p['quality']}{flag} | {fmt(m['bpp'], '.4f')} | "
                       f"{fmt(m.get(psnr_key), '.2f')} | {fmt(m.get(ssim_key), '.4f')} |")
    return out


def bd_cell(row: dict, delta: str | None, spec: str) -> str:
    """A BD table cell: the BD-rate, with the quality delta ``delta`` when given; n/a on error."""
    if "error" in row:
        return "n/a"
    cell = f"{row['bd_rate']:+.1f}%"
    return cell + (f" ({row[delta]:{spec}})" if delta and delta in row else "")


def bd_table_lines(payload: dict) -> list[str]:
    """Markdown BD table of ``payload["comparisons"]`` (full range and rate window), with n/a notes."""
    psnr_key, ssim_key = payload["config"]["rd_metrics"]
    lo, hi = payload["config"]["window_bpp"]
    out = [f"| method | against | BD-rate {psnr_key} (BD-PSNR dB) | BD-rate {ssim_key} (BD-SSIM) | "
           f"BD-rate {psnr_key}, {lo}-{hi} bpp | BD-rate {ssim_key}, {lo}-{hi} bpp |", "|---|---|---|---|---|---|"]
    notes = []
    for c in payload["comparisons"]:
        bd, win = c["bd"], c["bd_window"]
        out.append(f"| {c['method']} | {c['against']} | {bd_cell(bd[psnr_key], 'bd_psnr', '+.2f')} | "
                   f"{bd_cell(bd[ssim_key], f'bd_{ssim_key}', '+.4f')} | {bd_cell(win[psnr_key], None, '')} | "
                   f"{bd_cell(win[ssim_key], None, '')} |")
        why = dict.fromkeys(t[m]["error"] for t in (bd, win) for m in (psnr_key, ssim_key) if "error" in t[m])
        if why:
            notes.append(f"{c['method']} vs {c['against']}: " + "; ".join(why))
    return out + ([""] + [f"- n/a: {n}" for n in notes] if notes else [])


def equal_rate_lines(payload: dict) -> list[str]:
    """Markdown table of the equal-rate gains and verdicts of ``payload["comparisons"]``."""
    psnr_key, ssim_key = payload["config"]["rd_metrics"]
    lo, hi = payload["config"]["window_bpp"]
    out = [f"| method | against | {psnr_key} gain at the method's own rates (bpp: dB) | "
           f"{lo}-{hi} bpp: covered | mean {psnr_key} gain (min..max) | mean {ssim_key} gain | verdict |",
           "|---|---|---|---|---|---|---|"]
    for c in payload["comparisons"]:
        ep, es = c["equal_rate"][psnr_key], c["equal_rate"][ssim_key]
        if "dominates" in ep:
            at = ", ".join(f"{d['bpp']:.3f}: {d['margin']:+.2f}" for d in ep["dominates"])
            w, ws = ep.get("window") or {}, es.get("window") or {}
            window = f"{w['bpp'][0]:.3f}-{w['bpp'][1]:.3f}" if w else "none"
            gains = f"{w['mean_gain']:+.2f} ({w['min_gain']:+.2f}..{w['max_gain']:+.2f})" if w else "-"
            verdict = f"{psnr_key} dominates" + (f", {ssim_key} {ws['verdict']}" if ws.get("verdict") else "")
            out.append(f"| {c['method']} | {c['against']} | below its lowest rate "
                       f"({ep['dominates'][0]['anchor_lowest_bpp']:.3f} bpp) and above its quality there: {at} | "
                       f"{window} | {gains} | {fmt(ws.get('mean_gain'), '+.4f')} | {verdict} |")
            continue
        if "error" in ep:
            out.append(f"| {c['method']} | {c['against']} | {ep['error']} | - | - | - | - |")
            continue
        at = ", ".join(f"{p['bpp']:.3f}: {p['gain']:+.2f}" for p in ep["at"]) or "-"
        w, ws = ep["window"], es.get("window") or {}
        if w.get("verdict") is None:
            out.append(f"| {c['method']} | {c['against']} | {at} | none | - | - | - |")
            continue
        verdict = f"{psnr_key} {w['verdict']}" + (f", {ssim_key} {ws['verdict']}" if ws.get("verdict") else "")
        out.append(f"| {c['method']} | {c['against']} | {at} | {w['bpp'][0]:.3f}-{w['bpp'][1]:.3f} | "
                   f"{w['mean_gain']:+.2f} ({w['min_gain']:+.2f}..{w['max_gain']:+.2f}) | "
                   f"{fmt(ws.get('mean_gain'), '+.4f')} | {verdict} |")
    return out


def plot_rd_curves(payload: dict, out: str | os.PathLike, title: str) -> Path:
    """PSNR and SSIM against bpp for every curve (two panels), to a PNG; the
    rate axis stops a little past the learned curves and the window.
    Reads ``config.rd_metrics`` / ``config.window_bpp`` and curve families."""
    require_bench_deps()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = payload["config"]
    lo, hi = cfg["window_bpp"]
    learned = [e for e in payload["codecs"].values() if e["family"] not in REFERENCE_FAMILIES]
    top = max([hi] + [r for e in learned for r in rd_curve(e, cfg["rd_metrics"][0])[0]]) * 1.3
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, cfg["rd_metrics"]):
        shown = []
        for name, entry in curves_of(payload):
            pairs = sorted(zip(*rd_curve(entry, metric)))
            if not pairs:
                continue
            rates, values = zip(*pairs)
            big = entry["family"] not in REFERENCE_FAMILIES
            ax.plot(rates, values, marker="o" if big else ".", ms=5 if big else 3, lw=2 if big else 1.2,
                    ls="-" if big else "--", label=name)
            shown += [v for r, v in pairs if r <= top]
        ax.axvspan(lo, hi, color="0.92", zorder=0)
        ax.set_xlim(0, top)
        if shown:
            pad = 0.05 * (max(shown) - min(shown) or 1e-3)
            ax.set_ylim(min(shown) - pad, max(shown) + pad)
        ax.set_xlabel("bits per pixel (real bytes / full image pixels)")
        ax.set_ylabel(metric.upper().replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()

    return save_figure(fig, out)


def add_run_arguments(parser, window: tuple[float, float], limit_help: str) -> None:
    """The options the RD benches share (this one, ``bench hiding``): --window
    (default ``window``), --limit, --threads, --results, --figures, --no-progress."""
    parser.add_argument("--window", default=",".join(map(str, window)),
                        help="bpp window of the target (windowed BD-rate, equal-rate verdict)")
    parser.add_argument("--limit", type=int, help=limit_help)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--results", default="results", help="folder for result JSON files")
    parser.add_argument("--figures", default="docs/figures",
                        help="folder for the RD figures ('' for none; `bench report` redraws them)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def threads_and_window(args) -> tuple[float, float]:
    """Apply ``--threads``; the ``--window`` rates (a one-line error unless 0 < low < high)."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        window = tuple(float(v) for v in args.window.split(","))
    except ValueError:
        window = ()
    if len(window) != 2 or not 0 < window[0] < window[1]:
        raise UsageError(f"--window needs two rates low,high, got {args.window!r}")
    return window
