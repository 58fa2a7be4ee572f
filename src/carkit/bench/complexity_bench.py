"""``carkit bench complexity``: parameters, FLOPs and time per 512x512 image.

DAGN's Table III reports, for each method, "FLOPs" (multiply-accumulates, see
``carkit.models.complexity``), parameters and the running time on 512x512
color images (a P100 GPU there). Here, for every zoo model (and any
architecture named with ``--architectures``, e.g. the paper-size ``dagn``,
which is counted but not trained), on this machine's CPU:

- parameters of the restorer as shipped (everything the forward pass uses);
- MACs of one forward pass at 512x512 (exact, counted on meta tensors);
- wall time of one forward pass on a 512x512 input (gray models get one
  channel, the Y they restore), median of ``repeats`` runs after one warm-up,
  in eval mode without gradients, fp32, with the thread count recorded.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from ..models.complexity import count_macs, count_parameters
from ..models.registry import create_model, model_config
from ..zoo.registry import load_pretrained, weights_record
from .results import provenance, write_result

#: DAGN paper, Table III (512x512 color, P100 GPU): "FLOPs" (G, MACs), params (M), ms.
PAPER_TABLE_III = {
    "DMCNN": (687.1, 4.7, 31.3), "IPT": (70243.5, 114.2, 5413.7), "SwinIR": (50768.5, 11.5, 3643.4),
    "QGAC": (249.9, 0.0, 113.1), "FBCNN": (728.9, 71.9, 13.0), "DAGN": (952.8, 109.9, 29.7),
}


def _time_forward(net, channels: int, size: int, repeats: int) -> float:
    import torch

    x = torch.rand(1, channels, size, size)
    with torch.no_grad():
        net(x)  # warm-up (allocations, kernel selection)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _entry(net, channels: int, size: int, repeats: int) -> dict:
    net.eval()
    entry = {"params": count_parameters(net), "macs": count_macs(net, size, size, channels),
             "in_channels": channels}
    if repeats > 0:
        entry["seconds"] = _time_forward(net, channels, size, repeats)
    return entry


def bench_complexity(models: list[str], architectures: list[str], size: int = 512, repeats: int = 5,
                     threads: int | None = None, arch_repeats: int = 1) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    rows = {}
    for name in models:
        rec = weights_record(name)
        rows[name] = {"kind": "zoo", "architecture": rec.model,
                      **_entry(load_pretrained(name), 1 if rec.gray else 3, size, repeats)}
    for arch in architectures:
        cfg = model_config(arch)
        rows[arch] = {"kind": "architecture (untrained)", "architecture": arch,
                      **_entry(create_model(arch), cfg.in_channels, size, arch_repeats)}
    return {"kind": "complexity", "size": size, "repeats": repeats, "threads": torch.get_num_threads(),
            "rows": rows, "paper_table_iii": PAPER_TABLE_III, "provenance": provenance()}


def format_complexity_table(payload: dict) -> str:
    size, threads = payload["size"], payload["threads"]
    lines = [f"| model | kind | input | MACs (G) at {size}x{size} | params (M) | "
             f"time per image here (ms, CPU, {threads} threads) |", "|---|---|---|---|---|---|"]
    for name, r in payload["rows"].items():
        t = f"{1000 * r['seconds']:.0f}" if "seconds" in r else "-"
        lines.append(f"| {name} | {r['kind']} | {'Y' if r['in_channels'] == 1 else 'RGB'} | "
                     f"{r['macs'] / 1e9:.1f} | {r['params'] / 1e6:.2f} | {t} |")
    lines += ["", "Paper (DAGN Table III, 512x512 color on a P100 GPU):", "",
              "| method | FLOPs (G) | params (M) | time (ms) |", "|---|---|---|---|"]
    for name, (g, p, ms) in payload["paper_table_iii"].items():
        lines.append(f"| {name} | {g} | {p} | {ms} |")
    return "\n".join(lines)


def run_complexity_bench(models, architectures, size, repeats, threads, results_dir: str) -> Path:
    payload = bench_complexity(models, architectures, size, repeats, threads)
    path = write_result(Path(results_dir) / "complexity.json", payload)
    print(format_complexity_table(payload))
    return path
