"""Generic tests over every registered model (timm-style)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from carkit.errors import ModelError
from carkit.models.registry import create_model, list_models, model_config

# Full-size configurations are cheap enough at these input sizes on CPU.
SIZES = [(1, 37, 29), (2, 16, 16)]
# Models reading a JPEG's k-space code (HR-CNN) need whole 8x8 blocks and may need the table.
KSPACE_SIZES = [(1, 48, 32), (2, 16, 16)]


def _sizes(name):
    return KSPACE_SIZES if model_config(name).kind == "kspace" else SIZES


def _run(model, name, x):
    if model_config(name).kind == "kspace":
        table = torch.full((8, 8), 10.0)
        if x.shape[1] == 3:  # colour: Y at full size, Cb and Cr at 4:2:0
            return model(x[:, :1], x[:, 1:2, ::2, ::2], x[:, 2:3, ::2, ::2], table, table)
        return model(x, table)
    return model(x)


@pytest.mark.parametrize("name", list_models())
def test_odd_size_keeps_shape_and_backward_runs(name):
    torch.manual_seed(0)
    model = create_model(name)
    c = model_config(name).in_channels
    for n, h, w in _sizes(name):
        x = torch.rand(n, c, h, w, requires_grad=True)
        y = _run(model, name, x)
        assert y.shape == x.shape
        y.square().mean().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_weights_round_trip_through_safetensors(name, tmp_path):
    torch.manual_seed(1)
    model = create_model(name).eval()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    torch.manual_seed(2)
    other = create_model(name).eval()
    other.load_state_dict(load_file(str(path)))
    c = model_config(name).in_channels
    x = torch.rand(1, c, 32, 32)
    with torch.no_grad():
        assert torch.equal(_run(model, name, x), _run(other, name, x))


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown model"):
        create_model("no-such-net")
    with pytest.raises(ModelError, match="bad configuration"):
        create_model("arcnn-gray", nonsense=3)


def test_paper_sizes():
    # DnCNN-3: 20 conv layers of 64 channels (Zhang et al. 2017).
    dncnn = create_model("dncnn3-gray")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in dncnn.modules()) == 20
    # ARCNN: 9-7-1-5 kernels, 64-32-16 features (Dong et al. 2015): 106,673 parameters incl. PReLU.
    arcnn = create_model("arcnn-gray")
    convs = [m for m in arcnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [9, 7, 1, 5]
    assert [c.out_channels for c in convs] == [64, 32, 16, 1]


def test_a_unet_grown_by_a_scale_computes_what_the_shallower_one_did():
    """``ResUNet.grown_state``: a trained net's weights in a net with one more
    scale (the new one starts as a no-op), so training goes on from the same
    function; the new scale then learns (its gradients are not all zero)."""
    from carkit.models.unet import ResUNet

    torch.manual_seed(0)
    small = ResUNet(2, (8, 16), (1, 1), out_channels=1).eval()
    torch.nn.init.normal_(small.tail.weight, std=0.1)     # a trained net's tail is not zero
    big = ResUNet(2, (8, 16, 32), (1, 1, 2), out_channels=1).eval()
    state = big.grown_state({f"e.{k}": v for k, v in small.state_dict().items()}, prefix="e.")
    loaded = big.load_state_dict({k[2:]: v for k, v in state.items()}, strict=False)
    assert sorted(loaded.missing_keys) == sorted(
        k for k in big.state_dict() if k.startswith(("encoders.2.", "downs.1.")) or
        (k.startswith("decoders.0.") and ".conv1." in k))
    x = torch.rand(1, 2, 19, 23)
    with torch.no_grad():
        assert torch.equal(big(x), small(x))
    big.train()
    big(x).square().mean().backward()
    assert big.ups[0].weight.grad.abs().sum() > 0 and big.decoders[0][0].conv2.weight.grad.abs().sum() > 0
    own = big.state_dict()
    assert big.grown_state(own) is own   # a state of its own depth comes back unchanged


def test_a_hiding_pair_grown_by_a_scale_starts_where_the_pair_was():
    from carkit.models.residual_hiding import ResidualHiding

    torch.manual_seed(0)
    pair = ResidualHiding(1, (8, 16), (1, 1)).eval()
    for net in (pair.encoder, pair.decoder):
        torch.nn.init.normal_(net.tail.weight, std=0.1)
    grown = ResidualHiding(1, (8, 16, 32), (1, 1, 1)).eval()
    grown.load_state_dict(grown.grown_state(pair.state_dict()), strict=False)
    x, r = torch.rand(1, 1, 24, 20), torch.rand(1, 1, 24, 20) * 0.1
    with torch.no_grad():
        assert torch.equal(grown.hide(x, r), pair.hide(x, r))
        assert torch.equal(grown.reconstruct(x), pair.reconstruct(x))
