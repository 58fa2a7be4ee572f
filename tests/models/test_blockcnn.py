"""BlockCNN network (Maleki et al. 2018): window layout, context, causality, training task."""

from __future__ import annotations

import pytest
import torch

from carkit.models.blockcnn import (BlockCNN, BlockResidual, fold_blocks, from_model_space, image_windows,
                                    mask_causal, to_model_space)
from carkit.models.registry import create_model
from carkit.training.blockcnn_tasks import interior_windows


def _small(**kw):
    torch.manual_seed(0)
    kw = {"in_channels": 3, "width": 8, "num_res_blocks": 2, **kw}
    net = BlockCNN(**kw)
    # Non-zero tail so the output depends on the input (the remover starts as the identity).
    torch.nn.init.normal_(net.tail.weight, std=0.1)
    return net.eval()


def test_paper_configuration():
    net = create_model("blockcnn")
    assert sum(isinstance(m, BlockResidual) for m in net.modules()) == 9
    block = next(m for m in net.modules() if isinstance(m, BlockResidual))
    # Residual block of Fig. 3: conv, batch norm, leaky ReLU.
    assert isinstance(block.bn1, torch.nn.BatchNorm2d) and isinstance(block.act, torch.nn.LeakyReLU)
    assert net.forward_windows(torch.rand(2, 3, 24, 24)).shape == (2, 3, 8, 8)


def test_windows_fold_round_trip_and_centres():
    x = torch.rand(2, 3, 37, 50)
    windows, grid = image_windows(x)
    assert grid == (5, 7) and windows.shape == (2 * 5 * 7, 3, 24, 24)
    centres = windows[:, :, 8:16, 8:16]
    assert torch.equal(fold_blocks(centres, 2, grid, (37, 50)), x)
    # Block (1, 2) of image 1: its window is the image around it.
    w = windows[1 * 35 + 1 * 7 + 2]
    assert torch.equal(w, x[1, :, 0:24, 8:32])


def test_untrained_remover_is_the_identity():
    net = BlockCNN(in_channels=3, width=8, num_res_blocks=1, color_space="rgb").eval()
    x = torch.rand(1, 3, 20, 30)
    with torch.no_grad():
        assert torch.allclose(net(x), x)


def test_each_block_sees_exactly_its_24x24_window():
    net = _small(color_space="rgb")
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        base = net(x)
        inside, outside = x.clone(), x.clone()
        inside[:, :, 12, 12] += 0.5    # in the window of block (2, 2) (pixels 8..32)
        outside[:, :, 39, 39] += 0.5   # 8+ pixels away from block (2, 2)'s window
        y_in, y_out = net(inside), net(outside)
    block = (slice(None), slice(None), slice(16, 24), slice(16, 24))
    assert not torch.allclose(y_in[block], base[block])
    assert torch.equal(y_out[block], base[block])


def test_predictor_ignores_masked_blocks():
    net = _small(in_channels=1, causal=True, color_space="rgb")
    w = torch.rand(4, 1, 24, 24)
    with torch.no_grad():
        p = net.forward_windows(w)
        hidden = w.clone()
        hidden[:, :, 8:16, 8:] = torch.rand(4, 1, 8, 16)   # centre and right blocks
        hidden[:, :, 16:, :] = torch.rand(4, 1, 8, 24)     # bottom row
        assert torch.equal(net.forward_windows(hidden), p)
        seen = w.clone()
        seen[:, :, 0:8, 16:24] += 0.5                       # top-right neighbour is context
        assert not torch.allclose(net.forward_windows(seen), p)
    view = mask_causal(w)
    assert view.shape == (4, 1, 16, 24) and view[:, :, 8:, 8:].abs().sum() == 0


@pytest.mark.parametrize("space", ["lab", "ycbcr", "rgb"])
def test_color_spaces_round_trip(space):
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    y = to_model_space(x, space)
    assert y.min() > -0.1 and y.max() < 1.1
    # Lab: the CIE constants (7.787, 0.008856) leave a 1e-4 seam near black.
    assert torch.allclose(from_model_space(y, space), x, atol=1e-3)


def test_training_windows_are_the_interior_blocks():
    x = torch.rand(3, 3, 48, 48)
    w = interior_windows(x)
    assert w.shape == (3 * 16, 3, 24, 24)
    assert torch.equal(w[5], x[0, :, 8:32, 8:32])  # window 5 of 4x4: row 1, column 1
    with pytest.raises(ValueError, match="multiples of 8"):
        interior_windows(torch.rand(1, 3, 44, 48))


def test_training_task_runs_and_learns_direction():
    from carkit.training.engine import get_task
    from carkit.training.recipe import Recipe

    net = _small(color_space="lab").train()
    task = get_task("blockcnn-windows")
    recipe = Recipe(name="t", model="blockcnn-color", quality_range=[10, 40], loss="l2")
    gt = torch.rand(2, 3, 32, 32)
    batch = {"lq": (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1), "gt": gt}
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    first = None
    for _ in range(30):
        loss = task.loss("main", net, {}, batch, recipe)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
