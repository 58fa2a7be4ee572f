"""DAGN (Ma et al., Sensitivity Decouple Learning): every module of section III,
its losses, stage-two freezing and the sizes of both configurations.

Paper-size checks run on meta tensors (shapes only); everything that computes
runs on small inputs with the narrow configuration.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from carkit.errors import ModelError
from carkit.models import dagn as D
from carkit.models.complexity import count_flops, count_macs, count_parameters
from carkit.models.registry import create_model, model_config

# Computed for this implementation (see the dagn module docstring for the gap to the paper).
DAGN_RESTORER_PARAMS = 110_666_883   # everything forward() uses
DAGN_QF_PREDICTOR_PARAMS = 4_401_252  # 2048*2048 + 2048 + 2048*100 + 100
DAGN_MACS_512 = 932.6e9
PAPER_PARAMS, PAPER_GFLOPS = 109.9e6, 952.8e9


def _meta(name: str, **kw) -> D.DAGN:
    with torch.device("meta"):
        return create_model(name, **kw)


def _small(**kw) -> D.DAGN:
    torch.manual_seed(0)
    return create_model("dagn-small", **kw)


def _tiny(**kw) -> D.DAGN:
    base = dict(channels=(8, 16, 32, 64), encoder_blocks=1, decoder_blocks=1, sensitive_blocks=1,
                insensitive_blocks=1, awareness_layers=(1, 1, 1, 1), awareness_width=4, guider_hidden=16,
                qf_hidden=16, discriminator_hidden=16, ae_decoder_channels=(16, 16, 16, 8, 8, 8))
    base.update(kw)
    torch.manual_seed(0)
    return D.DAGN(**base)


def _linears(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


# ---- registration and sizes -----------------------------------------------------------------


def test_both_configurations_registered_for_rgb():
    for name in ("dagn", "dagn-small"):
        cfg = model_config(name)
        assert cfg.in_channels == 3 and "Sensitivity Decouple" in cfg.paper and cfg.note


def test_dagn_parameter_count():
    model = _meta("dagn")
    parts = model.parameter_breakdown()
    total = count_parameters(model)
    restorer = total - parts["qf_predictor"]
    print(f"\ndagn: {total / 1e6:.2f} M parameters in the module, {restorer / 1e6:.2f} M in the restorer "
          f"(paper 109.9 M); breakdown {parts}")
    # Awareness encoders are torchvision's ResNet-50 without the classifier: 25,557,032 - 2,049,000.
    assert parts["ci_encoder"] == parts["cs_encoder"] == 23_508_032
    assert parts["qf_predictor"] == DAGN_QF_PREDICTOR_PARAMS
    assert abs(restorer - DAGN_RESTORER_PARAMS) <= 0.001 * DAGN_RESTORER_PARAMS
    assert abs(restorer - PAPER_PARAMS) <= 0.01 * PAPER_PARAMS  # 0.7 % above the paper


def test_dagn_small_size_and_fp16_weights():
    model = _meta("dagn-small")
    n = count_parameters(model)
    fp16_bytes = sum(t.numel() * (2 if t.is_floating_point() else t.element_size())
                     for t in model.state_dict().values())
    print(f"\ndagn-small: {n / 1e6:.2f} M parameters, {fp16_bytes / 2**20:.1f} MiB as float16")
    assert 3e6 <= n <= 8e6
    assert fp16_bytes < 16 * 2**20


def test_flops_paper_convention_and_small_cost():
    macs = count_macs(_meta("dagn"), 512, 512)
    print(f"\ndagn at 512x512: {macs / 1e9:.1f} G MACs = {2 * macs / 1e9:.1f} G FLOPs (paper 952.8 G 'FLOPs')")
    assert abs(macs - DAGN_MACS_512) <= 0.005 * DAGN_MACS_512
    assert abs(macs - PAPER_GFLOPS) <= 0.03 * PAPER_GFLOPS  # the paper's number is MACs
    small = _meta("dagn-small")
    assert count_flops(small, 512, 512) == 2 * count_macs(small, 512, 512)
    with torch.device("meta"):
        unet = create_model("resunet-color")
    ratio = count_macs(small, 512, 512) / count_macs(unet, 512, 512)
    print(f"dagn-small / resunet-color MACs per pixel: {ratio:.2f}")
    assert 0.7 <= ratio <= 1.5


def test_flops_on_meta_equal_flops_on_real_tensors():
    model = _tiny()
    assert count_flops(model, 32, 48) == count_flops(model, 32, 48, on_meta=False) > 0
    assert model.training  # mode restored


# ---- compression-insensitive / -sensitive auto-encoders (III-A) --------------------------------


def test_paper_awareness_encoder_is_modified_resnet50():
    enc = _meta("dagn").ci_encoder
    assert [len(stage) for stage in enc.stages] == [3, 4, 6, 3]
    assert all(isinstance(b, D.Bottleneck) for stage in enc.stages for b in stage)
    assert not any(isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)) for m in enc.modules())
    assert enc.stages[3][0].conv2.stride == (1, 1) and enc.stages[2][0].conv2.stride == (2, 2)
    assert enc.out_channels == 2048 and enc.stride == 16
    assert enc(torch.empty(2, 3, 256, 192, device="meta")).shape == (2, 2048, 16, 12)


def test_paper_decoder_has_15_layers_and_heads_are_2048_mlps():
    model = _meta("dagn")
    with torch.device("meta"):
        ci, cs = model.insensitive_autoencoder(), model.sensitive_autoencoder()
    assert ci.decoder.num_layers == 15 == cs.decoder.num_layers
    layers = [m for m in ci.decoder.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    kinds = ["T" if isinstance(m, nn.ConvTranspose2d) else "C" for m in layers]
    assert kinds == list("CCCCC" + "TC" * 5)
    assert ci.decoder(torch.empty(1, 2048, 16, 16, device="meta")).shape == (1, 3, 256, 256)
    assert _linears(ci.discriminator) == [(2048, 2048), (2048, 1)]
    assert _linears(cs.qf_predictor) == [(2048, 2048), (2048, 100)]
    assert cs.qf_predictor is model.qf_predictor and ci.encoder is model.ci_encoder


def test_small_auto_encoder_shapes():
    model = _small()
    ci, cs = model.insensitive_autoencoder(), model.sensitive_autoencoder()
    x = torch.rand(2, 3, 40, 56)
    feats = model.awareness_features(x)
    assert feats.insensitive.shape == feats.sensitive.shape == (2, 512, 3, 4)
    assert ci(x).shape == x.shape and cs(x).shape == x.shape
    assert ci.discriminator(feats.insensitive).shape == (2, 1)
    assert cs.qf_predictor(feats.sensitive).shape == (2, 100)


def test_insensitive_losses_and_where_their_gradients_go():
    model = _tiny()
    ae = model.insensitive_autoencoder()
    torch.manual_seed(1)
    o = torch.rand(2, 3, 32, 32)
    c = (o + 0.05 * torch.randn_like(o)).clamp(0, 1)
    for form in ("paper", "bce"):
        out = ae.losses(c, o, lambda_ci=1.0, form=form)
        for key in ("total", "content", "insensitive"):
            assert out[key].dim() == 0 and torch.isfinite(out[key])
        assert torch.allclose(out["total"], out["content"] + out["insensitive"])
        # the adversarial term (eq. 6) reaches the encoder, not the decoder
        ae.zero_grad(set_to_none=True)
        out["insensitive"].backward(retain_graph=True)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.encoder.parameters())
        assert all(p.grad is None for p in ae.decoder.parameters())
        # the content term (eq. 5) reaches encoder and decoder
        ae.zero_grad(set_to_none=True)
        out["content"].backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.decoder.parameters())
        assert {id(p) for p in ae.autoencoder_parameters()} == \
            {id(p) for p in list(ae.encoder.parameters()) + list(ae.decoder.parameters())}
        # the discriminator step (eq. 4) reaches only the discriminator
        ae.zero_grad(set_to_none=True)
        dloss = ae.discriminator_loss(out["features_c"], out["features_o"], form=form)
        assert dloss.dim() == 0 and torch.isfinite(dloss)
        dloss.backward()
        assert all(p.grad is None for p in ae.encoder.parameters())
        assert all(p.grad is not None for p in ae.discriminator.parameters())


def test_adversarial_loss_values_follow_eqs_4_and_6():
    lc, lo = torch.tensor([0.3, -1.2]), torch.tensor([2.0, 0.5])
    log_j = nn.functional.logsigmoid
    paper = 0.5 * (-log_j(lc) + log_j(lo)).mean()
    assert torch.allclose(D.insensitive_constraint(lc, lo), paper)
    assert torch.allclose(D.discriminator_loss(lc, lo), -paper)
    bce = nn.functional.binary_cross_entropy_with_logits
    assert torch.allclose(D.discriminator_loss(lc, lo, "bce"),
                          0.5 * (bce(lc, torch.zeros(2)) + bce(lo, torch.ones(2))))
    assert torch.allclose(D.insensitive_constraint(lc, lo, "bce"),
                          0.5 * (bce(lc, torch.ones(2)) + bce(lo, torch.zeros(2))))
    with pytest.raises(ValueError):
        D.insensitive_constraint(lc, lo, "wgan")


def test_sensitive_losses_and_gradients():
    model = _tiny()
    ae = model.sensitive_autoencoder()
    o = torch.rand(2, 3, 32, 32)
    c = (o + 0.05 * torch.randn_like(o)).clamp(0, 1)
    for form in ("paper", "ce"):
        ae.zero_grad(set_to_none=True)
        out = ae.losses(c, o, qf=[10, 75], lambda_cs=0.5, form=form)
        for key in ("total", "content", "sensitive"):
            assert out[key].dim() == 0 and torch.isfinite(out[key])
        assert torch.allclose(out["total"], out["content"] + 0.5 * out["sensitive"])
        out["total"].backward()
        for part in (ae.encoder, ae.decoder, ae.qf_predictor):  # eq. 7 updates all three
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    # eq. 9 literally: |softmax - onehot|_1; uniform logits give 2 (1 - 1/100) for every image
    flat = torch.zeros(3, 100)
    assert torch.allclose(D.sensitive_constraint(flat, 37, flat), torch.tensor(1.98))
    peaked = torch.full((1, 100), -50.0)
    peaked[0, 36] = 50.0  # class 36 is QF 37
    assert D.sensitive_constraint(peaked, 37) < 1e-6
    assert D.sensitive_constraint(peaked, 38) > 1.99
    with pytest.raises(ValueError):
        D.sensitive_constraint(flat, 0)
    with pytest.raises(ValueError):
        D.sensitive_constraint(flat, [10, 101, 20])


# ---- restorer modules (III-B) ----------------------------------------------------------------


def test_paper_restorer_structure():
    model = _meta("dagn")
    enc, dec = model.base_encoder, model.decoder
    assert [len(s) for s in enc.scales] == [4, 4, 4, 4]
    assert [s[0].body[0].out_channels for s in enc.scales] == [64, 128, 256, 512]
    assert all(d.kernel_size == (2, 2) and d.stride == (2, 2) for d in enc.downs) and len(enc.downs) == 3
    assert len(dec.body) == 4 and len(dec.dagbs) == 3
    assert dec.block_channels == (256, 128, 64)  # D/2, D/4, D/8 with D = 512
    for dagb, ch in zip(dec.dagbs, (256, 128, 64)):
        assert len(dagb.sensitive) == 4 and len(dagb.insensitive) == 4
        assert isinstance(dagb.up, nn.ConvTranspose2d) and dagb.up.kernel_size == (2, 2)
        assert dagb.up.out_channels == ch
    assert model.ci_guider.block_channels == model.cs_guider.block_channels == (256, 128, 64)
    assert _linears(model.ci_guider) == [(2048, 512), (512, 512), (512, 2 * (256 + 128 + 64))]
    assert model.cfm.pool.bins == (1, 2, 4, 8)


def test_base_encoder_and_guided_decoder_shapes():
    model = _small().eval()
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        skips = model.base_encoder(x)
        assert [tuple(s.shape) for s in skips] == [(2, 32, 64, 48), (2, 64, 32, 24), (2, 128, 16, 12),
                                                   (2, 256, 8, 6)]
        neutral = D.Guider.neutral(2, model.decoder.block_channels, x)
        assert model.decoder(skips[-1], skips, neutral, neutral).shape == (2, 3, 64, 48)
        assert model(torch.rand(1, 3, 37, 29)).shape == (1, 3, 37, 29)


def test_guidance_block_follows_eqs_12_13():
    torch.manual_seed(0)
    block = D.GuidanceBlock(6).eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 6, 9, 7)
    scale, bias = torch.randn(2, 6), torch.randn(2, 6)
    with torch.no_grad():
        res = block.body(x)
        zero = torch.zeros(2, 6)
        assert torch.equal(block(x, zero, zero), x)  # scale 0, bias 0: identity
        assert torch.allclose(block(x, zero, bias), x + bias[:, :, None, None])
        assert torch.allclose(block(x, scale, bias), x + scale[:, :, None, None] * res + bias[:, :, None, None])
        plain = D.ResidualBlock(6).eval()
        plain.body.load_state_dict(block.body.state_dict())
        assert torch.allclose(block(x, torch.ones(2, 6), zero), plain(x))  # neutral guidance
    layers = list(block.body)  # C - ReLU - BN - C (RNorm = ReLU then BatchNorm)
    assert [type(m) for m in layers] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.Conv2d]
    assert all(m.kernel_size == (3, 3) for m in layers if isinstance(m, nn.Conv2d))


def test_dual_awareness_guidance_block_with_hand_set_guidance():
    torch.manual_seed(0)
    dagb = D.DualAwarenessGuidanceBlock(8, 4, sensitive_blocks=4, insensitive_blocks=4).eval()
    x, skip = torch.randn(1, 8, 5, 6), torch.randn(1, 8, 5, 6)
    zero = torch.zeros(1, 4)
    eta, gamma = torch.randn(1, 4), torch.randn(1, 4)
    with torch.no_grad():
        up = dagb.up(x + skip)
        assert up.shape == (1, 4, 10, 12)
        # scales zero: every guidance block adds only its bias (4 eta + 4 gamma)
        out = dagb(x, skip, (zero, eta), (zero, gamma))
        assert torch.allclose(out, up + 4 * (eta + gamma)[:, :, None, None], atol=1e-6)
        # general case: the four sensitive blocks (epsilon, eta) first, then the insensitive ones
        eps, beta = torch.rand(1, 4), torch.rand(1, 4)
        f = up
        for b in dagb.sensitive:
            f = f + eps[:, :, None, None] * b.body(f) + eta[:, :, None, None]
        for b in dagb.insensitive:
            f = f + beta[:, :, None, None] * b.body(f) + gamma[:, :, None, None]
        assert torch.allclose(dagb(x, skip, (eps, eta), (beta, gamma)), f, atol=1e-5)


def test_guiders_shapes_neutral_start_and_hand_set_outputs():
    guider = D.Guider(32, 16, (256, 128, 64))
    feats = torch.randn(3, 32, 4, 5)
    out = guider(feats)
    assert [tuple(s.shape) for s, _ in out] == [(3, 256), (3, 128), (3, 64)]
    for scale, bias in out:  # zero-initialised last layer: neutral (scale 1, bias 0)
        assert torch.equal(scale, torch.ones_like(scale)) and torch.equal(bias, torch.zeros_like(bias))
    with torch.no_grad():
        raw = torch.randn(2 * (256 + 128 + 64))
        guider.head.bias.copy_(raw)
    i = 0
    for (scale, bias), c in zip(guider(feats), (256, 128, 64)):
        assert torch.allclose(scale, (2 * torch.sigmoid(raw[i:i + c])).expand(3, c))
        assert torch.allclose(bias, torch.tanh(raw[i + c:i + 2 * c]).expand(3, c))
        i += 2 * c
    assert torch.allclose(guider(feats)[0][0], guider(feats.mean(dim=(2, 3)))[0][0])  # global pooling


def test_pyramid_pooling_bins():
    pool = D.PyramidPool((1, 2, 4, 8))
    x = torch.randn(2, 3, 16, 16)
    y = pool(x)
    assert pool.size == 85 and y.shape == (2, 3, 85)
    assert torch.allclose(y[..., 0], x.mean(dim=(2, 3)))
    assert torch.allclose(y[..., 1:5], x.reshape(2, 3, 2, 8, 2, 8).mean(dim=(3, 5)).flatten(2))
    assert torch.allclose(y[..., 5:21], x.reshape(2, 3, 4, 4, 4, 4).mean(dim=(3, 5)).flatten(2))
    assert torch.allclose(y[..., 21:], x.reshape(2, 3, 8, 2, 8, 2).mean(dim=(3, 5)).flatten(2))
    assert pool(torch.randn(1, 3, 3, 2)).shape == (1, 3, 85)  # features smaller than the finest bin


def test_cross_feature_fusion_eq_10():
    torch.manual_seed(0)
    f_cif, f_bf = torch.randn(2, 12, 3, 4), torch.randn(2, 6, 5, 7)
    literal = D.CrossFeatureFusion(12, 6, softmax=False)
    with torch.no_grad():
        out = literal(f_cif, f_bf)
        q = literal.query(f_bf).flatten(2).transpose(1, 2)
        k, v = literal.pool(literal.key(f_cif)), literal.pool(literal.value(f_cif))
        expected = f_bf + torch.bmm(torch.bmm(q, k), v.transpose(1, 2)).transpose(1, 2).reshape(2, 6, 5, 7)
        assert out.shape == f_bf.shape and torch.allclose(out, expected, atol=1e-4)
        soft = D.CrossFeatureFusion(12, 6, softmax=True)
        nn.init.zeros_(soft.query.weight)
        nn.init.zeros_(soft.query.bias)  # equal similarities: uniform weights over the 85 bins
        mean_v = soft.pool(soft.value(f_cif)).mean(-1)[:, :, None, None]
        assert torch.allclose(soft(f_cif, f_bf), f_bf + mean_v, atol=1e-5)


# ---- the whole network ----------------------------------------------------------------------


def test_stage_two_freezing_and_gradients():
    model = _small()
    model.freeze_awareness_encoders()
    frozen = [model.ci_encoder, model.cs_encoder, model.qf_predictor]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    model.train()
    assert model.awareness_frozen and all(not m.training for m in frozen) and model.decoder.training
    restorer = {id(p) for p in model.restorer_parameters()}
    assert restorer == {id(p) for p in model.parameters() if p.requires_grad}
    torch.manual_seed(1)
    o = torch.rand(2, 3, 48, 48)
    c = (o + 0.05 * torch.randn_like(o)).clamp(0, 1)
    loss = D.restoration_loss(model(c), o)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None for m in frozen for p in m.parameters())
    for part in (model.base_encoder, model.cfm, model.decoder, model.ci_guider.head, model.cs_guider.head):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    model.unfreeze_awareness_encoders()
    assert all(p.requires_grad for m in frozen for p in m.parameters()) and model.ci_encoder.training


def test_predict_quality_in_range():
    model = _small().eval()
    with torch.no_grad():
        est = model.predict_quality(torch.rand(3, 3, 37, 45))
        assert est.logits.shape == (3, 100)
        assert ((est.expected >= 1) & (est.expected <= 100)).all()
        assert est.most_likely.dtype == torch.int64
        assert ((est.most_likely >= 1) & (est.most_likely <= 100)).all()
        last = model.qf_predictor.mlp[-1]
        last.weight.zero_()
        last.bias.fill_(-30.0)
        last.bias[74] = 30.0  # class 74 is QF 75
        est = model.predict_quality(torch.rand(1, 3, 32, 32))
        assert est.most_likely.item() == 75 and abs(est.expected.item() - 75) < 1e-3


def test_ablation_variants_of_table_v():
    x = torch.rand(1, 3, 37, 29)
    for kw in (dict(use_cigm=False, use_csgm=False, use_cfm=False), dict(use_csgm=False, use_cfm=False),
               dict(use_cigm=False, use_cfm=False), dict(use_cigm=False, use_csgm=False)):
        model = _tiny(**kw).eval()
        with torch.no_grad():
            assert model(x).shape == x.shape
        assert (model.ci_guider is None) == (not kw.get("use_cigm", True))
        assert (model.cfm is None) == (not kw.get("use_cfm", True))
    baseline = _tiny(use_cigm=False, use_cfm=False)
    assert baseline.ci_encoder is None
    with pytest.raises(ModelError):
        baseline.insensitive_autoencoder()


def test_neutral_guiders_at_start_equal_the_baseline_path():
    # Zero-initialised guider heads give scale 1, bias 0, i.e. what Table V's baseline hard-codes.
    full = _tiny(use_cfm=False).eval()
    base = _tiny(use_cigm=False, use_csgm=False, use_cfm=False).eval()
    base.load_state_dict({k: v for k, v in full.state_dict().items()
                          if not k.startswith(("ci_guider", "cs_guider", "ci_encoder"))})
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        assert torch.allclose(full(x), base(x), atol=1e-6)


def test_bad_configurations_are_clear_errors():
    with pytest.raises(ModelError):
        create_model("dagn-small", awareness_layers=(2, 2, 2))
    with pytest.raises(ModelError):
        create_model("dagn-small", awareness_block="dense")
    with pytest.raises(ModelError):
        create_model("dagn-small", encoder_blocks=(1, 2))


def test_awareness_encoder_runs_in_fp32_under_bf16_autocast():
    from carkit.models.dagn import AwarenessEncoder

    enc = AwarenessEncoder(3, (1, 1, 1, 1), 4).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = enc(x)
        with torch.autocast("cpu", torch.bfloat16):
            out = enc(x)
    assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=1e-6)
