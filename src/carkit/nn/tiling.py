"""Tiled inference with overlap, so memory stays bounded for any image size.

Tile origins sit on multiples of 8 so every tile keeps the JPEG 8x8 grid at
its corner, as the networks saw it in training. Neighbouring tiles overlap;
each output pixel comes from the tile in which it is farthest from a cut.
"""

from __future__ import annotations

from typing import Callable

import torch


def tile_spans(n: int, tile: int, overlap: int, align: int = 8) -> list[tuple[int, int, int, int]]:
    """Spans along one axis: (tile_start, tile_end, keep_start, keep_end)."""
    if tile <= overlap or tile % align or overlap % align:
        raise ValueError("tile and overlap must be multiples of align, tile > overlap")
    if n <= tile:
        return [(0, n, 0, n)]
    stride = tile - overlap
    count = -(-(n - overlap) // stride)  # fewest tiles that overlap by >= overlap
    # Spread the origins evenly, rounded down to the grid; the last tile
    # stretches to the border (by < align pixels).
    starts = sorted({((i * (n - tile)) // (count - 1)) // align * align for i in range(count)})
    ends = [min(n, s + tile) for s in starts]
    ends[-1] = n
    spans = []
    for i, (s, e) in enumerate(zip(starts, ends)):
        keep_s = 0 if i == 0 else (s + ends[i - 1]) // 2
        keep_e = n if i == len(starts) - 1 else (starts[i + 1] + e) // 2
        spans.append((s, e, keep_s, keep_e))
    return spans


@torch.no_grad()
def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int = 512,
                overlap: int = 32, progress: Callable[[int], None] | None = None, align: int = 8) -> torch.Tensor:
    """Apply ``fn`` (N, C, H, W) -> (N, C', H, W) tile by tile; returns the
    assembled output on x's device. ``progress`` is called with 1 per tile;
    tile origins sit on multiples of ``align`` (16: the 4:2:0 MCU grid)."""
    _, _, h, w = x.shape
    return tiled_regions(lambda y0, y1, x0, x1: fn(x[:, :, y0:y1, x0:x1]), (h, w), tile, overlap, align,
                         progress=progress, device=x.device)


@torch.no_grad()
def tiled_regions(fn: Callable[[int, int, int, int], torch.Tensor], size: tuple[int, int], tile: int = 512,
                  overlap: int = 32, align: int = 8, progress: Callable[[int], None] | None = None,
                  device=None) -> torch.Tensor:
    """The tiling of :func:`tiled_apply` for inputs that are not one tensor
    (e.g. a colour JPEG's planes at different resolutions): ``fn(y0, y1, x0,
    x1)`` returns the output (N, C', y1-y0, x1-x0) of that region; tile
    origins sit on multiples of ``align``."""
    h, w = size
    ys, xs = tile_spans(h, tile, overlap, align), tile_spans(w, tile, overlap, align)
    out = None
    for y0, y1, ky0, ky1 in ys:
        for x0, x1, kx0, kx1 in xs:
            piece = fn(y0, y1, x0, x1)
            if out is None:
                out = piece.new_empty((piece.shape[0], piece.shape[1], h, w), device=device)
            out[:, :, ky0:ky1, kx0:kx1] = piece[:, :, ky0 - y0:ky1 - y0, kx0 - x0:kx1 - x0]
            if progress is not None:
                progress(1)
    return out


def count_tiles(h: int, w: int, tile: int = 512, overlap: int = 32, align: int = 8) -> int:
    """How many tiles :func:`tiled_apply` cuts an (h, w) image into (for progress bars)."""
    return len(tile_spans(h, tile, overlap, align)) * len(tile_spans(w, tile, overlap, align))
