"""``carkit bench hiding``: residual hiding against the codec alone and the
artifact-removal baselines (the Residual hiding paper,
../shared/papers/residual-hiding.txt, section 4.2.1 and Table 2),
then rate-distortion curves past the paper.

For each codec (``CODECS``: JPEG, JPEG 2000, HEIF and carkit's learned
factorized-prior codec are configured; each needs hiding weights trained
with it, recipes/hiding/), on
``eval/kodak`` by default:

**Table 2** (section 4.2.1, implemented as the text describes):

* The hiding models are the zoo's ``kind == "hiding"`` weights (and
  ``--runs``) trained for the codec at the table's quality (``quality`` of the
  codec's config, 50 for JPEG); their strategy (I, II, or "direct" for a
  learned codec trained through itself) comes from their recipe. They are
  tested at that quality: the product codec
  (``codecs/hiding/codec.py``: E, the real codec, D, the COM marker)
  codes every image to real bytes and decodes it from them.
* The baselines are the codec alone ("Original") and the zoo restorers (or
  runs) of the DnCNN and MemNet families trained at one quality of the same
  codec (recipes/hiding/baselines/; a restore recipe's ``data.codec`` names
  the codec, JPEG by default); a gray MemNet restores the Y channel of color
  images (``restoration/restorer.py``'s ``color-via-Y``), as in the paper.
* **Fix-Q**: the baselines are trained and tested at the higher quality whose
  mean bpp on the set matches the mean bpp of the hiding output IL_enc (the
  paper: 62 against 50): the integer quality whose mean bpp over the set is
  closest to it (bisection on the codec's real bytes, :func:`match_quality`;
  the mean over the hiding models when there are several), or
  ``fixq_quality``. A baseline trained within ``BASELINE_MARGIN`` quality
  points of it stands in (flagged).
* **Fix-BPP**: everyone trained at the table's quality; the hiding output
  IL_enc is at its own bpp at that quality, the baselines get the codec's
  IL at that same quality, i.e. fewer bits (the paper's 1.0 against 0.889 bpp
  for JPEG). Implemented literally; this favours hiding by the rate
  difference, which the tables print.
* **Fix-Q/BPP** (codecs whose rate a quality fixes, JPEG 2000 here): one
  protocol, everyone at the table's quality.

Every row holds PSNR and SSIM in PROTOCOL.md's color tables (``psnr_rgb``,
``ssim_rgb``) with the Y-channel values beside them, and bpp from real bytes
(the hiding file's bytes, marker included); hiding rows also score IL_enc
before D. The paper's Kodak numbers (``paper_numbers.HIDING_TABLE_2_KODAK``)
are printed beside them, with gains over the Original row (PROTOCOL.md:
compare with a paper by the gain).

**RD curves** over a quality sweep: the codec alone, the codec followed by
the default restorer (what ``carkit restore`` does to the file: the
reviewed default for its quality, reading its tables; for files other than
JPEG, the blind default; ``common.RestoreStep``, as ``bench vcodec``), and
hiding+D for every hiding model (E/D trained at one quality applied at each
sweep quality; points off the training quality are flagged). BD-rate (and
BD-PSNR / BD-SSIM) of hiding+D against the codec alone and against codec +
restorer over the overlap and within ``window`` (0.4-1.5 bpp: the project's
target is a BD-rate of -30 % or better against libjpeg-turbo alone), and the
quality gain at equal rate; this part reuses ``bench vcodec``'s comparison
and rendering (``common.compare``, its tables and ``plot_rd_curves``), with the
same payload layout.

**What a user would use instead** (PROTOCOL.md): for JPEG, the
same sweep through jpegli (``codecs/jpegli.py``: ajpegli, 4:2:0, default
settings, files decoded by Pillow as a viewer would) and jpegli followed by
the same restorer (the same plan as the codec + restorer curve), and per
hiding model its files in a plain viewer ("hiding, plain viewer"): IL_enc,
the hiding file decoded by Pillow without D, at its real bytes (the
measurement Table 2's "IL_enc before D" column shows). BD-rates of hiding+D
against each of the codec, codec + restorer, jpegli and jpegli + restorer, and
of the plain-viewer files against libjpeg-turbo and jpegli, over the overlap,
within ``window`` and within ``wide_window`` (the standard-file targets' 0.3-2 bpp). Then
encode and decode seconds per megapixel of every pipeline (:func:`time_per_mp`:
the codecs, codec + restorer, hiding E + codec / codec + D, and the hiding
file in a plain viewer), interleaved per image at Table 2's quality after a
warm-up, median over images, with the thread count and CPU model. jpegli
needs the ajpegli bindings; without them those curves are left out with a note.

Weights that are not in the zoo yet are left out with a note (nothing is
trained at first); ``--runs`` scores training-run folders (hiding or
baseline) before anything ships.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from ..errors import CodecError, UsageError
from ..extras import require_bench_deps
from ..codecs.hiding.codec import CARRIERS, HidingCodec, load_weights, trained_for
from ..codecs.markers import JPEG_WRITERS
from .common import (
    RD_METRICS, add_row, add_run_arguments, add_runs, bd_cell, bd_metric, bd_table,
    compare, data_arg, dataset_name, equal_rate_lines, fmt, load_image_set, RestoreStep, parse_ints,
    plot_rd_curves, points_table, progress_bar, provenance_line, rd_point, threads_and_window,
)
from ..codecs import canonical_name, get_codec
from ..zoo.registry import list_weights, weights_record
from ..models.registry import model_config
from .results import provenance, sha256_file, write_result
from ..codecs.base import check_quality
from .paper_numbers import HIDING_TABLE_2_KODAK
from .. import metrics

#: the project's rate window and target (BD-rate of hiding+D against the codec alone)
DEFAULT_WINDOW = (0.4, 1.5)
TARGET_BD_RATE = -30.0
#: the standard-file targets' rate window, and its targets there (BD-rate of psnr_rgb): the hiding files in a plain viewer
#: against libjpeg-turbo, hiding+D against jpegli + the restorer and against libjpeg-turbo
WIDE_WINDOW = (0.3, 2.0)
TARGET_PLAIN_BD_RATE = 0.0
TARGET_VS_USER_RESTORED = 0.0
TARGET_VS_CODEC_WIDE = -35.0
#: standard-file codecs a user would pick instead of the benched one (PROTOCOL.md), same files and decoder
USER_CODECS = {"jpeg": ("jpegli",)}
#: a baseline trained this many quality points from the one a protocol tests at still stands in (flagged)
BASELINE_MARGIN = 4
#: restorer families of the paper's baselines: row label -> registry-name prefix of the architecture
BASELINE_FAMILIES = {"DnCNN": "dncnn", "MemNet": "memnet"}
#: "direct": a learned codec as its own proxy (the paper's Table 1 row "Ours")
STRATEGY_LABEL = {"I": "Strategy I", "II": "Strategy II", "direct": "Ours (codec as proxy)"}
PROTOCOL_LABEL = {"fix-q": "Fix-Q", "fix-bpp": "Fix-BPP", "fix-q/bpp": "Fix-Q/BPP"}
ORIGINAL = "Original"


@dataclass(frozen=True)
class CodecConfig:
    """How one codec enters the bench.

    ``quality``: where the hiding models (and the Fix-BPP baselines) are
    trained and tested; ``protocols``: "fix-q" and "fix-bpp" for codecs whose
    rate varies at a fixed quality (the paper's dynamic group), "fix-q/bpp"
    for those whose quality fixes the rate (stable group); ``fix_bpp``: the
    paper's nominal Fix-BPP rate (reported beside the measured one; the bench
    does not steer to it); ``sweep``: the RD curves' qualities; ``paper``: the
    key of its column in ``paper_numbers.HIDING_TABLE_2_KODAK``."""

    codec: str
    quality: int
    protocols: tuple[str, ...]
    sweep: tuple[int, ...]
    fix_bpp: float | None = None
    paper: str | None = None
    note: str = ""


CODECS = {
    "jpeg": CodecConfig("jpeg", 50, ("fix-q", "fix-bpp"), (10, 15, 20, 30, 40, 50, 60, 70, 80, 90), 1.0, "jpeg"),
    # the qualities of recipes/hiding/hiding-{jpeg2000-q28,heif-q39}-s*.toml: OpenJPEG by rate
    # (codecs/jpeg2000.py), quality 28 asks for ratio 48, 0.50 bpp RGB, the paper's "48 / 0.50" (its
    # quality scale is not ours); HEVC intra through pillow-heif standing in for BPG, quality 39 about
    # the paper's Q30 / 0.702 bpp
    "jpeg2000": CodecConfig("jpeg2000", 28, ("fix-q/bpp",), (10, 20, 28, 40, 50, 60, 70, 80), None, "jpeg2000",
                            "quality 28 here gives the paper's 0.50 bpp (its '48' is another quality scale)"),
    "heif": CodecConfig("heif", 39, ("fix-q", "fix-bpp"), (15, 20, 25, 30, 39, 45, 50, 60), 1.0, "bpg",
                        "HEVC intra through pillow-heif against the paper's BPG; quality 39 is about its 0.702 bpp"),
    # carkit's learned codec (the paper's deep-codec group, Table 1): a quality picks a zoo
    # entry (one trained lambda per range, recipes/learned/), so quality cannot steer the
    # rate inside a range and Fix-Q has nothing to match: one protocol, IL_enc's bpp beside
    # IL's (the paper, CAE-P: 2.527 against 2.535 bpp). The sweep keeps one quality per entry
    # the zoo holds (Codec.distinct_qualities). No paper column: its deep codecs are not ours.
    "factorized": CodecConfig("factorized", 50, ("fix-q/bpp",), (25, 50, 75, 100), None, None,
                              "quality 50 is factorized-small-l0130 (range 26-50); the sweep has one point per "
                              "trained rate point in the zoo"),
}


def codec_config(name: str) -> CodecConfig:
    try:
        key = canonical_name(name)
    except CodecError as exc:
        raise UsageError(str(exc)) from None
    if key not in CODECS:
        raise UsageError(f"no hiding-bench configuration for {key}; configured: {', '.join(CODECS)}")
    return CODECS[key]


# ------------------------------------------------------------------ methods


@dataclass
class Method:
    """A hiding model or a baseline restorer, from the zoo or a training run."""

    name: str
    role: str  # "hiding", or a BASELINE_FAMILIES label
    codec: str  # the codec it was trained behind
    trained_range: tuple[int, int]  # (lo, hi); lo == hi for one quality (every baseline)
    info: dict
    runner: object  # hiding: a BenchHidingCodec; baselines: a RestorePlan

    @property
    def trained_quality(self) -> int | str:
        """The one trained quality, or "lo-hi" for a pair trained over a range."""
        lo, hi = self.trained_range
        return lo if lo == hi else f"{lo}-{hi}"

    def covers(self, quality: int) -> bool:
        """Whether the model was trained at ``quality`` (within its range)."""
        return self.trained_range[0] <= quality <= self.trained_range[1]

    @property
    def label(self) -> str:
        return STRATEGY_LABEL.get(self.info.get("strategy"), "hiding") if self.role == "hiding" else self.role


class BenchHidingCodec(HidingCodec):
    """The product codec with one E/D pair loaded once (a zoo entry or a
    training run): its bytes are exactly what ``carkit encode --method
    hiding`` writes with those weights."""

    def __init__(self, codec: str, name: str, net, record, refine: int = 0):
        super().__init__(codec=codec, model=name, refine=refine)
        self._pair = (net, record)

    def _weights(self, name: str, sha256: str | None = None):
        if name != self.model:
            raise CodecError(f"this file was coded by {name}, not by {self.model}")
        if sha256 is not None and not self._pair[1].sha256.startswith(sha256):
            raise CodecError(f"this file was coded with other {name} weights")
        return self._pair


def same_files(codec: str, other: str) -> bool:
    """Whether two codecs write files of one format (jpegli and libjpeg-turbo: JPEG)."""
    return codec == other or (codec in CARRIERS and other in CARRIERS and
                              CARRIERS[codec].format == CARRIERS[other].format)


def _family(architecture: str) -> str | None:
    return next((label for label, prefix in BASELINE_FAMILIES.items() if architecture.startswith(prefix)), None)


def _hiding_method(name: str, net, record, info: dict) -> Method:
    codec, trained = trained_for(record)
    kwargs = record.recipe.get("task_kwargs") or {}   # provenance: the strategy labels rows
    info = {**info, "strategy": kwargs.get("strategy", "II"), "codec": codec}
    try:  # a codec this machine lacks, or whose files cannot carry the marker: a note, not a failure
        runner = BenchHidingCodec(codec, name, net, record)
    except CodecError as exc:
        runner, info["unavailable"] = None, str(exc)
    return Method(name, "hiding", codec, trained, info, runner)


def refined(method: Method, steps: int) -> Method:
    """A hiding method's twin whose files ``carkit encode --refine STEPS``
    writes: the same pair, named "NAME, refine STEPS"."""
    net, record = method.runner._pair
    return Method(f"{method.name}, refine {steps}", "hiding", method.codec, method.trained_range,
                  {**method.info, "refine": steps}, BenchHidingCodec(method.codec, method.name, net, record, steps))


def _zoo_method(name: str, gray: bool, explicit: bool, notes: list[str]) -> Method | None:
    """A zoo entry as a method. Weights that are neither a hiding model nor a
    fixed-quality DnCNN/MemNet, or a hiding model of the other mode, are a
    one-line error when named (``explicit``), else left out (None), with a
    line in ``notes`` for hiding models and blind DnCNN/MemNet."""
    from ..restoration.restorer import Restorer

    rec = weights_record(name)
    info = {"source": "zoo", "architecture": rec.model, "weights_sha256": rec.sha256,
            "training": {**{k: rec.training.get(k) for k in ("steps", "wall_seconds", "data")},
                         "stages": [{k: st.get(k) for k in ("run", "steps", "wall_seconds")}
                                    for st in rec.training.get("stages") or []]}}
    if rec.kind == "hiding":
        if rec.gray != gray:
            why = f"{name} codes {'gray' if rec.gray else 'color'} images; this set is {'gray' if gray else 'color'}"
            if explicit:
                raise UsageError(why)
            notes.append(why)
            return None
        net, record = load_weights(name)
        return _hiding_method(name, net, record, info)
    family = _family(rec.model) if rec.kind == "restorer" else None
    why = None
    if family is None:
        why = f"{name} is a {rec.kind} ({rec.model}), not a hiding model or a DnCNN/MemNet baseline"
    elif rec.qualities[0] != rec.qualities[1]:
        why = (f"{name} is trained for QF {rec.qualities[0]}..{rec.qualities[1]}; Table 2's baselines are trained "
               "at one quality")
    if why:
        if explicit:
            raise UsageError(why)
        if family is not None:
            notes.append(why)
        return None
    plan = Restorer(model=name).plan(gray, None)
    return Method(name, family, rec.trained_codec, (int(rec.qualities[0]),) * 2,
                  {**info, "mode": plan.mode}, plan)


def _run_methods(runs: Sequence, gray: bool, restorer) -> list[Method]:
    """Training-run folders as methods: hiding models (the product codec with
    the run's E/D) and DnCNN/MemNet restorers (loaded into ``restorer``)."""
    from ..training.export import load_run_model, run_budget, run_record, run_trained_for

    out = []
    for run in runs:
        path = Path(run) / "recipe.json"
        if not path.is_file():
            raise UsageError(f"{run}: not a training run folder (no recipe.json)")
        recipe = json.loads(path.read_text())
        kind = model_config(recipe["model"]).kind
        if kind == "hiding":
            if bool(recipe["gray"]) != gray:
                raise UsageError(f"{run}: codes {'gray' if recipe['gray'] else 'color'} images; this set is "
                                  f"{'gray' if gray else 'color'}")
            net, recipe = load_run_model(run)
            sha = sha256_file(Path(run) / "last.safetensors")
            record = run_record(run, recipe, sha)
            budget = run_budget(run, recipe)
            info = {"source": "run", "run": str(run), "architecture": recipe["model"], "weights_sha256": sha,
                    "training": {"steps": budget["steps"], "wall_seconds": budget["wall_seconds"],
                                 "data": recipe.get("train_dirs")}}
            out.append(_hiding_method(recipe["name"], net, record, info))
            continue
        family = _family(recipe["model"]) if kind == "restorer" else None
        if family is None:
            raise UsageError(f"{run}: {recipe['model']} is not a hiding model or a DnCNN/MemNet baseline")
        quals = recipe.get("qualities") or []
        if len(set(quals)) != 1:
            raise UsageError(f"{run}: trained at qualities {quals or recipe.get('quality_range')}; Table 2's "
                              "baselines are trained at one quality")
        (name, (plan, info)), = add_runs(restorer, [run], gray).items()
        out.append(Method(name, family, run_trained_for(recipe)[0], (int(quals[0]),) * 2,
                          {"source": "run", **info, "mode": plan.mode}, plan))
    return out


def find_methods(models: Sequence[str] | None, runs: Sequence, gray: bool, restorer,
                 notes: list[str] | None = None) -> list[Method]:
    """Hiding models and baselines: ``models`` (zoo names; None: every
    suitable zoo entry, the extra weights folders' too, where the baselines
    live, with a line in ``notes`` for those left out) and ``runs``; names
    must be unique."""
    explicit = models is not None
    names = list(dict.fromkeys(models)) if explicit else list_weights(include_extra=True)
    notes = [] if notes is None else notes
    methods = [m for m in (_zoo_method(n, gray, explicit, notes) for n in names) if m is not None]
    methods += _run_methods(runs, gray, restorer)
    seen = set()
    for m in methods:
        if m.name in seen:
            raise UsageError(f"two models or runs are named {m.name!r}")
        seen.add(m.name)
    return methods


# ------------------------------------------------------------------ measuring


def match_quality(mean_bpp: Callable[[int], float], target: float, lo: int = 1,
                  hi: int = 100) -> tuple[int, dict[int, float]]:
    """The integer quality in lo..hi whose mean bpp is closest to ``target``
    (ties: the lower quality), by bisection on the codec's rate, which does
    not fall as quality rises; returns it and {quality: mean bpp} of the
    qualities tried."""
    tried: dict[int, float] = {}

    def rate(q: int) -> float:
        if q not in tried:
            tried[q] = float(mean_bpp(q))
        return tried[q]

    a, b = lo, hi
    if rate(a) >= target:
        return a, tried
    if rate(b) <= target:
        return b, tried
    while b - a > 1:  # rate(a) < target <= rate(b)
        mid = (a + b) // 2
        a, b = (mid, b) if rate(mid) < target else (a, mid)
    return min((a, b), key=lambda q: (abs(rate(q) - target), q)), tried


class Scorer:
    """Scores methods on one image set through one codec, each (method,
    quality) once: the Table 2 rows and the RD curves share measurements."""

    def __init__(self, images, codec, bar):
        self.images, self.codec, self.bar = images, codec, bar
        self._data: dict[int, list[bytes]] = {}
        self._per: dict[tuple[str, int], dict] = {}

    def data(self, q: int) -> list[bytes]:
        """The codec's files of every image at quality ``q`` (real bytes)."""
        if q not in self._data:
            self._data[q] = [self.codec.encode(img, q) for img in self.images]
        return self._data[q]

    def mean_bpp(self, q: int) -> float:
        return sum(metrics.bpp(len(d), *img.shape[:2]) for d, img in zip(self.data(q), self.images)) / len(self.images)

    def plain(self, q: int, restorers: dict[str, Callable] | None = None) -> dict[str, dict]:
        """Per-image rows of the codec alone (key ``""``) and of each
        restorer {key: f(file bytes, decoded pixels) -> pixels} after it, at
        quality ``q``."""

        restorers = restorers or {}
        todo = [k for k in ["", *restorers] if (k, q) not in self._per]
        if todo:
            rows = {k: {} for k in todo}
            self.bar.set_description(f"{self.codec.name} q{q}")
            for img, data in zip(self.images, self.data(q)):
                decoded = self.codec.decode(data)
                for k in todo:
                    out = decoded if not k else restorers[k](data, decoded)
                    add_row(rows[k], len(data), out, img)
                self.bar.update(1)
            self._per.update({(k, q): rows[k] for k in todo})
        return {k: self._per[(k, q)] for k in ["", *restorers]}

    def hiding(self, method: Method, q: int) -> tuple[dict, dict]:
        """Per-image rows of I'H (decoded from the hiding file's bytes) and of
        IL_enc (the same file through the plain codec, before D)."""

        key = (f"hiding:{method.name}", q)
        if key not in self._per:
            out, enc = {}, {}
            self.bar.set_description(f"{method.name} q{q}")
            for img in self.images:
                rt = method.runner.roundtrip(img, q)
                add_row(out, rt.nbytes, rt.decoded, img)
                add_row(enc, rt.nbytes, self.codec.decode(rt.data), img)
                self.bar.update(1)
            self._per[key] = (out, enc)
        return self._per[key]


def _nearest_baselines(methods: list[Method], quality: int) -> list[Method]:
    """Per family, the baselines trained nearest ``quality`` (within BASELINE_MARGIN)."""
    out = []
    for family in BASELINE_FAMILIES:
        near = [m for m in methods if m.role == family and abs(m.trained_quality - quality) <= BASELINE_MARGIN]
        best = min((abs(m.trained_quality - quality) for m in near), default=None)
        out += [m for m in near if abs(m.trained_quality - quality) == best]
    return out


def _row(method: str, model: str | None, q: int, trained: int | None, per: dict, **extra) -> dict:
    return rd_point(q, per, method=method, model=model, trained_quality=trained, **extra)


def _table2(cfg: CodecConfig, scorer: Scorer, hiding: list[Method], baselines: list[Method], restorer,
            fixq_quality: int | None, notes: list[str]) -> list[dict]:
    """Table 2's protocols for one codec (module doc)."""
    q = cfg.quality
    hid_rows = []
    for m in hiding:
        out, enc = scorer.hiding(m, q)
        hid_rows.append(_row(m.label, m.name, q, m.trained_quality, out, il_enc=_row("", None, q, None, enc)["mean"]))
    target = sum(r["mean"]["bpp"] for r in hid_rows) / len(hid_rows) if hid_rows else None
    plans = {m.name: (lambda data, decoded, plan=m.runner: restorer.restore_pixels(decoded, plan)) for m in baselines}
    tables = []
    for protocol in cfg.protocols:
        table = {"protocol": protocol, "hiding_quality": q, "target_bpp": target, "notes": []}
        if protocol == "fix-q":
            if fixq_quality is not None:
                bq, tried = int(fixq_quality), {}
                table["notes"].append(f"baseline quality {bq} given (--fixq-quality), not searched")
            elif target is None:
                notes.append(f"{PROTOCOL_LABEL[protocol]}: skipped: no hiding model trained for {cfg.codec} at "
                             f"quality {q}, so no IL_enc rate to match (give --fixq-quality to run the baselines "
                             "at a chosen quality, e.g. the paper's 62)")
                continue
            else:
                bq, tried = match_quality(scorer.mean_bpp, target)
            table["search"] = {str(k): v for k, v in sorted(tried.items())}
        else:
            bq = q
        chosen = _nearest_baselines(baselines, bq)
        for family in BASELINE_FAMILIES:
            if not any(m.role == family for m in chosen):
                # the benched set may be narrowed by --models, so say "benched", not "trained"
                table["notes"].append(f"{family}: no weights at or near quality {bq} (within {BASELINE_MARGIN}) "
                                      "among the benched models; train recipes/hiding/baselines/, name them in "
                                      "--models or give --runs")
        per = scorer.plain(bq, {m.name: plans[m.name] for m in chosen})
        rows = [_row(ORIGINAL, None, bq, None, per[""])]
        rows += [_row(m.label, m.name, bq, m.trained_quality, per[m.name]) for m in chosen]
        table.update(baseline_quality=bq, baseline_bpp=rows[0]["mean"]["bpp"], rows=rows + hid_rows)
        if target is not None:
            gap = 100 * (target / table["baseline_bpp"] - 1)
            if protocol == "fix-bpp":
                table["notes"].append(f"read literally, Fix-BPP gives the hiding output {target:.3f} bpp and the "
                                      f"baselines {table['baseline_bpp']:.3f} bpp ({gap:+.1f}% for hiding, the "
                                      "paper's 1.0 against 0.889): this favours "
                                      f"{'hiding' if gap > 0 else 'the baselines'} by that rate difference")
            else:
                table["notes"].append(f"IL_enc {target:.3f} bpp (mean over the hiding models) against IL "
                                      f"{table['baseline_bpp']:.3f} bpp at quality {bq} ({gap:+.1f}%)")
        if not hid_rows:
            table["notes"].append(f"no hiding model trained for {cfg.codec} at quality {q} in the zoo or --runs "
                                  "(train recipes/hiding/*.toml)")
        tables.append(table)
    return tables


def plain_label(name: str) -> str:
    """The RD curve name of a hiding model's files in a plain viewer (Pillow, no D)."""
    return f"hiding, plain viewer ({name})"


def _bd_in(rd: dict, method: str, against: str, window: tuple[float, float]) -> dict:
    """BD-rate of ``method`` against ``against`` within ``window`` (PSNR by
    ``codec_bench.bd_table``, SSIM alike), as ``compare``'s ``bd_window``."""

    ssim_key = rd["config"]["rd_metrics"][1]
    view = {"config": rd["config"], "codecs": {k: rd["codecs"][k] for k in (against, method)}}
    out = bd_table(view, anchor=against, rate_window=tuple(window))["codecs"][method]
    out[ssim_key] = bd_metric(rd["codecs"][against], rd["codecs"][method], ssim_key, tuple(window))
    return out


def _rd(cfg: CodecConfig, scorer: Scorer, hiding: list[Method], rst: RestoreStep | None, gray: bool,
        window: tuple[float, float], others: dict[str, Scorer] | None = None,
        wide_window: tuple[float, float] = WIDE_WINDOW) -> dict:
    """The RD curves and comparisons of one codec, in ``bench vcodec``'s
    layout; ``others``: the scorers of the codecs a user would use instead
    (jpegli for JPEG), each alone and followed by the restorer."""

    anchor = cfg.codec
    others = others or {}
    name = rst.name if rst else None
    restored = f"{anchor}+{name}" if rst else None
    lo, hi = rst.info["qualities"] if rst else (0, 0)
    curves: dict[str, dict] = {}
    users: list[tuple[str, str | None]] = []   # (codec curve, its restored curve)
    for codec, sc in [(anchor, scorer), *others.items()]:
        rname = f"{codec}+{name}" if rst else None
        curves[codec] = {"family": "codec", "settings": sc.codec.settings(), "points": []}
        if rname:
            curves[rname] = {"family": "restored", "points": [], "settings": {**sc.codec.settings(), "restorer": name}}
        users.append((codec, rname))
        for q in cfg.sweep:
            per = sc.plain(q, {rname: rst} if rst else {})
            curves[codec]["points"].append(rd_point(q, per[""]))
            if rname:
                extra = {"restorer_in_range": lo <= q <= hi} if codec in ("jpeg", "jpegli") else {}
                curves[rname]["points"].append(rd_point(q, per[rname], **extra))
    for m in hiding:
        curves[hiding_label(m.name)] = {
            "family": "hiding", "settings": {**m.runner.settings(), "models": [m.name]}, "points": [
                rd_point(q, scorer.hiding(m, q)[0], model=m.name, trained_quality=m.trained_quality,
                       in_training_quality=m.covers(q)) for q in cfg.sweep]}
    for m in hiding:   # the same files, decoded by Pillow without D (IL_enc)
        curves[plain_label(m.name)] = {
            "family": "hiding-plain", "settings": {**m.runner.settings(), "models": [m.name],
                                                   "decoder": f"{scorer.codec.name}'s plain decoder, no D"}, "points": [
                rd_point(q, scorer.hiding(m, q)[1], model=m.name, trained_quality=m.trained_quality,
                       in_training_quality=m.covers(q)) for q in cfg.sweep]}
    metric_keys = [k for k in curves[anchor]["points"][0]["mean"] if k not in ("bytes", "bpp")]
    references = [c for pair in users for c in pair if c]
    rd = {"config": {"metrics": metric_keys, "rd_metrics": list(RD_METRICS[gray]), "anchor": anchor,
                     "restored": restored, "window_bpp": [float(window[0]), float(window[1])],
                     "wide_window_bpp": [float(wide_window[0]), float(wide_window[1])],
                     "references": references, "curves": list(curves),
                     "qualities": list(cfg.sweep)},
          "codecs": curves}
    pairs = [(r, anchor) for r in references if r != anchor]
    pairs += [(hiding_label(m.name), a) for m in hiding for a in references]
    pairs += [(plain_label(m.name), c) for m in hiding for c, _ in users]
    rd["comparisons"] = [{**compare(rd, m, a), "bd_wide": _bd_in(rd, m, a, wide_window)} for m, a in pairs]
    return rd


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` says."""
    import platform

    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_per_mp(images, quality: int, codecs: dict, rst: RestoreStep | None, hiding: list[Method],
                n_images: int | None = None) -> dict:
    """Encode and decode seconds per megapixel of every pipeline at ``quality``
    on the first ``n_images`` images (None: all), interleaved per image (so a
    shared machine's load falls on all alike), after a warm-up of each on the
    first image; median over images. ``codecs``: {curve name: codec}, the
    benched one first (each also followed by the restorer ``rst``);
    hiding: E + codec to encode, codec + D to decode, and the same file in a
    plain viewer (the benched codec's decoder, Pillow for JPEG)."""
    import statistics
    import time

    import torch

    def clock(fn):
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0

    plain = next(iter(codecs.values()))
    todo = list(images[:n_images] if n_images is not None else images)
    rows: dict[str, dict] = {}

    def record(name, what, mp, enc, dec):
        r = rows.setdefault(name, {"what": what, "encode_s_per_mp": [], "decode_s_per_mp": []})
        r["encode_s_per_mp"].append(enc / mp)
        r["decode_s_per_mp"].append(dec / mp)

    for i, img in enumerate(todo[:1] + todo if todo else []):
        warm = i == 0
        mp = img.shape[0] * img.shape[1] / 1e6
        add = (lambda *a: None) if warm else (lambda name, what, enc, dec: record(name, what, mp, enc, dec))
        for name, codec in codecs.items():
            data, te = clock(lambda: codec.encode(img, quality))
            decoded, td = clock(lambda: codec.decode(data))
            by = "Pillow" if codec.name == "jpeg" or codec.settings().get("decoder") == "pillow" else codec.name
            add(name, f"{codec.name} encode; decode by {by}", te, td)
            if rst:
                _, tr = clock(lambda: rst(data, decoded))
                add(f"{name}+{rst.name}", f"{codec.name} encode; decode by {by} + {rst.name}", te,
                    td + tr)
        for m in hiding:
            rt = m.runner.roundtrip(img, quality)
            add(hiding_label(m.name), "E + codec + marker; codec decode + D", rt.encode_s, rt.decode_s)
            _, tp = clock(lambda: plain.decode(rt.data))
            add(plain_label(m.name), f"E + codec + marker; plain {plain.name} decode, no D", rt.encode_s, tp)
    out = {}
    for name, r in rows.items():
        out[name] = {"what": r["what"],
                     "encode_s_per_mp": statistics.median(r["encode_s_per_mp"]),
                     "decode_s_per_mp": statistics.median(r["decode_s_per_mp"]),
                     "per_image": {k: [float(f"{v:.4g}") for v in r[k]] for k in ("encode_s_per_mp",
                                                                               "decode_s_per_mp")}}
    return {"quality": int(quality), "n_images": len(todo), "threads": torch.get_num_threads(), "cpu": cpu_model(),
            "median_mp": statistics.median(im.shape[0] * im.shape[1] / 1e6 for im in todo) if todo else None,
            "warmup": "each pipeline once on the first image, not counted", "rows": out}


def bench_hiding(data_dir: str | os.PathLike, codecs: Sequence[str] = ("jpeg",), models: Sequence[str] | None = None,
                 runs: Sequence = (), restorer: str | None = None, sweep: Sequence[int] | None = None,
                 quality: int | None = None, fixq_quality: int | None = None,
                 window: tuple[float, float] = DEFAULT_WINDOW, limit: int | None = None,
                 progress: bool = True, tag: str | None = None,
                 wide_window: tuple[float, float] = WIDE_WINDOW, timing_images: int | None = None,
                 refine: int = 0) -> dict:
    """Table 2 and the RD curves on one image folder, for each codec; return
    the payload (module doc). ``models``: zoo names (None: every hiding model
    and fixed-quality DnCNN/MemNet in the zoo); ``restorer``: the RD curves'
    artifact remover (None: ``bench vcodec``'s default, left out with a note
    when the zoo lacks it; "": none); ``sweep``/``quality``: override every
    codec's config; ``tag``: this measurement's own result file and figures
    (:func:`result_path`); ``wide_window``: the second BD-rate window;
    ``timing_images``: the images :func:`time_per_mp` times (None: all, 0:
    no timing); ``refine``: also every pair's files refined for that many
    steps (:func:`refined`; pairs behind JPEG carriers)."""
    require_bench_deps()   # BD numbers and the plots, before minutes of coding
    import torch

    from ..restoration.restorer import Restorer

    def checked(q: int) -> int:
        try:
            return check_quality(q)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    for w in (window, wide_window):
        if not (len(w) == 2 and 0 < w[0] < w[1]):
            raise UsageError(f"the rate window needs two rates 0 < low < high, got {w}")
    if timing_images is not None and timing_images < 0:
        raise UsageError(f"--timing-images must be 0 or more, got {timing_images}")
    if refine < 0:
        raise UsageError(f"--refine must be 0 or more, got {refine}")
    if tag is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", tag):
        raise UsageError(f"--tag must be lower-case letters, digits and '-', got {tag!r}")
    configs = [codec_config(c) for c in dict.fromkeys(codecs)]
    if not configs:
        raise UsageError("no codec to benchmark")
    if quality is not None or sweep:
        configs = [replace(c, quality=checked(quality) if quality is not None else c.quality,
                           sweep=tuple(sorted({checked(q) for q in sweep})) if sweep else c.sweep)
                   for c in configs]
    if fixq_quality is not None:
        fixq_quality = checked(fixq_quality)
    data_dir = Path(data_dir)
    files, images, gray = load_image_set(data_dir, None, limit)
    coders = {c.codec: get_codec(c.codec) for c in configs}
    user_notes: dict[str, list[str]] = {}
    for c in configs:   # the standard-file codecs a user would use instead (jpegli for JPEG)
        for u in USER_CODECS.get(c.codec, ()):
            try:
                coders.setdefault(u, get_codec(u))
            except CodecError as exc:
                user_notes.setdefault(c.codec, []).append(f"no {u} curves (what a user would use instead): {exc}")
    # sweep only qualities that give different files (the learned codec: one per trained rate point)
    configs = [replace(c, sweep=coders[c.codec].distinct_qualities(c.sweep) or (c.quality,)) for c in configs]
    baseline_restorer = Restorer()
    general_notes: list[str] = []
    methods = find_methods(models, runs, gray, baseline_restorer, general_notes)
    if refine:
        methods += [refined(m, refine) for m in methods
                    if m.role == "hiding" and m.runner is not None and m.codec in JPEG_WRITERS]
    if restorer == "":
        rst = None
    else:
        rst = RestoreStep(restorer, gray)

    bar = progress_bar(None, progress)  # the number of images to score depends on the Fix-Q search
    out: dict[str, dict] = {}
    try:
        for cfg in configs:
            notes: list[str] = []
            scorer = Scorer(images, coders[cfg.codec], bar)
            # the RD curves hold every pair whose files are this codec's format (a pair trained behind
            # jpegli writes JPEG files: the same viewers, the same curves); Table 2 only this codec's
            hiding = [m for m in methods if m.role == "hiding" and same_files(m.codec, cfg.codec)]
            for m in [m for m in hiding if m.runner is None]:
                notes.append(f"{m.name}: left out: {m.info['unavailable']}")
            hiding = [m for m in hiding if m.runner is not None]
            at_q = [m for m in hiding if m.covers(cfg.quality) and m.codec == cfg.codec]
            for m in hiding:
                if m.codec != cfg.codec:
                    notes.append(f"{m.name}: trained behind {m.codec}, whose files are {cfg.codec}'s format: RD "
                                 "curves only (Table 2 is the paper's protocol through this codec)")
                elif not m.covers(cfg.quality):
                    notes.append(f"{m.name}: trained at quality {m.trained_quality}, not at the table's "
                                 f"{cfg.quality}: RD curve only")
            baselines = [m for m in methods if m.role in BASELINE_FAMILIES and m.codec == cfg.codec]
            if not baselines and cfg.codec != "jpeg":
                # with --models the zoo may well hold baselines for this codec, unbenched
                notes.append(f"baselines: no DnCNN/MemNet behind {cfg.codec} among the benched models (--models)"
                             if models is not None else
                             f"baselines: no DnCNN/MemNet trained behind {cfg.codec} (a restore recipe with "
                             f"data.codec = \"{cfg.codec}\", as recipes/hiding/baselines/*-{cfg.codec}-*.toml)")
            notes += user_notes.get(cfg.codec, [])
            table2 = _table2(cfg, scorer, at_q, baselines, baseline_restorer, fixq_quality, notes)
            others = {u: Scorer(images, coders[u], bar) for u in USER_CODECS.get(cfg.codec, ()) if u in coders}
            rd = _rd(cfg, scorer, hiding, rst, gray, window, others, wide_window)
            timing = None
            if timing_images != 0:
                bar.set_description(f"timing {cfg.codec} q{cfg.quality}")
                timing = time_per_mp(images, cfg.quality, {cfg.codec: scorer.codec, **{u: o.codec for u, o in
                                                                                       others.items()}},
                                     rst, hiding, timing_images)
            used = {r["model"] for t in table2 for r in t["rows"] if r.get("model")} | {m.name for m in hiding}
            out[cfg.codec] = {"config": asdict(cfg), "settings": coders[cfg.codec].settings(), "table2": table2,
                              "rd": rd, "timing": timing, "notes": notes,
                              "user_codecs": {u: o.codec.settings() for u, o in others.items()},
                              "models": {m.name: {"role": m.role, "label": m.label, **m.info,
                                                  "trained_quality": m.trained_quality}
                                         for m in methods if m.name in used}}
    finally:
        bar.close()

    settings = {c: {"codec": e["settings"], "restorer": rst.info if rst else None, "user_codecs": e["user_codecs"]}
                for c, e in out.items()}
    used = sorted({n for e in out.values() for n in e["models"]} | (set(rst.info["weights_sha256"]) if rst else set()))
    return {
        "kind": "hiding_bench",
        "config": {"data": data_arg(data_dir), "data_dir": str(data_dir.resolve()), "gray": gray,
                   "mode": "gray" if gray else "color", "limit": limit, "codecs": list(out),
                   "models": list(models) if models is not None else None, "runs": [str(r) for r in runs],
                   "restorer": rst.name if rst else None, "quality": quality,
                   "sweep": list(sweep) if sweep else None, "fixq_quality": fixq_quality,
                   "window_bpp": [float(window[0]), float(window[1])], "tag": tag,
                   "wide_window_bpp": [float(wide_window[0]), float(wide_window[1])],
                   "timing_images": timing_images, "refine": refine, "threads": torch.get_num_threads(),
                   "cpu": cpu_model()},
        "images": [{"name": f.name, "height": int(im.shape[0]), "width": int(im.shape[1])}
                   for f, im in zip(files, images)],
        "codecs": out,
        "notes": general_notes,
        "provenance": provenance(dataset_dir=data_dir, files=files, codec_settings=settings, model=", ".join(used)),
    }


# ------------------------------------------------------------------ rendering


def _f(v, spec: str) -> str:
    return fmt(v, spec)


def _paper(cfg: dict, protocol: str) -> dict | None:
    return (HIDING_TABLE_2_KODAK.get(cfg.get("paper")) or {}).get(protocol)


def _table2_lines(entry: dict, gray: bool, kodak: bool) -> list[str]:
    psnr_key, ssim_key = RD_METRICS[gray]
    extra = [] if gray else ["psnr_y", "ssim_y"]
    out = []
    for t in entry["table2"]:
        paper = _paper(entry["config"], t["protocol"]) if kodak else None
        head = (f"**{PROTOCOL_LABEL[t['protocol']]}**: hiding at quality {t['hiding_quality']}, baselines at "
                f"{t['baseline_quality']}")
        if t["protocol"] == "fix-q" and t.get("search"):
            head += (f" (the quality whose mean bpp, {t['baseline_bpp']:.4f}, is closest to IL_enc's "
                     f"{t['target_bpp']:.4f}; tried " + ", ".join(f"q{k}: {v:.3f}" for k, v in t["search"].items())
                     + ")")
        if paper:
            head += f"; the paper: {paper['quality'] or '-'} / {paper['bpp']} bpp"
        cols = [psnr_key, ssim_key, *extra]
        out += [head + ".", "",
                "| method | model | quality (trained) | bpp | " + " | ".join(cols) + " | gain over Original |"
                + (" paper PSNR / SSIM | paper gain |" if paper else "") + " IL_enc before D |",
                "|---" * (6 + len(cols) + (2 if paper else 0)) + "|"]
        base = next(r for r in t["rows"] if r["method"] == ORIGINAL)["mean"]
        pbase = (paper or {}).get("rows", {}).get(ORIGINAL)
        for r in t["rows"]:
            m = r["mean"]
            trained = "" if r["trained_quality"] in (None, r["quality"]) else f" ({r['trained_quality']})"
            cells = [f"{_f(m.get(k), '.4f' if k.startswith('ssim') else '.3f')}" for k in cols]
            gain = "-" if r["method"] == ORIGINAL else (f"{m[psnr_key] - base[psnr_key]:+.3f} dB / "
                                                       f"{m[ssim_key] - base[ssim_key]:+.4f}")
            line = (f"| {r['method']} | {r['model'] or '-'} | {r['quality']}{trained} | {m['bpp']:.4f} | "
                    + " | ".join(cells) + f" | {gain} |")
            if paper:
                p = paper["rows"].get(r["method"])
                line += (f" {p[0]:.3f} / {p[1]:.3f} |" if p else " - |")
                line += (f" {p[0] - pbase[0]:+.3f} dB / {p[1] - pbase[1]:+.3f} |"
                         if p and pbase and r["method"] != ORIGINAL else " - |")
            enc = r.get("il_enc")
            line += f" {enc[psnr_key]:.3f} / {enc[ssim_key]:.4f} |" if enc else " - |"
            out.append(line)
        out += [""] + [f"- {n}" for n in t["notes"]] + ([""] if t["notes"] else [])
    return out


def _budget_lines(entry: dict) -> list[str]:
    """One line naming every trained model of the tables with its training
    budget (steps and wall time), so unequal budgets show beside the rows. A
    model started from other trained weights (its zoo record's stages) has
    its own stage's steps and time, then the earlier stages' time."""
    parts = []
    for name, m in sorted(entry.get("models", {}).items()):
        t = m.get("training") or {}
        if t.get("steps") is None:
            continue
        wall = f", {t['wall_seconds'] / 60:.0f} min" if t.get("wall_seconds") else ""
        stages = t.get("stages") or []
        if len(stages) > 1 and stages[-1].get("wall_seconds") and t.get("wall_seconds"):
            earlier = (t["wall_seconds"] - stages[-1]["wall_seconds"]) / 60
            wall = (f", {stages[-1]['wall_seconds'] / 60:.0f} min, after {len(stages) - 1} earlier stages "
                    f"({', '.join(st['run'] for st in stages[:-1])}: {earlier:.0f} min)")
        parts.append(f"{name} ({m.get('label') or m.get('role')}): {t['steps']} steps{wall}")
    return ["Training budgets (optimizer steps of the model's own training; wall time of training, including "
            "the earlier stages a model started from): " + "; ".join(parts) + ".", ""] if parts else []


#: the paper's own Table 2 does not follow from the text read literally (see the report)
PAPER_CAVEAT = ("The paper's Table 2 does not follow from section 4.2.1 read literally: there the hiding rows of "
                "Fix-Q and Fix-BPP are one model at one quality (so one measurement here), yet the paper prints "
                "different numbers for them, and its Original row scores lower under Fix-Q (baselines at the "
                "higher quality) than under Fix-BPP in PSNR while higher in SSIM. Compare the gains over the "
                "Original row, not the absolute numbers (PROTOCOL.md); the paper does not say whether its PSNR "
                "is RGB or Y.")


def target_lines(rd: dict) -> list[str]:
    """The project's target read off the comparisons: window BD-rate of each
    hiding+D curve against the codec alone."""
    psnr_key = rd["config"]["rd_metrics"][0]
    lo, hi = rd["config"]["window_bpp"]
    out = []
    for c in rd["comparisons"]:
        if not c["method"].startswith("hiding+D") or c["against"] != rd["config"]["anchor"]:
            continue
        w = c["bd_window"][psnr_key]
        verdict = (f"not comparable ({w['error']})" if "error" in w else
                   f"{w['bd_rate']:+.1f}%: {'meets' if w['bd_rate'] <= TARGET_BD_RATE else 'misses'} the target")
        out.append(f"- {c['method']} against {c['against']} alone, BD-rate ({psnr_key}) within {lo}-{hi} bpp: "
                   + verdict)
    return out


def standard_file_target_lines(rd: dict) -> list[str]:
    """The standard-file targets read off the comparisons, BD-rate of the PSNR within
    the wide window: the files in a plain viewer against the codec alone (0 %
    or better), hiding+D against the other codec + restorer (negative) and
    against the codec alone (-35 % or better)."""
    if "wide_window_bpp" not in rd["config"]:
        return []
    psnr_key = rd["config"]["rd_metrics"][0]
    lo, hi = rd["config"]["wide_window_bpp"]
    anchor = rd["config"]["anchor"]
    restored_users = [c for c in rd["config"].get("references", [])
                      if rd["codecs"][c]["family"] == "restored" and c != rd["config"]["restored"]]
    out = []
    for c in rd["comparisons"]:
        plain = c["method"].startswith("hiding, plain viewer")
        if plain and c["against"] == anchor:
            meets, want = (lambda b: b <= TARGET_PLAIN_BD_RATE), f"{TARGET_PLAIN_BD_RATE:+.0f}% or better"
        elif c["method"].startswith("hiding+D") and c["against"] in restored_users:
            meets, want = (lambda b: b < TARGET_VS_USER_RESTORED), "negative"
        elif c["method"].startswith("hiding+D") and c["against"] == anchor:
            meets, want = (lambda b: b <= TARGET_VS_CODEC_WIDE), f"{TARGET_VS_CODEC_WIDE:+.0f}% or better"
        else:
            continue
        w = c["bd_wide"][psnr_key]
        verdict = (f"not comparable ({w['error']})" if "error" in w else
                   f"{w['bd_rate']:+.1f}%: {'meets' if meets(w['bd_rate']) else 'misses'} the target ({want})")
        out.append(f"- {c['method']} against {c['against']}, BD-rate ({psnr_key}) within {lo}-{hi} bpp: {verdict}")
    return out


def _bd_lines(rd: dict) -> list[str]:
    """BD-rates of every comparison: over the overlap, within the window and
    within the wide window (the standard-file targets' 0.3-2 bpp)."""

    psnr_key, ssim_key = rd["config"]["rd_metrics"]
    lo, hi = rd["config"]["window_bpp"]
    wide = rd["config"].get("wide_window_bpp")
    head = (f"| method | against | BD-rate {psnr_key} (BD-PSNR dB) | BD-rate {ssim_key} (BD-SSIM) | "
            f"BD-rate {psnr_key}, {lo}-{hi} bpp | BD-rate {ssim_key}, {lo}-{hi} bpp |")
    if wide:
        head += f" BD-rate {psnr_key}, {wide[0]}-{wide[1]} bpp | BD-rate {ssim_key}, {wide[0]}-{wide[1]} bpp |"
    out = [head, "|---" * (8 if wide else 6) + "|"]
    notes = []
    for c in rd["comparisons"]:
        tables = [c["bd"], c["bd_window"]] + ([c["bd_wide"]] if wide and "bd_wide" in c else [])
        line = (f"| {c['method']} | {c['against']} | {bd_cell(c['bd'][psnr_key], 'bd_psnr', '+.2f')} | "
                f"{bd_cell(c['bd'][ssim_key], f'bd_{ssim_key}', '+.4f')} | "
                f"{bd_cell(c['bd_window'][psnr_key], None, '')} | {bd_cell(c['bd_window'][ssim_key], None, '')} |")
        if wide:
            line += (f" {bd_cell(c['bd_wide'][psnr_key], None, '')} | {bd_cell(c['bd_wide'][ssim_key], None, '')} |"
                     if "bd_wide" in c else " - | - |")
        out.append(line)
        why = dict.fromkeys(t[m]["error"] for t in tables for m in (psnr_key, ssim_key) if "error" in t[m])
        if why:
            notes.append(f"{c['method']} vs {c['against']}: " + "; ".join(why))
    return out + ([""] + [f"- n/a: {n}" for n in notes] if notes else [])


def timing_lines(entry: dict) -> list[str]:
    """The encode/decode time table of one codec (:func:`time_per_mp`)."""
    t = entry.get("timing")
    if not t or not t.get("rows"):
        return []
    anchor = entry["rd"]["config"]["anchor"]
    ref = t["rows"].get(anchor)
    out = [f"Encode and decode time, seconds per megapixel at quality {t['quality']}: median over {t['n_images']} "
           f"images (median {_f(t.get('median_mp'), '.3f')} MP), every pipeline on each image in turn after a "
           f"warm-up; {t['threads']} torch threads, CPU {t['cpu']}. Ratios are to {anchor} in the same run "
           "(absolute times on a shared machine are noise, ratios less so):", "",
           f"| pipeline | what is timed (encode; decode) | encode s/MP | decode s/MP | encode / {anchor} | "
           f"decode / {anchor} |", "|---|---|---|---|---|---|"]
    for name, r in t["rows"].items():
        ratios = [f"{r[k] / ref[k]:.0f}x" if ref and ref[k] > 0 and r[k] / ref[k] >= 10 else
                  f"{r[k] / ref[k]:.2f}x" if ref and ref[k] > 0 else "-" for k in ("encode_s_per_mp",
                                                                                  "decode_s_per_mp")]
        out.append(f"| {name} | {r['what']} | {r['encode_s_per_mp']:.4g} | {r['decode_s_per_mp']:.4g} | "
                   f"{ratios[0]} | {ratios[1]} |")
    return out + [""]


def format_hiding_tables(payload: dict) -> str:
    """Markdown: per codec, Table 2 beside the paper's, then the RD tables."""

    gray = payload["config"]["gray"]
    kodak = dataset_name(payload) == "kodak" and len(payload["images"]) == 24   # the paper's set, whole
    lines = [f"- {n}" for n in payload.get("notes", [])] + ([""] if payload.get("notes") else [])
    for codec, entry in payload["codecs"].items():
        rd = entry["rd"]
        lo, hi = rd["config"]["window_bpp"]
        notes = ([entry["config"]["note"]] if entry["config"].get("note") else []) + entry["notes"]
        lines += [f"#### {codec}", ""] + [f"- {n}" for n in notes] + ([""] if notes else [])
        lines += ["Table 2 (section 4.2.1): mean over images; bpp = the real file bytes (the hiding file's with its "
                  "marker) over the image's pixels; gains are over this protocol's Original row" +
                  ("" if kodak else "; the paper's Kodak numbers are shown only for the whole Kodak set") + ".", ""]
        lines += _table2_lines(entry, gray, kodak)
        lines += _budget_lines(entry)
        if kodak and _paper(entry["config"], "fix-q") and _paper(entry["config"], "fix-bpp"):
            lines += [PAPER_CAVEAT, ""]
        lines += [f"Past the paper, RD curves over qualities {','.join(map(str, rd['config']['qualities']))} "
                  f"(hiding+D: the E/D pair applied at every quality; the project's target: BD-rate "
                  f"{TARGET_BD_RATE:+.0f}% or better against the codec alone within {lo}-{hi} bpp):", ""]
        lines += target_lines(rd) or ["- no hiding+D curve (no hiding model for this codec)"]
        wide = standard_file_target_lines(rd)
        if wide:
            lo2, hi2 = rd["config"]["wide_window_bpp"]
            lines += ["", f"Against what a user would use instead (the standard-file targets, within {lo2}-{hi2} bpp; "
                      "'plain viewer': the hiding file decoded by Pillow without D, as anyone without carkit "
                      "sees it):", "", *wide]
        lines += ["", *points_table(rd), "", "Bjontegaard deltas (PCHIP, overlapping range; negative BD-rate = "
                  "fewer bits for the same quality):", "", *_bd_lines(rd), "",
                  "Quality at equal bpp (positive = the method is better):", "", *equal_rate_lines(rd), "",
                  *timing_lines(entry)]
    return "\n".join(lines).rstrip()


def _stem(payload: dict) -> str:
    return f"{dataset_name(payload, 'data')}_{payload['config']['mode']}"


def _tag(payload: dict) -> str:
    tag = payload["config"].get("tag")
    return f"_{tag}" if tag else ""


def figure_path(payload: dict, codec: str) -> str:
    """Where one codec's RD figure lives, relative to docs/."""
    return f"figures/hiding_rd_{_stem(payload)}_{codec}{_tag(payload)}.png"


def result_path(results_dir: str | os.PathLike, payload: dict) -> Path:
    """JPEG's file keeps the plain name; any other codec set gets its own file
    (``hiding_kodak_color_jpeg2000.json``), so a codec benched later (its pair
    trained later) does not overwrite the others' tables and provenance. A
    tagged measurement (``--tag``) has its own file too: a pair trained later
    is measured against the codec and the codec + restorer without
    re-running every older pair (a full JPEG bench takes hours on CPU)."""
    codecs = list(payload["config"]["codecs"])
    suffix = "" if codecs == ["jpeg"] else "_" + "-".join(codecs)
    return Path(results_dir) / f"hiding_{_stem(payload)}{suffix}{_tag(payload)}.json"


def plot_rd(payload: dict, codec: str, out: str | os.PathLike) -> Path:
    """One codec's RD curves (the two-panel plot ``bench vcodec`` draws too)."""
    rd = payload["codecs"][codec]["rd"]
    lo, hi = rd["config"]["window_bpp"]
    title = (f"Residual hiding with {codec} on {dataset_name(payload, '?')} ({payload['config']['mode']}; "
             f"shaded: {lo}-{hi} bpp)")
    return plot_rd_curves({**rd, "provenance": payload["provenance"]}, out, title=title)


def write_figures(payload: dict, folder: str | os.PathLike) -> list[Path]:
    return [plot_rd(payload, c, Path(folder) / Path(figure_path(payload, c)).name) for c in payload["codecs"]]


def command_line(payload: dict) -> str:
    """The ``carkit bench hiding`` command that measures this payload."""
    cfg = payload["config"]
    cmd = f"carkit bench hiding --data {cfg['data']} --codecs {','.join(cfg['codecs'])}"
    cmd += f" --models {','.join(cfg['models']) or chr(39) * 2}" if cfg["models"] is not None else ""
    cmd += f" --runs {' '.join(cfg['runs'])}" if cfg["runs"] else ""
    cmd += f" --restorer {cfg['restorer'] or chr(39) * 2}"
    for key, flag in (("quality", "--quality"), ("fixq_quality", "--fixq-quality"), ("limit", "--limit")):
        cmd += f" {flag} {cfg[key]}" if cfg.get(key) is not None else ""
    cmd += f" --sweep {','.join(map(str, cfg['sweep']))}" if cfg.get("sweep") else ""
    if list(cfg["window_bpp"]) != list(DEFAULT_WINDOW):
        cmd += f" --window {cfg['window_bpp'][0]},{cfg['window_bpp'][1]}"
    if cfg.get("wide_window_bpp") and list(cfg["wide_window_bpp"]) != list(WIDE_WINDOW):
        cmd += f" --wide-window {cfg['wide_window_bpp'][0]},{cfg['wide_window_bpp'][1]}"
    cmd += f" --timing-images {cfg['timing_images']}" if cfg.get("timing_images") is not None else ""
    cmd += f" --refine {cfg['refine']}" if cfg.get("refine") else ""
    cmd += f" --threads {cfg['threads']}" if cfg.get("threads") else ""
    cmd += f" --tag {cfg['tag']}" if cfg.get("tag") else ""
    return cmd


#: the report's intro paragraph of the section
INTRO = ("The Residual hiding paper (section 4.2.1, Table 2) compares its two training strategies with the codec "
         "alone and with DnCNN and MemNet trained on the same data, under Fix-Q (baselines at the higher quality "
         "whose mean bpp matches the hiding output's) and Fix-BPP (everyone at the training quality; the hiding "
         "output then has more bits). Here the same rows from real files, beside the paper's Kodak numbers, then "
         "full RD curves: the codec alone, the codec + a restorer (its curve names it; `default`: what `carkit "
         "restore` does to each file), and hiding+D at every quality; for "
         "JPEG also what a user would use instead (jpegli, jpegli + the restorer) and the hiding files as an "
         "ordinary viewer shows them (decoded by Pillow, no D), with encode and decode times per megapixel.")


def report_section(payload: dict) -> list[str]:
    """The RESULTS.md section of one result: command, figures, tables, provenance."""

    cfg = payload["config"]
    figures = [f"![RD curves, {c}]({figure_path(payload, c)})" for c in payload["codecs"]]
    tag = f", {cfg['tag']}" if cfg.get("tag") else ""
    return [f"### {', '.join(payload['codecs'])} on {dataset_name(payload, '?')} ({cfg['mode']}, "
            f"{len(payload['images'])} images{tag})", "",
            f"Command: `{command_line(payload)}`", "", *figures, "",
            *format_hiding_tables(payload).splitlines(), "",
            f"Provenance: {provenance_line(payload['provenance'])}", ""]


# ------------------------------------------------------------------ command line


def add_bench_hiding_arguments(parser) -> None:
    """The argparse options of ``carkit bench hiding``."""
    parser.add_argument("--data", default="eval/kodak", help="image folder, or a name under the data root "
                                                             "(default eval/kodak)")
    parser.add_argument("--codecs", default="jpeg", help=f"comma-separated codecs (configured: {', '.join(CODECS)}; "
                                                         "default jpeg)")
    parser.add_argument("--models", help="comma-separated zoo hiding models and DnCNN/MemNet baselines (default: "
                                         "every one in the zoo; '' for none)")
    parser.add_argument("--runs", nargs="+", help="training-run folders of hiding models or DnCNN/MemNet baselines")
    parser.add_argument("--restorer", help="zoo artifact remover of the codec + restorer curve (default: "
                                           "what carkit restore does to each file; '' for none)")
    parser.add_argument("--quality", type=int, help="Table 2's quality for every codec (default: the codec's "
                                                    "config, 50 for JPEG)")
    parser.add_argument("--fixq-quality", type=int, help="Fix-Q baselines' quality instead of the bpp-matched one "
                                                         "(e.g. the paper's 62 before hiding models exist)")
    parser.add_argument("--sweep", help="RD curves' qualities for every codec (default: the codec's config)")
    parser.add_argument("--tag", help="a name for this measurement's own result file and figures (e.g. a new "
                                      "pair with --models, beside the codec's full table)")
    parser.add_argument("--wide-window", default=",".join(map(str, WIDE_WINDOW)),
                        help="second bpp window of the BD-rates (default: the standard-file targets' "
                             f"{WIDE_WINDOW[0]},{WIDE_WINDOW[1]})")
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS",
                        help="also each pair's files refined for STEPS steps (carkit encode --refine; JPEG "
                             "carriers), curves named 'NAME, refine STEPS'")
    parser.add_argument("--timing-images", type=int,
                        help="time encode and decode per megapixel on the first N images (default: all; 0: no "
                             "timing)")

    add_run_arguments(parser, DEFAULT_WINDOW, "first N images only")


def hiding_label(name: str) -> str:
    """The RD curve (and comparison) name of a hiding model."""
    return f"hiding+D ({name})"


def main_bench_hiding(args) -> int:
    """Entry for an argparse namespace built with ``add_bench_hiding_arguments``
    (``args.data`` already resolved to a folder)."""
    window = threads_and_window(args)
    try:
        wide = tuple(float(v) for v in args.wide_window.split(","))
    except ValueError:
        wide = ()
    if len(wide) != 2 or not 0 < wide[0] < wide[1]:
        raise UsageError(f"--wide-window needs two rates low,high, got {args.wide_window!r}")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models is not None else None
    payload = bench_hiding(args.data, [c.strip() for c in args.codecs.split(",") if c.strip()], models,
                           args.runs or (), args.restorer, parse_ints(args.sweep), args.quality, args.fixq_quality,
                           window, args.limit, progress=not args.no_progress, tag=args.tag, wide_window=wide,
                           timing_images=args.timing_images, refine=args.refine)
    path = write_result(result_path(args.results, payload), payload)
    print(format_hiding_tables(payload))
    if args.figures:
        for fig in write_figures(payload, args.figures):
            print(f"wrote {fig}")
    print(f"wrote {path}")
    return 0


__all__ = ["CODECS", "CodecConfig", "DEFAULT_WINDOW", "TARGET_BD_RATE", "bench_hiding", "match_quality",
           "find_methods", "format_hiding_tables", "report_section", "figure_path", "result_path", "plot_rd",
           "write_figures", "add_bench_hiding_arguments", "main_bench_hiding", "command_line", "INTRO",
           "hiding_label", "plain_label", "time_per_mp",
           "WIDE_WINDOW", "standard_file_target_lines", "timing_lines"]
