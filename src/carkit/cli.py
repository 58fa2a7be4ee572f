"""carkit command line: restore | encode | decode | bench | train | zoo.

Library code raises typed errors; only this module turns them into one-line
messages and exit codes (0 ok, 1 some inputs failed, 2 usage/bad input).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import CarkitError


def _cmd_train(args) -> int:
    from .training.engine import train
    from .training.recipe import load_recipe

    recipe = load_recipe(args.recipe, iterations=args.iterations, data_root=args.data_root,
                         threads=args.threads)
    out = args.out or f"runs/{recipe.name}"
    summary = train(recipe, out, resume=not args.restart, max_steps=args.max_steps)
    print(f"{recipe.name}: step {summary['step']}/{summary['iterations']} in {out}")
    return 0


def _cmd_restore(args) -> int:
    from tqdm import tqdm

    from .pipelines.restore import Restorer, collect_inputs, output_paths, restore_file

    files = collect_inputs(args.inputs)
    if not files:
        raise CarkitError("no JPEG files found in " + ", ".join(args.inputs))
    outputs = output_paths(files, args.inputs, args.output)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    restorer = Restorer(model=args.model, device=args.device, tile=args.tile)
    failures: list[tuple[Path, str]] = []
    bar = tqdm(total=len(files), desc="restore", unit="img", disable=None if len(files) > 1 else True)
    for src, dst in zip(files, outputs):
        try:
            plan = restore_file(restorer, src, dst, explain=args.explain)
            if args.explain:
                bar.write(f"{src}: {plan.explain()} -> {dst}")
        except CarkitError as exc:
            msg = str(exc)
            failures.append((src, msg))
            bar.write(f"carkit: error: {msg}", file=sys.stderr)
        bar.update(1)
    bar.close()
    if failures:
        print(f"carkit: {len(failures)} of {len(files)} file(s) failed:", file=sys.stderr)
        for src, msg in failures:
            print(f"  {src}", file=sys.stderr)
        return 1
    if len(files) > 1:
        print(f"restored {len(files)} file(s) into {args.output}")
    return 0


def _check_output(src: Path, dst: Path, force: bool) -> None:
    """Never the input; an existing output only with --force (one-line errors)."""
    if dst.exists():
        if src.exists() and os.path.samefile(src, dst):
            raise CarkitError(f"{dst}: output would overwrite the input")
        if dst.is_dir():
            raise CarkitError(f"{dst}: is a folder, expected an output file")
        if not force:
            raise CarkitError(f"{dst}: already exists (use --force to overwrite)")


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _cmd_encode(args) -> int:
    import warnings

    from .codecs.registry import canonical_name, get_codec
    from .io import read_image, write_bytes

    if not 1 <= args.quality <= 100:
        raise CarkitError(f"quality must be an int in 1..100, got {args.quality}")
    src, dst = Path(args.input), Path(args.output)
    _check_output(src, dst, args.force)
    image = read_image(src)
    if image.alpha is not None:
        warnings.warn(f"{src}: the alpha channel is not coded", stacklevel=1)
    method = canonical_name(args.method)
    if args.codec and method != "hiding":
        raise CarkitError(f"--codec applies to --method hiding, not {method}")
    _set_threads(args.threads)
    if method == "hiding":
        from .pipelines.hiding_codec import HidingCodec

        codec = HidingCodec(codec=args.codec or "jpeg", model=args.model)
    elif method == "blockcnn":
        from .pipelines.blockcnn_codec import DEFAULT_MODEL, BlockCNNCodec

        codec = BlockCNNCodec(model=args.model or DEFAULT_MODEL)
    elif method == "vcnn":
        from .pipelines.vcodec_codec import VirtualCodecCodec

        codec = VirtualCodecCodec(model=args.model)
    elif args.model:
        raise CarkitError(f"--model applies to --method blockcnn, vcnn or hiding, not {method}")
    else:
        codec = get_codec(method)
    try:
        data = codec.encode(image.pixels, args.quality)
    except ValueError as exc:
        raise CarkitError(f"{src}: {exc}") from exc
    write_bytes(dst, data)
    h, w = image.pixels.shape[:2]
    print(f"{dst}: {len(data)} bytes, {8 * len(data) / (h * w):.4f} bpp ({method}, quality {args.quality})")
    return 0


def _cmd_decode(args) -> int:
    from .io import read_image_bytes, write_image
    from .pipelines.blockcnn_codec import decode_bcnn, is_bcnn
    from .pipelines.factorized_codec import FactorizedCodec, is_ckfp

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise CarkitError(f"{src}: no such file")
    _check_output(src, dst, args.force)
    data = src.read_bytes()
    _set_threads(args.threads)
    from .pipelines import hiding_codec
    from .pipelines.vcodec_codec import VirtualCodecCodec, read_marker

    hidden = hiding_codec.read_marker(data) is not None
    if args.restore and (hidden or args.method == "hiding"):
        raise CarkitError(f"{src}: a residual-hiding file is decoded by its own decoder; drop --restore")
    if args.method == "hiding" and not hidden:
        from .pipelines.restore import Restorer, restore_file

        plan = restore_file(Restorer(), src, dst)  # a plain JPEG: the blind restorer, as `carkit restore`
        print(f"carkit: {src}: {hiding_codec.fallback_note(plan)}", file=sys.stderr)
        print(f"{dst}: restored JPEG")
        return 0
    if hidden:
        pixels = hiding_codec.HidingCodec().decode_with_note(data)[0]
    elif is_bcnn(data):
        pixels = decode_bcnn(data, restore=args.restore)
    elif is_ckfp(data):
        if args.restore:
            raise CarkitError(f"{src}: --restore applies to .bcnn files, not to learned-codec files")
        pixels = FactorizedCodec().decode(data)
    elif read_marker(data) is not None:
        if args.restore:
            raise CarkitError(f"{src}: a virtual-codec file is decoded by its own post-processor; drop --restore")
        pixels = VirtualCodecCodec().decode(data)
    elif args.restore:
        raise CarkitError(f"{src}: not a .bcnn file; --restore applies to .bcnn files "
                          "(use `carkit restore` for JPEGs)")
    else:
        pixels = read_image_bytes(data, str(src)).pixels
    write_image(dst, pixels)
    print(f"{dst}: {pixels.shape[1]}x{pixels.shape[0]} {'gray' if pixels.ndim == 2 else 'RGB'}")
    return 0


def _cmd_zoo_list(args) -> int:
    from .zoo.registry import list_weights, weights_record

    names = list_weights()
    if not names:
        print("no shipped weights")
        return 0
    for name in names:
        r = weights_record(name)
        kind = "gray" if r.gray else "color"
        steps = r.training.get("steps", "?")
        hours = r.training.get("wall_seconds", 0) / 3600
        print(f"{name}  [{r.model}, {kind}, QF {r.qualities[0]}..{r.qualities[1]}, "
              f"{steps} steps, {hours:.1f} h]  {r.description}")
        for dataset, per_q in sorted(r.results.items()):
            cells = "  ".join(f"q{q[1:]}: {v['psnr']:.2f} dB ({v['gain_psnr']:+.2f})"
                              for q, v in sorted(per_q.items(), key=lambda kv: int(kv[0][1:])))
            print(f"    {dataset}: {cells}")
    return 0


def _resolve_data(path: str) -> str:
    """A folder as given, or else relative to the shared data root (eval/kodak)."""
    if Path(path).is_dir():
        return path
    from .training.recipe import default_data_root

    candidate = default_data_root() / path
    if candidate.is_dir():
        return str(candidate)
    raise CarkitError(f"{path}: no such data folder (also looked in {default_data_root()})")


def _split(value: str | None, cast=str) -> list | None:
    return None if value is None else [cast(v) for v in value.split(",") if v.strip()]


def _cmd_bench_restore(args) -> int:
    from .evaluation.restore_bench import run_restore_bench
    from .zoo.registry import list_weights, weights_record

    models = _split(args.models) if args.models is not None else None
    if models is None:  # every shipped restorer (predictors are not)
        models = [] if args.runs else [m for m in list_weights() if weights_record(m).kind in ("restorer", "kspace")]
    for m in models:
        if weights_record(m).kind not in ("restorer", "kspace"):
            raise CarkitError(f"{m} is a {weights_record(m).kind}, not an artifact remover")
    data = [_resolve_data(d) for d in args.data]
    gray = True if (args.gray or args.plane != "y") else None
    paths = run_restore_bench(data, models, _split(args.qualities, int), gray=gray,
                              limit=args.limit, results_dir=args.results, update_zoo=not args.no_update_zoo,
                              threads=args.threads, runs=args.runs or (), tag=args.tag or "",
                              plane=args.plane, crop=args.crop)
    for p in paths:
        print(f"wrote {p}")
    return 0


def _cmd_bench_codecs(args) -> int:
    from .evaluation.codec_bench import main_bench_codecs

    args.data = _resolve_data(args.data)
    return main_bench_codecs(args)


def _cmd_bench_qf(args) -> int:
    from .evaluation.qf_bench import run_qf_bench

    real = _resolve_data(args.real) if args.real else None
    path = run_qf_bench(args.model, real, [_resolve_data(d) for d in args.data], _split(args.qualities, int),
                        args.limit, args.results)
    print(f"wrote {path}")
    return 0


def _cmd_bench_blockcnn(args) -> int:
    from .evaluation.blockcnn_bench import bench_blockcnn, default_out, format_blockcnn_tables
    from .evaluation.results import write_result

    _set_threads(args.threads)
    data = _resolve_data(args.data)
    window = tuple(_split(args.window, float))
    if len(window) != 2:
        raise CarkitError(f"--window needs two rates, got {args.window!r}")
    payload = bench_blockcnn(data, _split(args.qualities, int), args.predictor, args.restorer, args.limit,
                             args.verify, window, args.at_bpp)
    path = write_result(Path(args.results) / default_out(data).name, payload)
    print(format_blockcnn_tables(payload))
    print(f"\nwrote {path}")
    return 0


def _cmd_bench_vcodec(args) -> int:
    from .evaluation.vcodec_bench import main_bench_vcodec

    args.data = [_resolve_data(d) for d in args.data]
    return main_bench_vcodec(args)


def _cmd_bench_hiding(args) -> int:
    from .evaluation.hiding_bench import main_bench_hiding

    args.data = _resolve_data(args.data)
    return main_bench_hiding(args)


def _cmd_bench_complexity(args) -> int:
    from .evaluation.complexity_bench import run_complexity_bench
    from .zoo.registry import list_weights, weights_record

    models = _split(args.models) if args.models else list_weights()
    for m in models:
        weights_record(m)
    path = run_complexity_bench(models, _split(args.architectures) or [], args.size, args.repeats,
                                args.threads, args.results)
    print(f"wrote {path}")
    return 0


def _cmd_bench_report(args) -> int:
    from .evaluation.report import write_report

    print(f"wrote {write_report(args.results, args.out)}")
    return 0


def _cmd_zoo_export(args) -> int:
    from .zoo.registry import export_run

    record = export_run(args.run, args.name, description=args.description or "", part=args.part)
    print(f"exported {args.run} as {record.name} (sha256 {record.sha256[:12]}, {record.training['steps']} steps)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a recipe (resumes from its last checkpoint)")
    p.add_argument("recipe", help="recipe TOML file (see recipes/)")
    p.add_argument("--out", help="run folder (default runs/NAME)")
    p.add_argument("--iterations", type=int, help="override the recipe's total iterations")
    p.add_argument("--max-steps", type=int, help="stop this invocation after N steps (resume later)")
    p.add_argument("--data-root", help="folder holding train/ and val/ (default ../shared/data)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("restore", help="restore JPEG files to PNG with a zoo model")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="JPEG files or folders of JPEGs")
    p.add_argument("-o", "--output", required=True,
                   help="output PNG (one input file) or folder (receives STEM.png per input)")
    p.add_argument("--model", help="zoo model to use (default: chosen per image; see `carkit zoo list`)")
    p.add_argument("--explain", action="store_true", help="print the quality read from the file, the model's own estimate and the model used")
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels (multiple of 8)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser("encode", help="compress an image with a registered codec (blockcnn writes .bcnn)")
    p.add_argument("input", help="image file (PNG, JPEG, ...)")
    p.add_argument("output", help="compressed file to write (e.g. out.bcnn)")
    from .codecs.registry import list_codecs

    p.add_argument("--method", default="blockcnn",
                   help=f"registered codec: {', '.join(list_codecs())} (default blockcnn)")
    p.add_argument("-q", "--quality", type=int, required=True, help="quality 1..100")
    p.add_argument("--model", help="blockcnn: zoo predictor (default blockcnn-predictor); "
                   "vcnn: zoo FDNN/PPNN pair (default: the one trained nearest the quality); "
                   "hiding: zoo E/D pair (default: the one trained for --codec nearest the quality)")
    p.add_argument("--codec", help="hiding: the standard codec that carries the image (default jpeg)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("decode", help="decode a .bcnn file, a virtual-codec or residual-hiding JPEG (or any "
                       "image Pillow reads) to an image file")
    p.add_argument("input", help=".bcnn file (detected by its magic), a virtual-codec or residual-hiding JPEG "
                   "(by its marker) or a standard image")
    p.add_argument("--method", choices=("auto", "hiding"), default="auto",
                   help="auto (default): by the file's magic or marker; hiding: a JPEG without the "
                        "residual-hiding marker is restored by the best blind zoo restorer instead (and says so)")
    p.add_argument("-o", "--output", required=True, help="image to write (PNG by its suffix)")
    p.add_argument("--restore", metavar="MODEL", help="zoo artifact remover applied after decoding")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("bench", help="measure restorers and codecs; write results and docs/RESULTS.md")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    b = bsub.add_parser("restore", help="JPEG vs zoo restorers on evaluation sets")
    b.add_argument("--data", nargs="+", required=True,
                   help="image folders, or names under the data root (eval/live1_gray eval/classic5)")
    b.add_argument("--models", help="comma-separated zoo names (default: every shipped model, or none with --runs)")
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
    b.add_argument("--limit", type=int, help="first N images only (does not update the zoo)")
    b.add_argument("--results", default="results", help="folder for result JSON files")
    b.add_argument("--no-update-zoo", action="store_true", help="do not store results in zoo records")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.set_defaults(func=_cmd_bench_restore)
    b = bsub.add_parser("codecs", help="rate-distortion of the standard codecs")
    from .evaluation.codec_bench import add_bench_codecs_arguments

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
    from .evaluation.vcodec_bench import add_bench_vcodec_arguments

    add_bench_vcodec_arguments(b)
    b.set_defaults(func=_cmd_bench_vcodec)
    b = bsub.add_parser("hiding", help="residual hiding vs the codec alone, DnCNN and MemNet (the paper's Table 2, "
                                        "Fix-Q and Fix-BPP), then RD curves and BD-rates")
    from .evaluation.hiding_bench import add_bench_hiding_arguments

    add_bench_hiding_arguments(b)
    b.set_defaults(func=_cmd_bench_hiding)
    b = bsub.add_parser("report", help="regenerate docs/RESULTS.md from result files")
    b.add_argument("--results", default="results")
    b.add_argument("--out", default="docs/RESULTS.md")
    b.set_defaults(func=_cmd_bench_report)

    p = sub.add_parser("zoo", help="shipped weights")
    zsub = p.add_subparsers(dest="zoo_command", required=True)
    z = zsub.add_parser("list", help="list shipped weights with their measured results")
    z.set_defaults(func=_cmd_zoo_list)
    z = zsub.add_parser("export", help="copy a training run's EMA weights into the package zoo")
    z.add_argument("run", help="run folder (holds last.safetensors, recipe.json, budget.json)")
    z.add_argument("name", help="zoo name for the weights")
    z.add_argument("--description", help="one line shown by `carkit zoo list`")
    z.add_argument("--part", help="ship one of the run's extra networks instead of its model "
                                  "(e.g. 'sim', a Strategy I codec simulator)")
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
    try:
        return args.func(args)
    except CarkitError as exc:
        print(f"carkit: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:   # a path that cannot be read or made (missing, a file in the way, a dangling link)
        print(f"carkit: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("carkit: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = old_showwarning


if __name__ == "__main__":
    sys.exit(main())
