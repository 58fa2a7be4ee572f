"""Model complexity: parameter counts and FLOPs/MACs of any restorer.

Convention, stated once: ``count_flops`` returns what
``torch.utils.flop_counter.FlopCounterMode`` counts, i.e. **2 FLOPs per
multiply-accumulate** for convolutions, transposed convolutions and matrix
products (normalisation, activations, pooling and additions are not counted).
``count_macs`` is half of it. Papers in this field usually print MACs under the
name "FLOPs" (e.g. DAGN's 952.8 G and FBCNN's 728.9 G at 512x512 are MACs), so
compare a paper's "FLOPs" with ``count_macs``.

The count is exact at the requested size, not extrapolated: the model runs on
*meta* tensors (shapes only, no memory, no arithmetic) through
``torch.func.functional_call``, so even a 110 M-parameter network at 512x512
costs a fraction of a second on CPU. Models whose forward reads tensor values
(``.item()``, data-dependent shapes) cannot run on meta tensors; for them pass
``on_meta=False`` to count on a real input of the requested size.

Example::

    >>> from carkit.models.registry import create_model
    >>> m = create_model("resunet-color")
    >>> count_macs(m, 512, 512) / 1e9  # doctest: +SKIP
    58.6
"""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as BatchNorm running
    statistics are not parameters and are not counted). Shared parameters are
    counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def _infer_in_channels(model: nn.Module) -> int:
    ch = getattr(model, "in_channels", None)
    if isinstance(ch, int):
        return ch
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise ValueError("cannot infer the model's input channels; pass in_channels")


def count_flops(model: nn.Module, height: int = 512, width: int = 512, in_channels: int | None = None,
                batch: int = 1, on_meta: bool = True) -> int:
    """FLOPs (2 per multiply-accumulate, FlopCounterMode's convention) of one
    forward pass of ``model`` on a ``(batch, in_channels, height, width)`` input,
    counted in eval mode (the model's mode is restored afterwards)."""
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    c = in_channels if in_channels is not None else _infer_in_channels(model)
    was_training = model.training
    model.eval()
    try:
        if on_meta:
            tensors = {name: torch.empty_like(t, device="meta")
                       for name, t in list(model.named_parameters()) + list(model.named_buffers())}
            x = torch.empty(batch, c, height, width, device="meta")
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                functional_call(model, tensors, (x,), strict=False)
        else:
            p = next(iter(model.parameters()), None)
            device = p.device if p is not None else "cpu"
            x = torch.zeros(batch, c, height, width, device=device)
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_macs(model: nn.Module, height: int = 512, width: int = 512, in_channels: int | None = None,
               batch: int = 1, on_meta: bool = True) -> int:
    """Multiply-accumulates of one forward pass (``count_flops // 2``): the
    number papers usually print as "FLOPs"."""
    return count_flops(model, height, width, in_channels, batch, on_meta) // 2
