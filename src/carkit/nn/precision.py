"""Inference precision on CPUs: bf16 autocast with channels_last where the
CPU computes bf16 natively (AMX or AVX-512 BF16), fp32 elsewhere, chosen at
run time. On CPUs without native bf16 autocast is emulated and many times
slower than fp32, so "auto" never picks it there."""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX-512 BF16)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """"fp32" or "bf16" for a ``precision`` of auto/fp32/bf16: auto is bf16
    with channels_last where the CPU runs it natively
    (:func:`cpu_has_fast_bf16`), fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_fast_bf16() else "fp32"


def run_at(precision: str, fn: Callable[..., torch.Tensor], *inputs: torch.Tensor, **kwargs) -> torch.Tensor:
    """``fn(*inputs, **kwargs)`` at a resolved ``precision``: bf16 runs under
    autocast with channels_last 4-D inputs and returns fp32."""
    if precision != "bf16":
        return fn(*inputs, **kwargs)
    device = inputs[0].device.type if inputs else "cpu"
    inputs = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in inputs)
    with torch.autocast(device, dtype=torch.bfloat16):
        return fn(*inputs, **kwargs).float()
