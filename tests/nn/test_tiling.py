from __future__ import annotations

import pytest
import torch

from carkit.nn.tiling import tile_spans, tiled_apply


@pytest.mark.parametrize("n", [1, 8, 511, 512, 513, 1000, 1301, 4000])
def test_spans_cover_the_axis_once_on_the_grid(n):
    spans = tile_spans(n, 512, 32)
    assert spans[0][2] == 0 and spans[-1][3] == n
    for (s, e, ks, ke), nxt in zip(spans, spans[1:] + [None]):
        assert s % 8 == 0 and s <= ks < ke <= e
        if nxt is not None:
            assert ke == nxt[2]  # kept regions abut
            assert e - nxt[0] >= 32  # tiles overlap


def test_tiled_conv_equals_whole_image_conv():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 5, padding=2), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 1, 5, padding=2))
    x = torch.rand(1, 1, 203, 317)
    with torch.no_grad():
        whole = conv(x)
    tiled = tiled_apply(conv, x, tile=64, overlap=16)
    # receptive field radius 4 < overlap / 2: identical away from nothing
    assert torch.allclose(whole, tiled, atol=1e-6)


def test_bad_tile_settings():
    with pytest.raises(ValueError):
        tile_spans(100, 60, 8)
