"""carkit command line: restore | encode | decode | bench | train | zoo.

Library code raises typed errors; only this module turns them into one-line
messages and exit codes, the same for every command: 0 ok, 1 some inputs
failed, 2 usage error (bad options, unknown model; nothing was tried).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import CarkitError, UsageError


def _cmd_train(args) -> int:
    from .training.engine import train
    from .training.recipe import load_recipe

    recipe = load_recipe(args.recipe, iterations=args.iterations, data_root=args.data_root,
                         threads=args.threads)
    summary = train(recipe, args.out, resume=not args.restart, max_steps=args.max_steps, runs_root=args.runs_root)
    print(f"{recipe.name}: step {summary['step']}/{summary['iterations']} in {summary['out_dir']}")
    return 0


def _restore_worker_init(model, device, tile, threads, max_pixels, precision="auto"):
    """Each --jobs worker: its own restorer and its share of the threads."""
    import torch

    from .restoration.restorer import Restorer

    torch.set_num_threads(threads)
    if max_pixels:
        os.environ["CARKIT_MAX_PIXELS"] = str(max_pixels)
    global _WORKER_RESTORER
    _WORKER_RESTORER = Restorer(model=model, device=device, tile=tile, precision=precision)


_WORKER_RESTORER = None


def _restore_worker(src, dst, explain, options):
    from .restoration.restorer import restore_to_record

    return restore_to_record(_WORKER_RESTORER, src, dst, explain=explain, options=options)[0]


def _cmd_restore(args) -> int:
    import json

    from tqdm import tqdm

    from .errors import UsageError
    from .restoration.restorer import (OutputOptions, Restorer, collect_inputs, output_paths,
                                    restore_to_record)

    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    stdin_input = args.inputs == ["-"]
    if "-" in args.inputs and not stdin_input:
        raise UsageError("'-' (standard input) must be the only input")
    if args.output == "-" and args.json:
        raise UsageError("--json prints to standard output, which -o - already uses for the image")
    if stdin_input:
        files, outputs = ["-"], [args.output]
    else:
        paths = collect_inputs(args.inputs, recursive=args.recursive)
        if not paths:
            raise UsageError("no JPEG files found in " + ", ".join(args.inputs))
        if args.output == "-" and len(paths) > 1:
            raise UsageError("-o - (standard output) takes one input")
        files = [str(p) for p in paths]
        outputs = [str(p) for p in output_paths(paths, args.inputs, args.output)]
    options = OutputOptions(quality=args.output_quality, strip_metadata=args.strip_metadata, force=args.force)
    from .io import output_format

    output_format(outputs[0], options.quality)  # a usage error before any model is loaded
    import torch

    threads = args.threads or torch.get_num_threads()
    jobs = min(args.jobs, len(files))
    restorer = Restorer(model=args.model, device=args.device, tile=args.tile,  # checks the options once
                        precision=args.precision)
    many = len(files) > 1
    bar = tqdm(total=len(files), desc="restore", unit="img", disable=None if many else True)
    records = []

    def report(record) -> None:
        for w in record.warnings:
            bar.write(f"carkit: warning: {w}", file=sys.stderr)
        if record.error:
            bar.write(f"carkit: error: {record.error}", file=sys.stderr)
        elif args.explain and not args.json:
            bar.write(f"{record.input}: {record.explain} -> {record.output}", file=sys.stderr if args.output == "-" else sys.stdout)
        if args.json:
            bar.write(json.dumps(record.as_dict()), file=sys.stdout)
        records.append(record)
        bar.update(1)

    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        per_job = max(1, threads // jobs)
        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_restore_worker_init,
                                 initargs=(args.model, args.device, args.tile, per_job,
                                           os.environ.get("CARKIT_MAX_PIXELS"), args.precision)) as pool:
            futures = [pool.submit(_restore_worker, f, o, args.explain, options) for f, o in zip(files, outputs)]
            for future in futures:
                report(future.result())
    else:
        torch.set_num_threads(threads)
        stdin = sys.stdin.buffer.read() if stdin_input else None
        for src, dst in zip(files, outputs):
            tiles = None
            if not many and dst != "-":
                tiles = tqdm(desc="tiles", unit="tile", disable=None, leave=False)
            record, data = restore_to_record(restorer, src, dst, explain=args.explain, options=options,
                                             stdin=stdin, progress=None if tiles is None else tiles.update)
            if tiles is not None:
                tiles.close()
            if data is not None:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            report(record)
    bar.close()
    failures = [r for r in records if r.error]
    if failures:
        print(f"carkit: {len(failures)} of {len(records)} file(s) failed:", file=sys.stderr)
        for r in failures:
            print(f"  {r.input}", file=sys.stderr)
        return 1
    if many and not args.json:
        print(f"restored {len(records)} file(s) into {args.output}", file=sys.stderr)
    return 0


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


#: Output suffixes each codec's bytes may be written under (its extension's usual spellings).
_SUFFIXES = {".jpg": (".jpg", ".jpeg", ".jpe", ".jfif"), ".heic": (".heic", ".heif", ".hif"),
             ".j2k": (".j2k", ".j2c"), ".jp2": (".jp2",)}
#: ``carkit encode`` without --method: the standard codec the output's suffix names.
_METHOD_BY_SUFFIX = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg", ".webp": "webp",
                     ".avif": "avif", ".heic": "heif", ".heif": "heif", ".hif": "heif", ".jp2": "jpeg2000",
                     ".j2k": "jpeg2000", ".j2c": "jpeg2000", ".bcnn": "blockcnn", ".ckfp": "factorized"}


def canonical_name_or_none(method: str) -> str | None:
    from .codecs.registry import canonical_name

    try:
        return canonical_name(method)
    except CarkitError:
        return None


def _cmd_encode(args) -> int:
    import warnings

    from .api import checked_quality, encoder
    from .io import check_output_path, read_image, write_bytes

    checked_quality(args.quality)
    src, dst = Path(args.input), Path(args.output)
    check_output_path(src, dst, args.force)
    suffix = dst.suffix.lower()
    method = args.method or _METHOD_BY_SUFFIX.get(suffix)
    if method is None:
        raise UsageError(f"{dst}: cannot tell the codec from {suffix or 'no suffix'!r}; name one with "
                         f"--method, or write {', '.join(sorted(set(_METHOD_BY_SUFFIX)))}")
    options = {"jp2": True} if canonical_name_or_none(method) == "jpeg2000" and suffix == ".jp2" else {}
    if args.strength is not None:
        options["strength"] = args.strength
    if args.refine is not None:
        options["refine"] = args.refine
    codec = encoder(method, model=args.model, codec=args.codec, **options)
    method = codec.name
    allowed = _SUFFIXES.get(codec.extension, (codec.extension,))
    if suffix not in allowed:
        raise UsageError(f"{dst}: --method {method} writes {codec.extension} files; name the output "
                         f"{' or '.join('*' + a for a in allowed)}")
    image = read_image(src)
    if image.alpha is not None:
        warnings.warn(f"{src}: the alpha channel is not coded", stacklevel=1)
    _set_threads(args.threads)
    from tqdm import tqdm

    refine = getattr(codec, "refine", 0)   # hiding's refinement steps: minutes on a large image, so a bar
    with tqdm(total=refine, desc="refine", unit="step", leave=False, disable=None if refine else True) as bar:
        if refine:
            codec.progress = bar.update
        try:
            data = codec.encode(image.pixels, args.quality)
        except ValueError as exc:
            raise CarkitError(f"{src}: {exc}") from exc
    write_bytes(dst, data)
    h, w = image.pixels.shape[:2]
    print(f"{dst}: {len(data)} bytes, {8 * len(data) / (h * w):.4f} bpp ({method}, quality {args.quality})")
    return 0


def _cmd_decode(args) -> int:
    from .api import decode_file
    from .io import check_output_path, encode_image, output_format, write_bytes

    src, dst = Path(args.input), Path(args.output)
    name = "<stdin>" if args.input == "-" else str(src)
    if args.output != "-":
        check_output_path(None if args.input == "-" else src, dst, args.force)
    fmt, save = output_format(args.output, args.output_quality)  # usage errors before any work
    if args.input != "-" and not src.is_file():
        raise CarkitError(f"{src}: no such file")
    data = sys.stdin.buffer.read() if args.input == "-" else src.read_bytes()
    _set_threads(args.threads)
    decoded = decode_file(data, name, method=args.method, restore=args.restore)
    if decoded.note and decoded.kind == "jpeg-restored":
        print(f"carkit: {name}: {decoded.note}", file=sys.stderr)
    pixels, metadata = decoded.pixels, decoded.metadata
    out = encode_image(pixels, fmt, metadata=None if args.strip_metadata else metadata, name=str(dst), **save)
    if args.output == "-":
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
        return 0
    write_bytes(dst, out)
    print(f"{dst}: {pixels.shape[1]}x{pixels.shape[0]} {'gray' if pixels.ndim == 2 else 'RGB'}")
    return 0


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3].rsplit(" ", 1)[0] + " ..."


def _cmd_zoo_list(args) -> int:
    from .zoo.registry import list_weights, weights_record

    records = [weights_record(n) for n in list_weights()]
    if args.role:
        roles = sorted({r.role.value for r in records})
        if args.role not in roles:
            raise UsageError(f"unknown role {args.role!r}; roles: {', '.join(roles)}")
        records = [r for r in records if r.role == args.role]
    if not records:
        print("no shipped weights" + (f" with role {args.role}" if args.role else ""))
        return 0
    rows = [("name", "role", "input", "codec", "QF", "image", "MB", "trained", "description")]
    for r in records:
        size = r.path.stat().st_size / 1e6 if r.path.exists() else 0.0
        lo, hi = r.qualities
        rows.append((r.name, r.role.value, r.input.value, r.codec, f"{lo}" if lo == hi else f"{lo}-{hi}",
                     "gray" if r.gray else "color", f"{size:.1f}", f"{r.budget_seconds / 3600:.1f} h",
                     _shorten(r.description, 72)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    print(f"\n{len(records)} weights; `carkit zoo show NAME` prints one record in full; measured results: "
          "docs/RESULTS.md")
    return 0


def _cmd_zoo_show(args) -> int:
    import json

    from .zoo.registry import weights_record

    record = weights_record(args.name)
    data = record.to_dict()
    data = {"name": data.pop("name"), "model": data.pop("model"), "family": record.family, **data}
    data["file"] = str(record.path)
    print(json.dumps(data, indent=1, sort_keys=False, default=str))
    return 0


def _resolve_data(path: str) -> str:
    """A folder as given, or else relative to the shared data root (eval/kodak)."""
    if Path(path).is_dir():
        return path
    from .training.recipe import default_data_root

    candidate = default_data_root() / path
    if candidate.is_dir():
        return str(candidate)
    raise UsageError(f"{path}: no such data folder (also looked in {default_data_root()})")


def _split(value: str | None, cast=str) -> list | None:
    return None if value is None else [cast(v) for v in value.split(",") if v.strip()]


def _double_arg(value: str | None) -> tuple[int, int] | None:
    """``--double Q1[:SHIFT]`` as (first quality, grid shift in pixels)."""
    if not value:
        return None
    first, _, shift = value.partition(":")
    try:
        pair = int(first), int(shift or 0)
    except ValueError:
        raise UsageError(f"--double {value}: expected Q1 or Q1:SHIFT, e.g. 30:4") from None
    if not (1 <= pair[0] <= 100 and 0 <= pair[1] <= 7):
        raise UsageError(f"--double {value}: the first quality is 1..100 and the shift 0..7 pixels")
    return pair


def _cmd_bench_restore(args) -> int:
    from .bench.restore_bench import DEFAULT, run_restore_bench
    from .zoo.registry import list_weights, weights_record

    models = _split(args.models) if args.models is not None else None
    if models is None:  # every shipped restorer (predictors are not)
        models = [] if args.runs else [m for m in list_weights() if weights_record(m).kind in ("restorer", "kspace")]
    for m in models:
        if m != DEFAULT and weights_record(m).kind not in ("restorer", "kspace"):
            raise UsageError(f"{m} is a {weights_record(m).kind}, not an artifact remover")
    data = [_resolve_data(d) for d in args.data]
    gray = True if (args.gray or args.plane != "y") else None
    paths = run_restore_bench(data, models, _split(args.qualities, int), gray=gray,
                              limit=args.limit, results_dir=args.results,
                              threads=args.threads, runs=args.runs or (), tag=args.tag or "",
                              plane=args.plane, crop=args.crop, double=_double_arg(args.double),
                              codec=args.codec)
    for p in paths:
        print(f"wrote {p}")
    return 0


def _cmd_bench_codecs(args) -> int:
    from .bench.codec_bench import main_bench_codecs

    args.data = _resolve_data(args.data)
    return main_bench_codecs(args)


def _cmd_bench_qf(args) -> int:
    from .bench.qf_bench import run_qf_bench

    real = _resolve_data(args.real) if args.real else None
    path = run_qf_bench(args.model, real, [_resolve_data(d) for d in args.data], _split(args.qualities, int),
                        args.limit, args.results)
    print(f"wrote {path}")
    return 0


def _cmd_bench_blockcnn(args) -> int:
    from .bench.blockcnn_bench import bench_blockcnn, default_out, format_blockcnn_tables
    from .bench.results import write_result

    _set_threads(args.threads)
    data = _resolve_data(args.data)
    window = tuple(_split(args.window, float))
    if len(window) != 2:
        raise UsageError(f"--window needs two rates, got {args.window!r}")
    payload = bench_blockcnn(data, _split(args.qualities, int), args.predictor, args.restorer, args.limit,
                             args.verify, window, args.at_bpp)
    path = write_result(Path(args.results) / default_out(data).name, payload)
    print(format_blockcnn_tables(payload))
    print(f"\nwrote {path}")
    return 0


def _cmd_bench_vcodec(args) -> int:
    from .bench.vcodec_bench import main_bench_vcodec

    args.data = [_resolve_data(d) for d in args.data]
    return main_bench_vcodec(args)


def _cmd_bench_hiding(args) -> int:
    from .bench.hiding_bench import main_bench_hiding

    args.data = _resolve_data(args.data)
    return main_bench_hiding(args)


def _cmd_bench_complexity(args) -> int:
    from .bench.complexity_bench import run_complexity_bench
    from .zoo.registry import list_weights, weights_record

    models = _split(args.models) if args.models else list_weights()
    for m in models:
        weights_record(m)
    path = run_complexity_bench(models, _split(args.architectures) or [], args.size, args.repeats,
                                args.threads, args.results)
    print(f"wrote {path}")
    return 0


def _cmd_bench_speed(args) -> int:
    from .bench.speed_bench import run_speed_bench

    image = args.image if Path(args.image).is_file() else str(_data_file(args.image))
    path = run_speed_bench(image, _split(args.models) or [], _split(args.architectures) or [], args.quality,
                           args.repeats, args.threads, args.precision, args.results, args.tag or "")
    print(f"wrote {path}")
    return 0


def _data_file(path: str) -> Path:
    from .training.recipe import default_data_root

    candidate = default_data_root() / path
    if not candidate.is_file():
        raise UsageError(f"{path}: no such image (also looked in {default_data_root()})")
    return candidate


def _cmd_bench_report(args) -> int:
    from .bench.report import write_report

    print(f"wrote {write_report(args.results, args.out)}")
    return 0


def _cmd_zoo_export(args) -> int:
    from .training.export import export_run

    record = export_run(args.run, args.name, description=args.description or "", part=args.part,
                        runs_root=args.runs_root, folder=args.to)
    print(f"exported {args.run} as {record.name} (sha256 {record.sha256[:12]}, {record.training['steps']} steps)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="carkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"carkit {__version__}")
    parser.add_argument("--max-pixels", type=int, metavar="N",
                        help="largest image (in pixels) carkit opens (default 128000000; also $CARKIT_MAX_PIXELS)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a recipe (resumes from its last checkpoint)")
    p.add_argument("recipe", help="recipe TOML file (see recipes/)")
    p.add_argument("--out", help="run folder (default RUNS_ROOT/NAME)")
    p.add_argument("--runs-root", default="runs",
                   help="folder of run folders: the default output, and where init_from run paths point (default ./runs)")
    p.add_argument("--iterations", type=int, help="override the recipe's total iterations")
    p.add_argument("--max-steps", type=int, help="stop this invocation after N steps (resume later)")
    p.add_argument("--data-root", help="folder holding train/ and val/ (default ../shared/data)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("restore", help="restore JPEG files with a zoo model (lossless output, metadata kept)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="JPEG files, folders of JPEGs, or - (standard input)")
    p.add_argument("-o", "--output", required=True,
                   help="output image (one input; its suffix picks the format: .png, .webp, .tif lossless; "
                        ".jpg or lossy .webp need --output-quality), - for standard output (PNG), or a folder "
                        "(receives STEM.png per input)")
    p.add_argument("--model", help="zoo model to use (default: chosen per image; see `carkit zoo list`)")
    p.add_argument("--explain", action="store_true", help="print the quality read from the file, the model's own estimate and the model used")
    p.add_argument("--output-quality", type=int, metavar="Q",
                   help="write a lossy output (.jpg, .webp) at this quality 1..100 (re-adds some artifacts)")
    p.add_argument("--strip-metadata", action="store_true",
                   help="drop the input's ICC profile, EXIF, XMP and DPI (kept by default)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("-r", "--recursive", action="store_true", help="also take JPEGs in subfolders of folder inputs")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="worker processes for several files (the threads are divided between them)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON record per file (input, output, quality, model, seconds, error)")
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels (multiple of 16, at least 64)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 with channels_last where the CPU computes bf16 natively (AMX), else fp32")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, mps)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser("encode", help="compress an image with a registered codec (standard or learned)")
    p.add_argument("input", help="image file (PNG, JPEG, ...)")
    p.add_argument("output", help="compressed file to write; its suffix must fit the method (out.jpg, out.bcnn, ...)")
    from .codecs.registry import list_codecs

    p.add_argument("--method",
                   help=f"registered codec: {', '.join(list_codecs())}. Default: the standard codec the "
                        "output's suffix names (.jpg JPEG, .webp WebP, .avif, .heic, .jp2): a file every viewer "
                        "opens, written in well under a second. The learned methods (hiding, vcnn, blockcnn, "
                        "factorized) take seconds to minutes per megapixel on a CPU, so they are asked for by name "
                        "(.bcnn and .ckfp outputs name theirs)")
    p.add_argument("-q", "--quality", type=int, required=True, help="quality 1..100")
    p.add_argument("--model", help="blockcnn: zoo predictor (default blockcnn-predictor); "
                   "vcnn: zoo FDNN/PPNN pair (default: the one trained nearest the quality); "
                   "hiding: zoo E/D pair (default: the one trained for --codec nearest the quality)")
    p.add_argument("--codec", help="hiding: the standard codec that carries the image (default jpegli, whose "
                                   "pair measures best; jpeg is libjpeg-turbo)")
    p.add_argument("--strength", type=float, metavar="S",
                   help="hiding: the share of the encoder's change the file carries, 0..1 (default: the pair's "
                        "measured value, 0.75 for the jpegli pair); lower looks more like the original in an "
                        "ordinary viewer, decoding needs no setting")
    p.add_argument("--refine", type=int, metavar="STEPS",
                   help="hiding: refine the coded image for STEPS steps through the codec and the decoder network "
                        "(JPEG carriers; default 0, off): a better decode for about the same bytes, each step "
                        "costing two to three decodes (5 steps: about 25x the encode time); files decode as usual")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("decode", help="decode a .bcnn file, a virtual-codec or residual-hiding JPEG (or any "
                       "image Pillow reads) to an image file")
    p.add_argument("input", help=".bcnn or .ckfp file (detected by its magic), a virtual-codec or residual-hiding "
                   "JPEG (by its marker), any standard image (JPEG, PNG, WebP, AVIF, HEIF, JPEG 2000), or - (stdin)")
    p.add_argument("--method", choices=("auto", "hiding"), default="auto",
                   help="auto (default): by the file's magic or marker; hiding: a JPEG without the "
                        "residual-hiding marker is restored by the best blind zoo restorer instead (and says so)")
    p.add_argument("-o", "--output", required=True,
                   help="image to write, format by its suffix (.png, .webp, .tif; .jpg with --output-quality), "
                        "or - for standard output (PNG)")
    p.add_argument("--output-quality", type=int, metavar="Q", help="write a lossy output (.jpg, .webp) at this quality")
    p.add_argument("--strip-metadata", action="store_true", help="drop the ICC profile, EXIF, XMP and DPI")
    p.add_argument("--restore", metavar="MODEL", help="zoo artifact remover applied after decoding")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("bench", help="measure restorers and codecs; write results and docs/RESULTS.md")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    b = bsub.add_parser("restore", help="JPEG vs zoo restorers on evaluation sets")
    b.add_argument("--data", nargs="+", required=True,
                   help="image folders, or names under the data root (eval/live1_gray eval/classic5)")
    b.add_argument("--models", help="comma-separated zoo names, or default (what carkit restore does to each file) "
                                    "(default: every shipped model, or none with --runs)")
    b.add_argument("--runs", nargs="+", help="training-run folders to score with their final EMA weights "
                                             "(e.g. ablation variants that are not shipped)")
    b.add_argument("--tag", help="suffix of the result file name (e.g. ablation), so other results are kept")
    b.add_argument("--qualities", default="10,20,30,40", help="comma-separated JPEG qualities")
    b.add_argument("--gray", action="store_true", default=None, help="score color sets as MATLAB-Y gray")
    b.add_argument("--plane", choices=("y", "green"), default="y",
                   help="gray plane of color sets: MATLAB Y, or the green channel (HR-CNN's protocol)")
    b.add_argument("--crop", type=int, default=0,
                   help="score every whole non-overlapping CROPxCROP tile instead of whole images "
                        "(HR-CNN's Table I: 128)")
    b.add_argument("--codec", choices=("jpeg", "jpegli"), default="jpeg",
                   help="the encoder of the benchmark's JPEGs: jpeg (libjpeg-turbo, PROTOCOL.md) or jpegli; "
                        "use with --tag")
    b.add_argument("--double", metavar="Q1[:SHIFT]",
                   help="compress twice: JPEG at Q1, crop SHIFT pixels (0-7) at top and left to move the "
                        "8x8 grid, then JPEG at each --qualities (FBCNN's double JPEG); use with --tag")
    b.add_argument("--limit", type=int, help="first N images only")
    b.add_argument("--results", default="results", help="folder for result JSON files")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.set_defaults(func=_cmd_bench_restore)
    b = bsub.add_parser("codecs", help="rate-distortion of the standard codecs")
    from .bench.codec_bench import add_bench_codecs_arguments

    add_bench_codecs_arguments(b)
    b.set_defaults(func=_cmd_bench_codecs)
    b = bsub.add_parser("qf", help="a model's own JPEG quality estimate vs the quality in the file's tables")
    b.add_argument("--model", default="dagn-small", help="zoo model with a quality predictor")
    b.add_argument("--real", default="jpeg/real", help="folder of real JPEG files ('' to skip)")
    b.add_argument("--data", nargs="*", default=["eval/live1_color"],
                   help="image folders compressed here at --qualities")
    b.add_argument("--qualities", default="10,20,30,40,50,60,70,80,90,95")
    b.add_argument("--limit", type=int, help="first N images of each --data folder")
    b.add_argument("--results", default="results")
    b.set_defaults(func=_cmd_bench_qf)
    b = bsub.add_parser("complexity", help="parameters, MACs and CPU time per 512x512 image (DAGN Table III)")
    b.add_argument("--models", help="comma-separated zoo names (default: every shipped model)")
    b.add_argument("--architectures", default="dagn",
                   help="registry architectures to count untrained, e.g. the paper-size dagn ('' for none)")
    b.add_argument("--size", type=int, default=512)
    b.add_argument("--repeats", type=int, default=5, help="timed runs per zoo model (median is reported)")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.add_argument("--results", default="results")
    b.set_defaults(func=_cmd_bench_complexity)
    b = bsub.add_parser("blockcnn", help="BlockCNN codec and artifact removal vs JPEG: RD curves, "
                                          "BD-rate, Fig. 10 combinations, speed")
    b.add_argument("--data", default="eval/kodak", help="image folder (default eval/kodak, the paper's)")
    b.add_argument("--qualities", default="5,10,20,30,60",
                   help="comma-separated qualities (default: Kodak 0.2-1.0 bpp in JPEG)")
    b.add_argument("--predictor", default="blockcnn-predictor", help="zoo predictor of the codec")
    b.add_argument("--restorer", default="blockcnn-color", help="zoo artifact remover after decoding")
    b.add_argument("--limit", type=int, help="first N images only")
    b.add_argument("--verify", type=int,
                   help="images also decoded from their bytes, each at one quality in turn (timed, must "
                        "match exactly; default: all)")
    b.add_argument("--window", default="0.15,0.6", help="bpp window of the windowed BD-rate")
    b.add_argument("--at-bpp", type=float, default=0.45, help="rate of the four-combinations table")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.add_argument("--results", default="results")
    b.set_defaults(func=_cmd_bench_blockcnn)
    b = bsub.add_parser("vcodec", help="virtual codec vs JPEG, JPEG + restorer and Jiang et al. at very low "
                                        "rates: RD curves, BD-rates, equal-rate gains (Zhao et al. 2017)")
    from .bench.vcodec_bench import add_bench_vcodec_arguments

    add_bench_vcodec_arguments(b)
    b.set_defaults(func=_cmd_bench_vcodec)
    b = bsub.add_parser("hiding", help="residual hiding vs the codec alone, DnCNN and MemNet (the paper's Table 2, "
                                        "Fix-Q and Fix-BPP), then RD curves and BD-rates")
    from .bench.hiding_bench import add_bench_hiding_arguments

    add_bench_hiding_arguments(b)
    b.set_defaults(func=_cmd_bench_hiding)
    b = bsub.add_parser("speed", help="restore one ~2 MP color 4:2:0 JPEG end to end: seconds per MP beside the "
                                       "plain decode and DnCNN-3 (fp32, luma only), in one run")
    from .bench.speed_bench import DEFAULT_IMAGE

    b.add_argument("--image", default=DEFAULT_IMAGE, help=f"the photograph (default {DEFAULT_IMAGE} under the data root)")
    b.add_argument("--quality", type=int, default=50, help="JPEG quality it is coded at (4:2:0)")
    b.add_argument("--models", default="dagn-small", help="comma-separated zoo restorers (DnCNN-3 is always timed)")
    b.add_argument("--architectures", default="", help="registry models timed untrained (e.g. jpegnet)")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.add_argument("--tag", help="suffix of the result file name")
    b.add_argument("--results", default="results")
    b.set_defaults(func=_cmd_bench_speed)
    b = bsub.add_parser("report", help="regenerate docs/RESULTS.md from result files")
    b.add_argument("--results", default="results")
    b.add_argument("--out", default="docs/RESULTS.md")
    b.set_defaults(func=_cmd_bench_report)

    p = sub.add_parser("zoo", help="shipped weights")
    zsub = p.add_subparsers(dest="zoo_command", required=True)
    z = zsub.add_parser("list", help="a table of the shipped weights (name, role, qualities, size, gain)")
    z.add_argument("--role", help="only weights of this role (restorer, kspace, hiding, vcodec, learned-codec, "
                                  "predictor, codec-sim)")
    z.set_defaults(func=_cmd_zoo_list)
    z = zsub.add_parser("show", help="one weights record in full (JSON)")
    z.add_argument("name", help="zoo name (see `carkit zoo list`)")
    z.set_defaults(func=_cmd_zoo_show)
    z = zsub.add_parser("export", help="copy a training run's EMA weights into the package zoo")
    z.add_argument("run", help="run folder (holds last.safetensors, recipe.json, budget.json)")
    z.add_argument("name", help="zoo name for the weights")
    z.add_argument("--description", help="one line shown by `carkit zoo list`")
    z.add_argument("--part", help="ship one of the run's extra networks instead of its model "
                                  "(e.g. 'sim', a Strategy I codec simulator)")
    z.add_argument("--runs-root", help="where the run's init_from runs are (default: the folder holding RUN)")
    z.add_argument("--to", metavar="DIR", help="weights folder to write to (default: the package's zoo; "
                                               "weights/bench for a model still in training)")
    z.set_defaults(func=_cmd_zoo_export)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    # Library warnings (broken EXIF, odd MPO headers) as one line, not a source dump.
    print(f"carkit: warning: {str(message).splitlines()[0] if str(message) else category.__name__}",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    old_showwarning = warnings.showwarning
    warnings.showwarning = _one_line_warning
    old_limit = os.environ.get("CARKIT_MAX_PIXELS")
    try:
        if args.max_pixels is not None:
            if args.max_pixels < 1:
                raise UsageError(f"--max-pixels must be positive, got {args.max_pixels}")
            os.environ["CARKIT_MAX_PIXELS"] = str(args.max_pixels)  # env, so --jobs workers see it too
        return args.func(args)
    except CarkitError as exc:
        print(f"carkit: error: {exc}", file=sys.stderr)
        return 2 if _is_usage_error(exc) else 1
    except OSError as exc:   # a path that cannot be read or made (missing, a file in the way, a dangling link)
        print(f"carkit: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("carkit: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = old_showwarning
        if args.max_pixels is not None:
            if old_limit is None:
                os.environ.pop("CARKIT_MAX_PIXELS", None)
            else:
                os.environ["CARKIT_MAX_PIXELS"] = old_limit


def _is_usage_error(exc: CarkitError) -> bool:
    """Exit 2: the request was wrong (bad option, unknown model name), not an input."""
    from .errors import ModelError, WeightsError

    return isinstance(exc, UsageError) or (isinstance(exc, ModelError) and not isinstance(exc, WeightsError))


if __name__ == "__main__":
    sys.exit(main())
