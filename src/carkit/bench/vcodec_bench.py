"""``carkit bench vcodec``: the virtual codec's very-low-rate comparison
(Zhao et al. 2017, ../shared/papers/virtual-codec.txt, section III-B and
Fig. 4-5; the project's equal-rate target).

On each evaluation set (Classic5 and Kodak in gray, then Kodak in color),
one rate-distortion curve per method:

* ``jpeg``: the whole image coded by Pillow/libjpeg-turbo at each quality of a
  sweep (PROTOCOL.md settings; 1 component for gray, 4:2:0 for color). The
  paper's full-resolution competitors use JPEG qualities 2, 3, 4, 5 and 10;
  the default sweep reaches further up so that JPEG's rates cover the
  virtual codec's.
* ``jpeg+RESTORER``: the same JPEG bytes, decoded, then a zoo artifact
  remover (the paper's post-processing competitors; here the best zoo
  restorer, applied at every quality; points outside the qualities it was
  trained for are flagged ``restorer_in_range: false``).
* ``jpegli`` and ``jpegli+RESTORER``: the same sweep through jpegli
  (``codecs/jpegli.py``, 4:2:0, default settings, files decoded by Pillow as
  a viewer would) alone and followed by the same restorer: the standard
  files a user would write instead (PROTOCOL.md). Left out with a note where
  jpegli's bindings are not installed.
* ``virtual codec``: the zoo models named ``vcodec-*`` (FDNN -> JPEG of the
  half-resolution description -> PPNN, ``codecs/virtual/codec.py``), each at
  the quality its description was trained at (the paper: 5, 10, 20, 40).
* ``Jiang et al.``: the zoo models named ``jiang-*``, the directly connected
  baseline the paper re-implemented with the same networks (section III-B).
* any other model or training run (``--runs``): its own curve, named after it.

With ``qualities``, every model is scored at each of them and is its own
curve (named after the model) instead of a point of its family's curve.

Every learned point is coded to real bytes and decoded from them; its rate is
those bytes (the marker included) over the *full* image's pixels
(PROTOCOL.md: ``bpp = 8 * bytes / (H * W)``). Points hold the mean over images
and the per-image rows.

Comparisons (``payload["comparisons"]``), for every learned curve against
each reference (``jpeg``, ``jpeg+RESTORER``, ``jpegli``, ``jpegli+RESTORER``),
for the references against ``jpeg``, and for
each virtual-codec curve against the Jiang et al. curve trained at the same
qualities:

* Bjontegaard BD-rate (and BD-PSNR / BD-SSIM) over the overlapping range,
  PSNR through ``codec_bench.bd_table``, SSIM through the same
  ``metrics.bd_rate`` / ``metrics.bd_psnr``, plus the BD-rate within the rate
  window (default 0.1-0.3 bpp, the project's target);
* the quality gain at equal rate (both curves read by PCHIP on log rate, as
  BD does) at each of the method's own points that the other curve covers,
  and over the window: its mean, its range and who wins there.

The payload keeps ``carkit bench codecs``' layout (``config.metrics``,
``codecs.NAME.points[].mean/per_image``) so its BD and curve helpers apply.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

from ..errors import CodecError, UsageError
from ..extras import require_bench_deps
from ..codecs.virtual.codec import VirtualCodecCodec
from .common import (
    DEFAULT_RESTORER, EQUAL_RATE_WINDOW, RD_METRICS, REFERENCE_FAMILIES, add_row, add_run_arguments,
    bd_table_lines, compare, curves_of, data_arg, dataset_name, equal_rate_gain, equal_rate_lines,
    load_image_set, RestoreStep, parse_ints, plot_rd_curves, points_table, progress_bar, provenance_line,
    rd_point, threads_and_window,
)
from ..codecs.registry import get_codec
from ..zoo.registry import list_weights, weights_record
from ..models.registry import model_config
from .results import provenance, sha256_file, write_result
from ..codecs.jpeg import JpegCodec
from ..codecs.base import check_quality

#: full-resolution JPEG sweep: low enough for the description's rates (about 0.05-0.5 bpp)
DEFAULT_JPEG_QUALITIES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)
#: the project's target rates
DEFAULT_WINDOW = EQUAL_RATE_WINDOW
#: curves of the learned methods: zoo-name prefix -> curve name
FAMILIES = (("vcodec-", "virtual codec"), ("jiang-", "Jiang et al."))
VCODEC, JIANG = FAMILIES[0][1], FAMILIES[1][1]
PAPER_CLAIM = ("Zhao et al. (2017, section III-B, Fig. 4-6) report that at very low bit-rates their virtual "
               "codec (FDNN, JPEG of the half-resolution description at qualities 5, 10, 20 and 40, PPNN) has "
               "the best PSNR and SSIM against bpp on eight gray test images, above full-resolution JPEG, "
               "JPEG followed by four post-processing methods, and Jiang et al.'s directly connected networks.")

#: the report's intro paragraph of the section
INTRO = (PAPER_CLAIM + " Here: full-resolution JPEG over a quality sweep, the same JPEG bytes followed by a "
         "restorer (its curve names it; `default`: what `carkit restore` does to each file), jpegli and jpegli + "
         "the restorer in runs that have them, the virtual codec (zoo models vcodec-*, one point per description "
         "quality) and Jiang et al.'s directly connected baseline (jiang-*, the same networks), every point coded to real "
         "bytes and decoded from them; bpp is those bytes over the full image's pixels.")


#: suffix of the curves of gray models coding a color set's luma (luma mode)
LUMA = " (luma)"


def family_of(name: str) -> str | None:
    """The family curve a zoo model belongs to (by its name), or None."""
    for prefix, curve in FAMILIES:
        if name.startswith(prefix):
            return curve
    return None


def in_family(curve: str, family: str) -> bool:
    """Whether a curve is ``family``'s: the family curve itself, its luma-mode
    twin, or a lone model of that family."""
    return curve in (family, family + LUMA) or family_of(curve) == family


def _mode_check(source: str, model_gray: bool, gray: bool) -> str | None:
    """None for a model of the set's mode, "luma" for a gray model on a color
    set (the codec's luma mode); a color model cannot code a gray set."""
    if gray and not model_gray:
        raise UsageError(f"{source} codes color images; this benchmark is gray (leave out --gray, "
                          "or use the gray models)")
    return "luma" if model_gray and not gray else None


# ------------------------------------------------------------------ methods


class RunCodec(VirtualCodecCodec):
    """The virtual codec of a training run (not in the zoo): the product codec
    with the run's networks in place of the zoo lookup, so its bytes are
    exactly what ``carkit encode --method vcnn`` writes with those weights."""

    def __init__(self, name: str, net, gray: bool, sha256: str):
        super().__init__(model=name)
        self._weights = (net, SimpleNamespace(kind="vcodec", gray=gray, sha256=sha256))

    def _net(self, name: str):
        if name != self.model:
            raise CodecError(f"this file was coded by {name}, not by the run {self.model}")
        return self._weights


def _zoo_model(name: str, gray: bool) -> tuple[object, dict]:
    """(codec, info) of a zoo virtual-codec model; one-line errors for a wrong name, kind or mode."""
    rec = weights_record(name)
    if rec.kind != "vcodec":
        raise UsageError(f"{name} is a {rec.kind}, not a virtual-codec model")
    planes = _mode_check(name, rec.gray, gray)
    info = {"source": "zoo", "architecture": rec.model, "weights_sha256": rec.sha256, "planes": planes,
            "trained_quality": int(rec.qualities[0]),
            "bridge": (rec.recipe.get("task_kwargs") or {}).get("bridge"),   # provenance, shown only
            "training": {k: rec.training.get(k) for k in ("steps", "wall_seconds", "data")}}
    return get_codec("vcnn", model=name), info


def _run_model(run: str | os.PathLike, gray: bool) -> tuple[str, object, dict]:
    """(name, codec, info) of a training run of a ``vcodec-*`` model."""
    from ..training.export import load_run_model, run_budget

    net, recipe = load_run_model(run)
    name = recipe["name"]
    if model_config(recipe["model"]).kind != "vcodec":
        raise UsageError(f"{run}: {recipe['model']} is not a virtual-codec model")
    planes = _mode_check(str(run), bool(recipe["gray"]), gray)
    sha = sha256_file(Path(run) / "last.safetensors")
    budget = run_budget(run, recipe)
    quals = recipe.get("qualities") or recipe.get("quality_range")
    info = {"source": "run", "run": str(run), "architecture": recipe["model"], "weights_sha256": sha,
            "planes": planes,
            "trained_quality": int(quals[0]), "bridge": (recipe.get("task_kwargs") or {}).get("bridge"),
            "training": {"steps": budget["steps"], "wall_seconds": budget["wall_seconds"],
                         "data": recipe.get("train_dirs")}}
    return name, RunCodec(name, net, bool(recipe["gray"]), sha), info


def plan_methods(models: Sequence[str], runs: Sequence, qualities: Sequence[int] | None,
                 gray: bool) -> tuple[dict[str, list[tuple[str, object, int]]], dict[str, dict]]:
    """The learned curves: {curve: [(model, codec, quality)]} and {model: info}.

    Without ``qualities``, ``vcodec-*`` / ``jiang-*`` zoo models are points of
    the "virtual codec" / "Jiang et al." curves at their trained quality, other
    models and runs are curves of their own; with ``qualities``, every model
    and run is its own curve at each of them."""
    curves: dict[str, list] = {}
    info: dict[str, dict] = {}
    entries = [(m, *_zoo_model(m, gray)) for m in dict.fromkeys(models)]
    entries += [_run_model(r, gray) for r in runs]
    for name, codec, meta in entries:
        if name in info:
            raise UsageError(f"two models or runs are named {name!r}")
        family = family_of(name) if meta["source"] == "zoo" and not qualities else None
        curve = (family + (LUMA if meta["planes"] == "luma" else "")) if family else name
        meta["curve"] = curve
        info[name] = meta
        for q in (qualities or [meta["trained_quality"]]):
            curves.setdefault(curve, []).append((name, codec, int(q)))
    for points in curves.values():
        points.sort(key=lambda p: (p[2], p[0]))
    return curves, info


# ------------------------------------------------------------------ measuring


def bench_vcodec(data_dir: str | os.PathLike, models: Sequence[str] = (), runs: Sequence = (),
                 qualities: Sequence[int] | None = None, restorer: str | None = None,
                 jpeg_qualities: Sequence[int] | None = None, gray: bool | None = None,
                 limit: int | None = None, window: tuple[float, float] = DEFAULT_WINDOW,
                 progress: bool = True) -> dict:
    """Score JPEG, JPEG + restorer and the learned methods on one image folder;
    return the payload (module doc). ``gray``: None keeps an all-gray set gray
    and a color set RGB; True scores color sets as MATLAB-Y gray."""
    require_bench_deps()   # BD numbers and the plot, before minutes of coding

    data_dir = Path(data_dir)
    files, images, gray = load_image_set(data_dir, gray, limit)
    if not models and not runs:
        raise UsageError(f"no virtual-codec model to benchmark on {'gray' if gray else 'color'} images: the zoo "
                          "has none (train recipes/vcodec/*.toml and `carkit zoo export`), or give --models/--runs")
    jq = sorted({check_quality(q) for q in (jpeg_qualities or DEFAULT_JPEG_QUALITIES)})
    quals = sorted({check_quality(q) for q in qualities}) if qualities else None
    learned, model_info = plan_methods(models, runs, quals, gray)
    rst = RestoreStep(restorer, gray)
    rst_info = rst.info
    # the standard files a user would write instead: libjpeg-turbo, and jpegli where its bindings are installed
    standard = {"jpeg": JpegCodec()}
    notes = []
    try:
        standard["jpegli"] = get_codec("jpegli")
    except CodecError as exc:
        notes.append(f"no jpegli curves (what a user would use instead): {exc}")
    restored_of = {c: f"{c}+{rst.name}" for c in standard}
    restored = restored_of["jpeg"]
    baselines = {*standard, *restored_of.values()}
    if set(learned) & baselines:
        raise UsageError(f"a model is named like a baseline curve: {sorted(set(learned) & baselines)}")

    curves: dict[str, list] = {n: [] for c in standard for n in (c, restored_of[c])}
    total = len(images) * (len(standard) * len(jq) + sum(len(v) for v in learned.values()))
    bar = progress_bar(total, progress)
    try:
        for c, codec in standard.items():
            for q in jq:
                bar.set_description(f"{c} q{q}")
                per_j, per_r = {}, {}
                for img in images:
                    data = codec.encode(img, q)
                    dec = codec.decode(data)
                    add_row(per_j, len(data), dec, img)
                    add_row(per_r, len(data), rst(data, dec), img)
                    bar.update(1)
                curves[c].append(rd_point(q, per_j))
                lo, hi = rst_info["qualities"]
                curves[restored_of[c]].append(rd_point(q, per_r, restorer_in_range=lo <= q <= hi))
        for curve, points in learned.items():
            curves[curve] = []
            for name, codec, q in points:
                bar.set_description(f"{name} q{q}")
                per = {}
                for img in images:
                    rt = codec.roundtrip(img, q)  # real bytes, decoded from them
                    add_row(per, rt.nbytes, rt.decoded, img)
                    bar.update(1)
                curves[curve].append(rd_point(q, per, model=name))
    finally:
        bar.close()

    desc = {"codec": "vcnn", "description": "half resolution (FDNN), baseline JPEG with a carkit-vcodec COM "
            "marker, Pillow/libjpeg-turbo" + ("" if gray else ", 4:2:0"), "library": JpegCodec.library()}
    settings = {n: s for c, codec in standard.items()
                for n, s in ((c, codec.settings()), (restored_of[c], {**codec.settings(), "restorer": rst.name}))}
    settings.update({c: {**desc, "models": sorted({p[0] for p in pts})} for c, pts in learned.items()})
    family = {n: f for c in standard for n, f in ((c, "jpeg"), (restored_of[c], "restored"))}
    family.update({c: c if c in (VCODEC, JIANG) else "model" for c in learned})
    metric_keys = list(curves["jpeg"][0]["mean"])
    metric_keys = [k for k in metric_keys if k not in ("bytes", "bpp")]
    payload = {
        "kind": "vcodec_bench",
        "config": {"data": data_arg(data_dir), "data_dir": str(data_dir.resolve()), "gray": gray,
                   "mode": "gray" if gray else "color", "limit": limit, "metrics": metric_keys,
                   "rd_metrics": list(RD_METRICS[gray]), "models": list(dict.fromkeys(models)),
                   "runs": [str(r) for r in runs], "qualities": quals, "restorer": rst_info["name"],
                   "jpeg_qualities": jq, "window_bpp": [float(window[0]), float(window[1])],
                   "anchor": "jpeg", "restored": restored, "curves": list(curves),
                   "references": [n for c in standard for n in (c, restored_of[c])]},
        "images": [{"name": f.name, "height": int(im.shape[0]), "width": int(im.shape[1])}
                   for f, im in zip(files, images)],
        "codecs": {n: {"family": family[n], "settings": settings[n], "points": pts} for n, pts in curves.items()},
        "models": model_info,
        "restorer": rst_info,
        "notes": notes,
        "provenance": provenance(dataset_dir=data_dir, files=files, codec_settings=settings,
                                 model=", ".join(list(model_info) + [rst_info["name"] + " (restorer)"])),
    }
    payload["comparisons"] = compare_all(payload)
    return payload


# ------------------------------------------------------------------ comparing


def comparison_pairs(payload: dict) -> list[tuple[str, str]]:
    """(method, against) pairs: the restorer and every learned curve against
    JPEG, every learned curve against JPEG + restorer, and each virtual-codec
    curve against the Jiang et al. curve trained at the same qualities (the
    paper's direct comparison)."""
    restored = payload["config"]["restored"]
    references = payload["config"].get("references") or ["jpeg", restored]
    learned = [n for n, e in curves_of(payload) if e["family"] not in REFERENCE_FAMILIES]
    pairs = [(restored, "jpeg")] + [(r, "jpeg") for r in references if r not in ("jpeg", restored)]
    pairs += [(n, a) for n in learned for a in references]

    def trained(curve):
        return sorted(payload["models"][m]["trained_quality"] for m in payload["codecs"][curve]["settings"]["models"])

    vc = [n for n in learned if in_family(n, VCODEC)]
    jiang = [n for n in learned if in_family(n, JIANG)]
    pairs += [(v, j) for v in vc for j in jiang
              if trained(v) == trained(j) and v.endswith(LUMA) == j.endswith(LUMA)]
    return pairs


def compare_all(payload: dict) -> list[dict]:
    return [compare(payload, m, a) for m, a in comparison_pairs(payload)]


def target_verdict(payload: dict) -> list[str]:
    """The project's equal-rate target, read off the comparisons: in the rate window the
    virtual codec beats JPEG + the restorer and the directly connected
    baseline at equal rate (PSNR, then SSIM)."""
    psnr_key, ssim_key = payload["config"]["rd_metrics"]
    lo, hi = payload["config"]["window_bpp"]
    lines = []
    for c in payload["comparisons"]:
        if not in_family(c["method"], VCODEC) or c["against"] == "jpeg":
            continue
        cells = []
        for m in (psnr_key, ssim_key):
            w = c["equal_rate"][m].get("window") or {}
            cells.append(f"{m} {w['verdict']}" if w.get("verdict") else f"{m} not comparable "
                         f"({w.get('error') or c['equal_rate'][m].get('error')})")
        lines.append(f"- {c['method']} against {c['against']} at equal bpp within {lo}-{hi} bpp: "
                     + "; ".join(cells))
    return lines


# ------------------------------------------------------------------ rendering


def command_line(payload: dict) -> str:
    """The ``carkit bench vcodec`` command that measures this payload."""
    cfg = payload["config"]
    zoo = cfg["models"]
    cmd = f"carkit bench vcodec --data {cfg['data']}" + (" --gray" if cfg["gray"] else "")
    cmd += f" --models {','.join(zoo)}" if zoo else ""
    cmd += f" --runs {' '.join(cfg['runs'])}" if cfg["runs"] else ""
    cmd += f" --qualities {','.join(map(str, cfg['qualities']))}" if cfg["qualities"] else ""
    cmd += f" --restorer {cfg['restorer']} --jpeg-qualities {','.join(map(str, cfg['jpeg_qualities']))}"
    if list(cfg["window_bpp"]) != list(DEFAULT_WINDOW):
        cmd += f" --window {cfg['window_bpp'][0]},{cfg['window_bpp'][1]}"
    return cmd + (f" --limit {cfg['limit']}" if cfg["limit"] else "")


def format_vcodec_tables(payload: dict) -> str:
    """Markdown: the target verdict, the RD points, BD-rates and equal-rate gains."""
    cfg = payload["config"]
    lo, hi = cfg["window_bpp"]
    lines = [f"- {n}" for n in payload.get("notes", [])] + ([""] if payload.get("notes") else [])
    lines += [f"Target (equal-rate reading of the curves, PCHIP on log rate, {lo}-{hi} bpp):", ""]
    lines += target_verdict(payload) or ["- no virtual-codec curve (vcodec-* models) in this run"]
    lines += ["", "RD points (mean over images; bpp = the real file bytes over the full image's pixels):", ""]
    lines += points_table(payload)
    lines += ["", "Bjontegaard deltas (PCHIP, overlapping range; negative BD-rate = fewer bits for the same "
                  "quality):", ""]
    lines += bd_table_lines(payload)
    lines += ["", "Quality at equal bpp (positive = the method is better):", ""]
    lines += equal_rate_lines(payload)
    return "\n".join(lines)


def figure_path(payload: dict) -> str:
    """Where the RD figure of a result lives, relative to docs/."""
    return f"figures/vcodec_rd_{_stem(payload)}.png"


def _stem(payload: dict) -> str:
    return f"{dataset_name(payload, 'data')}_{payload['config']['mode']}"


def result_path(results_dir: str | os.PathLike, payload: dict) -> Path:
    return Path(results_dir) / f"vcodec_{_stem(payload)}.json"


def report_section(payload: dict) -> list[str]:
    """The RESULTS.md section of one result: command, figure, tables, provenance."""

    cfg = payload["config"]
    n = len(payload["images"])
    return [f"### {dataset_name(payload, '?')} ({cfg['mode']}, {n} images)", "",
            f"Command: `{command_line(payload)}`", "", f"![RD curves]({figure_path(payload)})", "",
            *format_vcodec_tables(payload).splitlines(), "",
            f"Provenance: {provenance_line(payload['provenance'])}", ""]


def plot_rd(payload: dict, out: str | os.PathLike, title: str | None = None) -> Path:
    """PSNR and SSIM against bpp for every curve (``common.plot_rd_curves``), to a PNG.
    ``title``: the figure's (default: the virtual codec bench's)."""
    cfg = payload["config"]
    lo, hi = cfg["window_bpp"]
    return plot_rd_curves(payload, out, title or f"Virtual codec at very low rates on {dataset_name(payload, '?')} "
                          f"({cfg['mode']}; shaded: {lo}-{hi} bpp)")


# ------------------------------------------------------------------ command line


def default_models(gray: bool) -> list[str]:
    """Every zoo virtual-codec model for the mode (``vcodec-*`` and ``jiang-*`` and others,
    the extra weights folders' too); a color set also gets the gray models in
    luma mode (the YCbCr description)."""
    def of_mode(g: bool) -> list[str]:
        return [n for n in list_weights(include_extra=True)
                if weights_record(n).kind == "vcodec" and weights_record(n).gray == g]

    return of_mode(gray) + ([] if gray else of_mode(True))


def add_bench_vcodec_arguments(parser) -> None:
    """The argparse options of ``carkit bench vcodec``."""
    parser.add_argument("--data", nargs="+", default=["eval/classic5", "eval/kodak"],
                        help="image folders, or names under the data root (default: eval/classic5 eval/kodak)")
    parser.add_argument("--gray", action="store_true", default=None,
                        help="score color sets as MATLAB-Y gray (the paper's gray comparison)")
    parser.add_argument("--models", help="comma-separated zoo virtual-codec models (default: every one for "
                                         "the mode); vcodec-* and jiang-* form the two family curves")
    parser.add_argument("--qualities", help="score every model at these description qualities, one curve a "
                                            "model (default: each at its trained quality)")
    parser.add_argument("--runs", nargs="+", help="training-run folders of vcodec models, each its own curve")
    parser.add_argument("--restorer", help="zoo artifact remover after JPEG (default: what carkit restore does "
                                           "to each file: its reviewed default, the file's tables in)")
    parser.add_argument("--jpeg-qualities", default=",".join(map(str, DEFAULT_JPEG_QUALITIES)),
                        help="full-resolution JPEG sweep")
    add_run_arguments(parser, DEFAULT_WINDOW, "first N images of each folder only")


def main_bench_vcodec(args) -> int:
    """Entry for an argparse namespace built with ``add_bench_vcodec_arguments``
    (``args.data`` already resolved to folders)."""
    window = threads_and_window(args)
    models = [m for m in (args.models or "").split(",") if m.strip()] if args.models is not None else None
    for d in args.data:
        gray = args.gray
        if models is None:  # every zoo model of the mode this folder is scored in
            _, _, gray_here = load_image_set(Path(d), gray, args.limit)
            use = [] if args.runs else default_models(gray_here)
        else:
            use = models
        payload = bench_vcodec(d, use, args.runs or (), parse_ints(args.qualities), args.restorer,
                               parse_ints(args.jpeg_qualities), gray, args.limit, window,
                               progress=not args.no_progress)
        path = write_result(result_path(args.results, payload), payload)
        print(format_vcodec_tables(payload))
        if args.figures:
            print(f"wrote {plot_rd(payload, Path(args.figures) / Path(figure_path(payload)).name)}")
        print(f"wrote {path}")
    return 0


__all__ = ["DEFAULT_JPEG_QUALITIES", "DEFAULT_RESTORER", "DEFAULT_WINDOW", "PAPER_CLAIM", "bench_vcodec",
           "compare", "equal_rate_gain", "format_vcodec_tables", "plot_rd", "report_section", "figure_path",
           "result_path", "add_bench_vcodec_arguments", "main_bench_vcodec", "command_line"]
