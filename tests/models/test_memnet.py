"""MemNet (Tai et al. 2017), the residual hiding paper's Y-channel baseline:
memory blocks of shared recursive units and gate units, sizes and counts."""

from __future__ import annotations

import pytest
import torch

from carkit.models.memnet import MemNet, MemoryBlock
from carkit.models.registry import create_model, model_config


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registered_sizes_and_parameter_counts():
    cpu, paper = create_model("memnet-gray"), create_model("memnet-gray-m6r6")
    assert model_config("memnet-gray").kind == "restorer" and model_config("memnet-gray").in_channels == 1
    assert (len(cpu.blocks), len(cpu.blocks[0].norms), cpu.head.out_channels) == (4, 3, 48)
    assert (len(paper.blocks), len(paper.blocks[0].norms), paper.head.out_channels) == (6, 6, 64)
    assert _count(cpu) == 222_577 and _count(paper) == 694_855
    # every recursion with its own convolutions: HR-CNN's Table III count of MemNet (2,905,421) to 0.2 %
    unshared = _count(create_model("memnet-gray-m6r6", shared=False))
    assert unshared == 2_910_535 and abs(unshared / 2_905_421 - 1) < 0.002
    convs = [m for m in cpu.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 4 * (2 + 1) + 1                # head, a shared pair and a gate a block, tail


def test_gate_reads_long_and_short_term_memory():
    net = MemNet(1, features=8, blocks=3, recursions=2)
    gates = [b.gate[-1] for b in net.blocks]
    # block m (from 1): m long-term memories (FENet and the earlier blocks) + R recursion outputs
    assert [g.in_channels for g in gates] == [(m + 2) * 8 for m in (1, 2, 3)]
    assert all(g.kernel_size == (1, 1) and g.out_channels == 8 for g in gates)


def test_recursions_share_their_convolutions():
    torch.manual_seed(0)
    block = MemoryBlock(4, recursions=3, long_term=1).eval()
    x = torch.rand(1, 4, 9, 11)
    with torch.no_grad():
        ref = block(x, [x])
        # the shared pair is one set of weights: changing it changes every recursion
        block.convs[0][1].weight.zero_()
        block.convs[0][1].bias.zero_()
        short = block.gate(torch.cat([x, x, x, x], 1))       # every H_r = x when the residual branch is 0
        assert torch.allclose(block(x, [x]), short, atol=1e-6) and not torch.allclose(ref, short)
    assert len(block.convs) == 1 and len(MemoryBlock(4, 3, 1, shared=False).convs) == 3


def test_output_is_global_residual_and_multi_supervision_averages():
    torch.manual_seed(1)
    net = MemNet(1, features=4, blocks=2, recursions=2).eval()
    x = torch.rand(2, 1, 21, 30)
    with torch.no_grad():
        net.tail[-1].weight.zero_()
        net.tail[-1].bias.zero_()
        assert torch.equal(net(x), x)                        # y = x + ReconNet(B_M)
    ms = MemNet(1, features=4, blocks=3, recursions=1, multi_supervision=True).eval()
    assert torch.allclose(ms.weights, torch.full((3,), 1 / 3))
    with torch.no_grad():
        ms.weights.copy_(torch.tensor([0.5, 0.25, 0.25]))
        memory = [ms.head(x)]
        for block in ms.blocks:
            memory.append(block(memory[-1], memory))
        want = sum(w * (x + ms.tail(b)) for w, b in zip(ms.weights, memory[1:]))
        assert torch.allclose(ms(x), want, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 37, 29), (2, 3, 16, 17)])
def test_any_size_and_channels(shape):
    net = MemNet(shape[1], features=4, blocks=2, recursions=2)
    assert net(torch.rand(*shape)).shape == shape


@pytest.mark.parametrize("name, kwargs, planes", [("memnet-gray", {"features": 8, "blocks": 2, "recursions": 2}, 1),
                                                  ("dncnn3-color", {"depth": 4, "features": 8}, 3)])
def test_zero_tail_starts_as_the_identity_and_still_learns(name, kwargs, planes):
    """The baselines' ``zero_tail``: the output equals the input at
    initialisation (not a large random residual), and one step moves it."""
    torch.manual_seed(0)
    net = create_model(name, zero_tail=True, **kwargs)
    x = torch.rand(2, planes, 24, 20)
    assert torch.equal(net.eval()(x), x)
    assert not torch.equal(create_model(name, **kwargs).eval()(x), x)   # the default is not the identity
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    torch.nn.functional.mse_loss(net(x), x.flip(-1)).backward()
    opt.step()
    assert not torch.equal(net.eval()(x), x)
