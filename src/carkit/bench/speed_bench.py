"""``carkit bench speed``: restoring one large color JPEG, end to end.

PROTOCOL.md's speed comparison for restorers: one photograph of about 2 MP
coded as a 4:2:0 JPEG (Pillow/libjpeg-turbo at ``quality``), restored through
the same path as ``carkit restore`` (read, decode, tiles, model, assemble),
timed beside the plain decode of the same file and the DnCNN-3 architecture
(``dncnn3-gray-blind``, fp32, on the luma only), in one run on one machine:
absolute times differ between machines, the ratios do not. Each time is the
median of ``repeats`` runs after a warm-up on the same file. Zoo models are
timed with their weights; ``architectures`` (registry names, e.g. a restorer
still in training) are timed untrained, which costs the same.
"""

from __future__ import annotations

import io
import platform
import statistics
import time
from pathlib import Path

from ..errors import UsageError
from .results import provenance, write_result
from ..io import read_image, read_image_bytes
from ..models.registry import create_model, describe
from ..nn.precision import cpu_has_fast_bf16
from ..zoo.registry import weights_record
from ..training.recipe import default_data_root

#: A real 2000x1072 photograph in the shared data (re-coded here as 4:2:0).
DEFAULT_IMAGE = "jpeg/real/pillow__xmp_test.jpg"
#: The reference restorer of the speed target: DnCNN-3, fp32, luma only.
REFERENCE = "dncnn3-gray-blind"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median_seconds(fn, repeats: int) -> tuple[float, object]:
    """(median seconds of ``repeats`` calls, the warm-up call's result)."""
    result = fn()  # warm-up: allocations, kernel choice, weights loaded
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench_jpeg(image_path: str | Path, quality: int) -> bytes:
    """The benchmark's JPEG: the image's pixels coded at ``quality``, 4:2:0."""
    from PIL import Image

    pixels = read_image(image_path).pixels
    if pixels.ndim != 3:
        raise UsageError(f"{image_path}: the speed bench needs a color image")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality, subsampling=2)
    return buf.getvalue()


def bench_speed(image_path: str | Path, models: list[str], architectures: list[str], quality: int = 50,
                repeats: int = 3, threads: int | None = None, precision: str = "fp32",
                tile: int = 512) -> dict:
    import torch

    from ..restoration.restorer import Restorer, RestorePlan, restore_jpeg

    if threads:
        torch.set_num_threads(threads)
    data = bench_jpeg(image_path, quality)
    decoded = read_image_bytes(data)
    h, w = decoded.pixels.shape[:2]
    mp = h * w / 1e6
    rows = {"decode": {"kind": "Pillow decode (libjpeg-turbo)",
                       "seconds": _median_seconds(lambda: read_image_bytes(data), max(repeats, 5))[0]}}
    names = list(dict.fromkeys([REFERENCE, *models]))
    for name in names:
        weights_record(name)  # unknown names fail before any timing
        restorer = Restorer(model=name, precision=precision if name != REFERENCE else "fp32", tile=tile)
        seconds, warm_up = _median_seconds(lambda: restore_jpeg(restorer, data), repeats)
        rows[name] = {"kind": "zoo", "precision": restorer.precision, "mode": warm_up.plan.mode,
                      "seconds": seconds}
    for arch in architectures:
        restorer = Restorer(precision=precision, tile=tile)
        restorer.add(arch, create_model(arch).eval(), describe(arch))
        plan = RestorePlan(quality, True, arch, "color", "untrained architecture (timing only)")
        restorer.plan = lambda gray, q, plan=plan: plan

        def run(restorer=restorer):
            return restore_jpeg(restorer, data)

        rows[arch] = {"kind": "architecture (untrained)", "precision": restorer.precision, "mode": "color",
                      "seconds": _median_seconds(run, repeats)[0]}
    ref = rows[REFERENCE]["seconds"]
    for row in rows.values():
        row["seconds_per_mp"] = row["seconds"] / mp
        row["speedup_vs_dncnn3"] = ref / row["seconds"]
        row["x_decode"] = row["seconds"] / rows["decode"]["seconds"]
    return {"kind": "speed", "image": _data_relative(image_path), "size": [w, h], "megapixels": mp, "quality": quality,
            "subsampling": "4:2:0", "repeats": repeats, "threads": torch.get_num_threads(), "cpu": cpu_model(),
            "native_bf16": cpu_has_fast_bf16(), "precision": precision, "tile": tile, "reference": REFERENCE,
            "rows": rows, "provenance": provenance()}


def _data_relative(path: str | Path) -> str:
    """The image's path under the shared data root when it is there (results
    name data the way PROTOCOL.md does), else as given."""
    try:
        return str(Path(path).resolve().relative_to(default_data_root().resolve()))
    except ValueError:
        return str(path)


def format_speed_table(payload: dict) -> str:
    w, h = payload["size"]
    lines = [f"Restoring one {w}x{h} ({payload['megapixels']:.2f} MP) color 4:2:0 JPEG at QF {payload['quality']}, "
             f"end to end; {payload['cpu']}"
             + {True: " (native bf16)", False: " (no native bf16)"}.get(payload.get("native_bf16"), "")
             + f", {payload['threads']} threads, median of {payload['repeats']}", "",
             "| | how | precision | seconds | s per MP | x the decode | speed-up vs DnCNN-3 (Y, fp32) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in payload["rows"].items():
        how = r["kind"] + (f", {r['mode']}" if r.get("mode") else "")
        lines.append(f"| {name} | {how} | {r.get('precision', '-')} | {r['seconds']:.2f} | "
                     f"{r['seconds_per_mp']:.2f} | {r['x_decode']:.0f}x | {r['speedup_vs_dncnn3']:.1f}x |")
    return "\n".join(lines)


def run_speed_bench(image: str, models: list[str], architectures: list[str], quality: int, repeats: int,
                    threads: int | None, precision: str, results_dir: str, tag: str = "") -> Path:
    payload = {**bench_speed(image, models, architectures, quality, repeats, threads, precision), "tag": tag}
    name = f"speed{'_' + tag if tag else ''}.json"
    path = write_result(Path(results_dir) / name, payload)
    print(format_speed_table(payload))
    return path
