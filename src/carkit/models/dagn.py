"""DAGN: Ma, Zhao, Peng, Tian, "Sensitivity Decouple Learning for Image
Compression Artifacts Reduction" (Dual Awareness Guidance Network). One blind
restorer for all JPEG qualities.

Every module of the paper's section III is here:

* Sensitivity decouple learning (III-A, stage one of Algorithm 1)
  - ``AwarenessEncoder``: the ResNet-50-style encoder (bottleneck blocks
    3-4-6-3, no average pooling, the last stride 2 replaced by 1, so features
    are 2048 x H/16 x W/16).
  - ``AwarenessDecoder``: the 15-layer fully convolutional decoder.
  - ``CompressionInsensitiveAE``: encoder + decoder + discriminator MLP
    2048-2048-1; losses of eqs. 3-6 (``content_constraint``,
    ``insensitive_constraint``, ``discriminator_loss``).
  - ``CompressionSensitiveAE``: same encoder/decoder + QF predictor MLP
    2048-2048-100; losses of eqs. 7-9 (``content_constraint``,
    ``sensitive_constraint``).
* The restorer (III-B, stage two)
  - ``BaseEncoder``: 4 scales (64/128/256/512), 4 residual blocks a scale,
    2x2 stride-2 convolutions between scales.
  - ``Guider``: the compression-insensitive and compression-sensitive guiders,
    3-layer MLPs on the pooled awareness features producing (beta_i, gamma_i)
    and (epsilon_i, eta_i) for the three guidance stages.
  - ``CrossFeatureFusion`` (CFM, eq. 10) with ``PyramidPool`` bins 1/2/4/8.
  - ``GuidedDecoder``: 4 residual blocks at the first scale, then three
    ``DualAwarenessGuidanceBlock`` (eq. 11: 2x2 transposed-conv upsampling,
    four ``GuidanceBlock`` driven by (epsilon, eta) (eq. 13), then four driven
    by (beta, gamma) (eq. 12)).
  - ``DAGN``: the whole network; ``restoration_loss`` is eq. 14.

Algorithm 1 with this module::

    model = create_model("dagn-small")
    ci_ae = model.insensitive_autoencoder()   # shares model.ci_encoder
    cs_ae = model.sensitive_autoencoder()     # shares model.cs_encoder, model.qf_predictor
    # stage one: ci_ae.losses(c, o)["total"] for encoder+decoder (eq. 3),
    #            ci_ae.discriminator_loss(...) for the discriminator (eq. 4),
    #            cs_ae.losses(c, o, qf)["total"] for all of cs_ae (eq. 7)
    model.freeze_awareness_encoders()
    # stage two: restoration_loss(model(c), o) over model.restorer_parameters() (eqs. 14-15)

Registered configurations: ``dagn`` (the paper's size) and ``dagn-small``
(same modules and losses; 32/64/128/256 channels, fewer blocks, a quarter-width
ResNet-26-style awareness backbone, narrower MLPs: about the CPU cost per pixel
of ``resunet-color``). Sizes (``carkit.models.complexity``; MACs at 512x512):

=========================  ===========  =========  ===============================
configuration              parameters   MACs       note
=========================  ===========  =========  ===============================
paper, Table III           109.9 M      952.8 G    printed as "FLOPs"; they are MACs
``dagn``, restorer         110.67 M     932.6 G    what ``forward`` runs
``dagn``, whole module     115.07 M                + QF predictor (in the weights)
``dagn-small``, restorer   6.61 M       69.9 G     resunet-color: 4.22 M, 61.7 G
``dagn-small``, module     6.92 M                  13.2 MiB as float16
=========================  ===========  =========  ===============================

(In the 2-FLOPs-per-MAC convention of ``FlopCounterMode`` ``dagn`` costs
1865 G FLOPs, twice the paper's figure: the paper's 952.8 G is a MAC count, the
usual convention of FLOP-counting tools in this field.) The +0.7 % parameter
gap lies within what the paper leaves open: the guiders' hidden width is not
given (512 here); about 410 would close the gap exactly. The -2.1 % MAC gap is not attributable
to one choice; candidates are the unstated CFM placement, kernel sizes of the
up/downsampling layers, and what the paper's counting tool includes. The
auto-encoders' decoders and the discriminator are training-only: they are not
counted and ``DAGN`` does not build them.

Differs from the paper, or is not specified by it and chosen here:

* No ImageNet pretraining of the awareness encoders: they are trained from
  scratch in stage one (the paper does not say either way). ResNet details
  follow torchvision's ResNet-50 v1.5 (stride on the 3x3 convolution).
* The paper's losses sum absolute errors over pixels (||.||_1); here they are
  means over pixels, so the penalty factors do not depend on patch size.
* Eq. 6 is implemented literally (``form="paper"``): the auto-encoder minimises
  ``-log J(E(c)) + log J(E(o))`` and the discriminator (eq. 4) its negative.
  Both are unbounded below (saturating minimax with a log on both sides), so a
  bounded counterpart is offered (``form="bce"``: discriminator
  ``-log J(o) - log(1 - J(c))``, auto-encoder the label-flipped
  ``-log J(c) - log(1 - J(o))``). J outputs a logit; the probability is its
  sigmoid.
* Eq. 9 is implemented literally (``form="paper"``): the L1 distance between
  the softmax of the QF logits and the one-hot QF (100 classes, class k is
  QF k+1), originals labelled QF 100; ``form="ce"`` is the cross-entropy the
  text's "standard classification" suggests.
* The 15-layer decoder is "5 convolutional layers followed by alternating
  convolution and convolution transpose layers": here 5 3x3 convolutions then
  5 x (transposed convolution, 3x3 convolution) = 15 layers. The encoder's
  stride is 16, so the first transposed convolution has stride 1 (3x3,
  mirroring the encoder's last stage, whose stride was set to 1) and the other
  four stride 2 (4x4); BatchNorm + ReLU after every layer but the last;
  widths ``ae_decoder_channels`` (paper config 512 x5, then 512, 256, 128, 64,
  32, then out). Widths and kernel sizes are not in the paper.
* MLPs "2048 x 2048 x 1" / "2048 x 2048 x 100" are read as input 2048 ->
  hidden 2048 -> output, on globally average-pooled features; LeakyReLU(0.2)
  in the discriminator, ReLU elsewhere.
* Guiders: 3 linear layers, hidden width ``guider_hidden`` (512 = D, not
  stated), the last one producing all (scale, bias) pairs of the three
  stages. Scale = 2 sigmoid(.), bias = tanh(.) (the paper gives no output
  activations; FBCNN uses sigmoid/tanh), and the last layer starts at zero, so
  every guidance block starts as the plain residual block x + C(RNorm(C(x))).
* The ablation's neutral guidance "(O, J)" is read as scale = 1 (all ones) and
  bias = 0: taken literally (scale 0, bias 1) it would delete every
  convolution of the guided decoder. ``use_cigm`` / ``use_csgm`` /
  ``use_cfm`` reproduce Table V's variants that way.
* Eq. 10 (CFM) is the asymmetric pyramid non-local product; the similarity
  ``C3(F_bf)^T Pool(C1(F_cif))`` is normalised by a softmax over the 85 pooled
  positions with temperature sqrt(C_b) (``fusion_softmax=True``, as in the
  asymmetric non-local block the construction comes from); without it (the
  literal equation) activations grow with C_b x 85. The CFM fuses at the
  base encoder's last scale (512 channels, 1/8 resolution), its output feeding
  the guided decoder; the paper does not say where.
* Skips: scale s of the base encoder hands the output of its residual blocks
  (before downsampling) to the decoder, which adds it to the input of the
  matching DAGB (eq. 11) and, at full resolution, before the tail. RNorm is
  ReLU then BatchNorm, as written. A global residual (output = input + tail)
  is added (``global_residual=True``); the tail convolution starts small
  (std 1e-3). Inputs are padded by replication to a multiple of 16 (the
  awareness encoders' stride) and cropped back.
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .registry import register_model

PAPER = ("Ma, Zhao, Peng, Tian, Sensitivity Decouple Learning for Image Compression Artifacts "
         "Reduction (DAGN)")

NUM_QF_CLASSES = 100  # class k <-> JPEG quality k + 1


# --------------------------------------------------------------------------------------------
# helpers


def _tuple(value, n: int | None = None, name: str = "value") -> tuple:
    t = tuple(value) if isinstance(value, (tuple, list)) else ((value,) * (n or 1))
    if n is not None and len(t) != n:
        raise ModelError(f"{name} needs {n} entries, got {len(t)}")
    return t


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x


def _pooled(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C) by global average pooling; (N, C) passes."""
    return features.mean(dim=(-2, -1)) if features.dim() == 4 else features


# --------------------------------------------------------------------------------------------
# awareness auto-encoders (III-A)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3 with the stride, 1x1 x4), BatchNorm, ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or in_channels != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3), BatchNorm, ReLU."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or in_channels != width:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, width, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class AwarenessEncoder(nn.Module):
    """ResNet-style feature encoder E_ci / E_cs: 7x7 stride-2 stem, 3x3
    stride-2 max pooling, four stages of ``layers`` blocks with widths
    ``width`` x 1/2/4/8 and strides 1/2/2/``last_stride``; no average pooling,
    no classifier. Defaults are the paper's modified ResNet-50.

    Shape: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride) for
    H, W multiples of ``stride`` (16 by default); other sizes round up.
    """

    def __init__(self, in_channels: int = 3, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                 block: str = "bottleneck", last_stride: int = 1):
        super().__init__()
        layers = _tuple(layers, 4, "awareness_layers")
        blocks = {"bottleneck": Bottleneck, "basic": BasicBlock}
        if block not in blocks:
            raise ModelError(f"awareness block must be one of {sorted(blocks)}, got {block!r}")
        if last_stride not in (1, 2):
            raise ModelError("last_stride must be 1 or 2")
        block_cls = blocks[block]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        stages = []
        ch = width
        for i, (n, stride) in enumerate(zip(layers, (1, 2, 2, last_stride))):
            w = width * 2 ** i
            stage = []
            for j in range(n):
                stage.append(block_cls(ch, w, stride if j == 0 else 1))
                ch = w * block_cls.expansion
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.out_channels = ch
        self.stride = 16 * last_stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Always fp32, also under a bf16 autocast: bf16 keeps 8 mantissa bits,
        # about one grey level, which rounds away the small artifacts of high
        # qualities that the compression-sensitive branch has to see.
        if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.stages(self.stem(x.float()))
        return self.stages(self.stem(x))


class AwarenessDecoder(nn.Module):
    """The auto-encoders' 15-layer fully convolutional decoder D_ci / D_cs:
    ``num_convs`` 3x3 convolutions at ``channels[0]``, then for each further
    width a transposed convolution followed by a 3x3 convolution; the last
    convolution outputs ``out_channels``. Transposed convolutions are 4x4
    stride 2 (the last log2(upsample) of them) or 3x3 stride 1 (the first
    ones). BatchNorm + ReLU after every layer but the last.

    Shape: (N, in_features, h, w) -> (N, out_channels, h * upsample, w * upsample).
    """

    def __init__(self, in_features: int, out_channels: int = 3,
                 channels: Sequence[int] = (512, 512, 256, 128, 64, 32), num_convs: int = 5,
                 upsample: int = 16):
        super().__init__()
        channels = tuple(channels)
        n_up = len(channels) - 1
        n_stride2 = int(round(math.log2(upsample)))
        if 2 ** n_stride2 != upsample or n_up < n_stride2 or num_convs < 1:
            raise ModelError(f"decoder needs at least log2({upsample}) transposed convolutions, "
                             f"got channels={channels}")
        strides = [1] * (n_up - n_stride2) + [2] * n_stride2
        layers: list[nn.Module] = []
        ch = in_features
        for _ in range(num_convs):
            layers += [nn.Conv2d(ch, channels[0], 3, padding=1), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
            ch = channels[0]
        for j, stride in enumerate(strides):
            nxt = channels[j + 1]
            if stride == 2:
                layers.append(nn.ConvTranspose2d(ch, nxt, 4, stride=2, padding=1))
            else:
                layers.append(nn.ConvTranspose2d(ch, nxt, 3, stride=1, padding=1))
            layers += [nn.BatchNorm2d(nxt), nn.ReLU(inplace=True)]
            last = j == len(strides) - 1
            layers.append(nn.Conv2d(nxt, out_channels if last else nxt, 3, padding=1))
            if not last:
                layers += [nn.BatchNorm2d(nxt), nn.ReLU(inplace=True)]
            ch = nxt
        self.body = nn.Sequential(*layers)
        self.num_layers = sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


class MLPHead(nn.Module):
    """Global average pooling then a two-linear-layer MLP in -> hidden -> out:
    the discriminator J (2048-2048-1, outputs a logit) and the QF predictor
    P_qf (2048-2048-100, outputs logits). Accepts (N, C, H, W) or (N, C)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, negative_slope: float = 0.0):
        super().__init__()
        act = nn.LeakyReLU(negative_slope, inplace=True) if negative_slope else nn.ReLU(inplace=True)
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), act, nn.Linear(hidden, out_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(_pooled(features))


# ---- losses (eqs. 3-9, 14) -------------------------------------------------------------------


def content_constraint(recon_c: torch.Tensor, c: torch.Tensor, recon_o: torch.Tensor,
                       o: torch.Tensor) -> torch.Tensor:
    """Eqs. 5 and 8: (||D(E(c)) - c||_1 + ||D(E(o)) - o||_1) / 2, with per-pixel
    means instead of sums."""
    return 0.5 * ((recon_c - c).abs().mean() + (recon_o - o).abs().mean())


def insensitive_constraint(logit_c: torch.Tensor, logit_o: torch.Tensor, form: str = "paper") -> torch.Tensor:
    """Eq. 6, the auto-encoder's adversarial term L_cic (J = sigmoid(logit) is
    the probability that features come from an original image).

    ``form="paper"``: mean(-log J(E(c)) + log J(E(o))) / 2, literally;
    ``form="bce"``: mean(-log J(E(c)) - log(1 - J(E(o)))) / 2, the bounded
    label-flipped counterpart."""
    if form == "paper":
        return 0.5 * (-F.logsigmoid(logit_c) + F.logsigmoid(logit_o)).mean()
    if form == "bce":
        return 0.5 * (-F.logsigmoid(logit_c) - F.logsigmoid(-logit_o)).mean()
    raise ValueError(f"form must be 'paper' or 'bce', got {form!r}")


def discriminator_loss(logit_c: torch.Tensor, logit_o: torch.Tensor, form: str = "paper") -> torch.Tensor:
    """Eq. 4, what the discriminator J minimises.

    ``form="paper"``: -L_cic = mean(log J(E(c)) - log J(E(o))) / 2;
    ``form="bce"``: the standard GAN discriminator loss
    mean(-log(1 - J(E(c))) - log J(E(o))) / 2."""
    if form == "paper":
        return -insensitive_constraint(logit_c, logit_o, "paper")
    if form == "bce":
        return 0.5 * (-F.logsigmoid(-logit_c) - F.logsigmoid(logit_o)).mean()
    raise ValueError(f"form must be 'paper' or 'bce', got {form!r}")


def _qf_labels(qf, n: int, device) -> torch.Tensor:
    q = torch.as_tensor(qf, device=device).long().reshape(-1)
    if q.numel() == 1:
        q = q.expand(n)
    if q.numel() != n:
        raise ValueError(f"need one quality per image: {q.numel()} for {n} images")
    if bool(((q < 1) | (q > NUM_QF_CLASSES)).any()):
        raise ValueError("JPEG qualities must be integers in 1..100")
    return q - 1


def sensitive_constraint(logits_c: torch.Tensor, qf_c, logits_o: torch.Tensor | None = None,
                         qf_o=100, form: str = "paper") -> torch.Tensor:
    """Eq. 9, L_csc: the QF predictor's error on compressed images (labels
    ``qf_c``, ints 1..100) and on originals (label ``qf_o``, 100 by default).

    ``form="paper"``: L1 distance between softmax(logits) and the one-hot QF,
    summed over the 100 classes, averaged over images, halved over the two
    terms; ``form="ce"``: cross-entropy. With ``logits_o=None`` only the
    compressed term is computed (not halved)."""
    terms = [(logits_c, _qf_labels(qf_c, logits_c.shape[0], logits_c.device))]
    if logits_o is not None:
        terms.append((logits_o, _qf_labels(qf_o, logits_o.shape[0], logits_o.device)))
    losses = []
    for logits, labels in terms:
        if form == "paper":
            onehot = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
            losses.append((logits.softmax(-1) - onehot).abs().sum(-1).mean())
        elif form == "ce":
            losses.append(F.cross_entropy(logits, labels))
        else:
            raise ValueError(f"form must be 'paper' or 'ce', got {form!r}")
    return sum(losses) / len(losses)


def restoration_loss(out: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """Eq. 14: mean absolute error between the restored and original images."""
    return (out - o).abs().mean()


class CompressionInsensitiveAE(nn.Module):
    """E_ci + D_ci + discriminator J (III-A1). ``encoder`` shares an existing
    encoder (``DAGN.insensitive_autoencoder`` passes its own); otherwise one
    is built from the encoder arguments.

    Alternating updates: minimise ``losses(c, o)["total"]`` (eq. 3) over
    ``autoencoder_parameters()``; minimise ``discriminator_loss(...)`` (eq. 4)
    over ``discriminator.parameters()``."""

    def __init__(self, in_channels: int = 3, encoder_layers: Sequence[int] = (3, 4, 6, 3),
                 encoder_width: int = 64, encoder_block: str = "bottleneck",
                 decoder_channels: Sequence[int] = (512, 512, 256, 128, 64, 32),
                 discriminator_hidden: int = 2048, encoder: AwarenessEncoder | None = None):
        super().__init__()
        self.encoder = encoder if encoder is not None else AwarenessEncoder(
            in_channels, encoder_layers, encoder_width, encoder_block)
        self.decoder = AwarenessDecoder(self.encoder.out_channels, in_channels, decoder_channels,
                                        upsample=self.encoder.stride)
        self.discriminator = MLPHead(self.encoder.out_channels, discriminator_hidden, 1, negative_slope=0.2)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(_pad_to_multiple(x, self.encoder.stride))

    def _decode(self, features: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)[..., : like.shape[-2], : like.shape[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction D_ci(E_ci(x)), same shape as ``x``."""
        return self._decode(self._encode(x), x)

    def autoencoder_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.encoder.parameters()
        yield from self.decoder.parameters()

    def losses(self, c: torch.Tensor, o: torch.Tensor, lambda_ci: float = 1.0,
               form: str = "paper") -> dict[str, torch.Tensor]:
        """Eq. 3's objective for E_ci and D_ci: ``total`` = ``content`` (eq. 5)
        + lambda_ci ``insensitive`` (eq. 6). Also returns the encoded features
        ``features_c`` / ``features_o`` for the discriminator step."""
        fc, fo = self._encode(c), self._encode(o)
        content = content_constraint(self._decode(fc, c), c, self._decode(fo, o), o)
        adv = insensitive_constraint(self.discriminator(fc).squeeze(-1), self.discriminator(fo).squeeze(-1), form)
        return {"total": content + lambda_ci * adv, "content": content, "insensitive": adv,
                "features_c": fc, "features_o": fo}

    def discriminator_loss(self, features_c: torch.Tensor, features_o: torch.Tensor,
                           form: str = "paper") -> torch.Tensor:
        """Eq. 4 on (detached) encoder features: gradients reach only J."""
        return discriminator_loss(self.discriminator(features_c.detach()).squeeze(-1),
                                  self.discriminator(features_o.detach()).squeeze(-1), form)


class QFPrediction(NamedTuple):
    """The QF predictor's answer for a batch of decoded images (not the
    table-based :class:`carkit.jpeg.quality.QualityEstimate` of a file)."""

    logits: torch.Tensor       #: (N, 100); class k is JPEG quality k + 1
    expected: torch.Tensor     #: (N,) float, sum_k p_k (k + 1), in [1, 100]
    most_likely: torch.Tensor  #: (N,) int64 in 1..100


def _qf_prediction(logits: torch.Tensor) -> QFPrediction:
    probs = logits.softmax(-1)
    q = torch.arange(1, logits.shape[-1] + 1, device=logits.device, dtype=probs.dtype)
    return QFPrediction(logits, (probs * q).sum(-1), logits.argmax(-1) + 1)


class CompressionSensitiveAE(nn.Module):
    """E_cs + D_cs + QF predictor P_qf (III-A2). All three are updated with
    ``losses(c, o, qf)["total"]`` (eq. 7). ``encoder`` / ``qf_predictor``
    share existing modules (``DAGN.sensitive_autoencoder`` passes its own)."""

    def __init__(self, in_channels: int = 3, encoder_layers: Sequence[int] = (3, 4, 6, 3),
                 encoder_width: int = 64, encoder_block: str = "bottleneck",
                 decoder_channels: Sequence[int] = (512, 512, 256, 128, 64, 32),
                 qf_hidden: int = 2048, encoder: AwarenessEncoder | None = None,
                 qf_predictor: MLPHead | None = None):
        super().__init__()
        self.encoder = encoder if encoder is not None else AwarenessEncoder(
            in_channels, encoder_layers, encoder_width, encoder_block)
        self.decoder = AwarenessDecoder(self.encoder.out_channels, in_channels, decoder_channels,
                                        upsample=self.encoder.stride)
        self.qf_predictor = qf_predictor if qf_predictor is not None else MLPHead(
            self.encoder.out_channels, qf_hidden, NUM_QF_CLASSES)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(_pad_to_multiple(x, self.encoder.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction D_cs(E_cs(x)), same shape as ``x``."""
        return self.decoder(self._encode(x))[..., : x.shape[-2], : x.shape[-1]]

    def predict_quality(self, x: torch.Tensor) -> QFPrediction:
        return _qf_prediction(self.qf_predictor(self._encode(x)))

    def losses(self, c: torch.Tensor, o: torch.Tensor, qf, lambda_cs: float = 1.0, qf_original: int = 100,
               form: str = "paper") -> dict[str, torch.Tensor]:
        """Eq. 7's objective: ``total`` = ``content`` (eq. 8) + lambda_cs
        ``sensitive`` (eq. 9); ``qf`` holds the compressed images' qualities
        (ints 1..100, one per image or one for all)."""
        fc, fo = self._encode(c), self._encode(o)
        rc = self.decoder(fc)[..., : c.shape[-2], : c.shape[-1]]
        ro = self.decoder(fo)[..., : o.shape[-2], : o.shape[-1]]
        content = content_constraint(rc, c, ro, o)
        sens = sensitive_constraint(self.qf_predictor(fc), qf, self.qf_predictor(fo), qf_original, form)
        return {"total": content + lambda_cs * sens, "content": content, "sensitive": sens}


# --------------------------------------------------------------------------------------------
# the restorer (III-B)


class ResidualBlock(nn.Module):
    """x + C(RNorm(C(x))): two 3x3 convolutions, ReLU then BatchNorm between."""

    def __init__(self, channels: int, batch_norm: bool = True):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.BatchNorm2d(channels) if batch_norm else nn.Identity(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GuidanceBlock(nn.Module):
    """Eqs. 12 / 13: ``x + scale * C(RNorm(C(x))) + bias`` with channel-wise
    (N, C) ``scale`` and ``bias``: (beta, gamma) for the compression-
    insensitive block, (epsilon, eta) for the compression-sensitive one.
    Scale 1 and bias 0 give a plain residual block; scale 0 and bias 0 the
    identity."""

    def __init__(self, channels: int, batch_norm: bool = True):
        super().__init__()
        self.body = ResidualBlock(channels, batch_norm).body

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + scale[..., None, None] * self.body(x) + bias[..., None, None]


class DualAwarenessGuidanceBlock(nn.Module):
    """Eq. 11: B_cig^n(B_csg^m(T_2(F_in + F_sc))): 2x2 stride-2 transposed
    convolution of the input plus skip, then ``sensitive_blocks`` guidance
    blocks driven by (epsilon, eta) and ``insensitive_blocks`` driven by
    (beta, gamma)."""

    def __init__(self, in_channels: int, out_channels: int, sensitive_blocks: int = 4,
                 insensitive_blocks: int = 4, batch_norm: bool = True):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.sensitive = nn.ModuleList(GuidanceBlock(out_channels, batch_norm) for _ in range(sensitive_blocks))
        self.insensitive = nn.ModuleList(GuidanceBlock(out_channels, batch_norm)
                                         for _ in range(insensitive_blocks))

    def forward(self, x: torch.Tensor, skip: torch.Tensor, sensitive: tuple[torch.Tensor, torch.Tensor],
                insensitive: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        f = self.up(x + skip)
        for block in self.sensitive:
            f = block(f, *sensitive)
        for block in self.insensitive:
            f = block(f, *insensitive)
        return f


class Guider(nn.Module):
    """Compression-insensitive / -sensitive guider: a three-layer MLP on the
    globally pooled awareness features. Two shared layers, then one linear
    layer producing (scale_i, bias_i) for every guidance stage i, with
    ``block_channels[i]`` channels each: scale = 2 sigmoid(.), bias = tanh(.).
    The last layer starts at zero (scale 1, bias 0: neutral guidance)."""

    def __init__(self, in_features: int, hidden: int, block_channels: Sequence[int]):
        super().__init__()
        self.block_channels = tuple(block_channels)
        self.shared = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                    nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.head = nn.Linear(hidden, 2 * sum(self.block_channels))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        raw = self.head(self.shared(_pooled(features)))
        out, i = [], 0
        for c in self.block_channels:
            out.append((2 * torch.sigmoid(raw[:, i:i + c]), torch.tanh(raw[:, i + c:i + 2 * c])))
            i += 2 * c
        return out

    @staticmethod
    def neutral(n: int, block_channels: Sequence[int], like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Scale 1, bias 0 for every stage (guidance switched off)."""
        return [(like.new_ones(n, c), like.new_zeros(n, c)) for c in block_channels]


class PyramidPool(nn.Module):
    """Adaptive average pooling to k x k for each k in ``bins``, flattened
    and concatenated: (N, C, H, W) -> (N, C, sum k^2) (85 for 1/2/4/8)."""

    def __init__(self, bins: Sequence[int] = (1, 2, 4, 8)):
        super().__init__()
        self.bins = tuple(int(b) for b in bins)

    @property
    def size(self) -> int:
        return sum(b * b for b in self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.adaptive_avg_pool2d(x, b).flatten(2) for b in self.bins], dim=2)


class CrossFeatureFusion(nn.Module):
    """CFM, eq. 10: F_bf + C3(F_bf) x Pool(C1(F_cif)) x Pool(C2(F_cif))^T,
    read as a matrix product over (H_b W_b) x C_b, C_b x S and S x C_b with
    S = sum k^2 pooled positions. ``softmax=True`` normalises the similarity
    C3(F_bf) x Pool(C1(F_cif)) over the S positions (temperature sqrt(C_b)).

    Shape: F_cif (N, C_c, H_c, W_c), F_bf (N, C_b, H_b, W_b) -> like F_bf."""

    def __init__(self, insensitive_channels: int, base_channels: int, bins: Sequence[int] = (1, 2, 4, 8),
                 softmax: bool = True):
        super().__init__()
        self.key = nn.Conv2d(insensitive_channels, base_channels, 1)    # C_1^1
        self.value = nn.Conv2d(insensitive_channels, base_channels, 1)  # C_2^1
        self.query = nn.Conv2d(base_channels, base_channels, 1)         # C_3^1
        self.pool = PyramidPool(bins)
        self.softmax = softmax

    def forward(self, f_cif: torch.Tensor, f_bf: torch.Tensor) -> torch.Tensor:
        n, c, h, w = f_bf.shape
        q = self.query(f_bf).flatten(2).transpose(1, 2)  # (N, HW, C_b)
        k = self.pool(self.key(f_cif))                   # (N, C_b, S)
        v = self.pool(self.value(f_cif))                 # (N, C_b, S)
        sim = q @ k                                      # (N, HW, S)
        if self.softmax:
            sim = torch.softmax(sim / math.sqrt(c), dim=-1)
        fused = (sim @ v.transpose(1, 2)).transpose(1, 2).reshape(n, c, h, w)
        return f_bf + fused


class BaseEncoder(nn.Module):
    """3x3 head, then per scale ``blocks[s]`` residual blocks, with 2x2
    stride-2 convolutions between scales. Returns every scale's output (the
    skips; the last is the encoded feature)."""

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (64, 128, 256, 512),
                 blocks: Sequence[int] = (4, 4, 4, 4), batch_norm: bool = True):
        super().__init__()
        channels, blocks = tuple(channels), tuple(blocks)
        self.head = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.scales = nn.ModuleList(nn.Sequential(*[ResidualBlock(ch, batch_norm) for _ in range(b)])
                                    for ch, b in zip(channels, blocks))
        self.downs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 2, stride=2)
                                   for i in range(len(channels) - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.head(x)
        skips = []
        for i, scale in enumerate(self.scales):
            f = scale(f)
            skips.append(f)
            if i < len(self.downs):
                f = self.downs[i](f)
        return skips


class GuidedDecoder(nn.Module):
    """``body_blocks`` residual blocks at the coarsest scale, then one
    ``DualAwarenessGuidanceBlock`` per finer scale, then the skip of the finest
    scale and a 3x3 tail convolution to ``out_channels``."""

    def __init__(self, out_channels: int = 3, channels: Sequence[int] = (64, 128, 256, 512),
                 body_blocks: int = 4, sensitive_blocks: int = 4, insensitive_blocks: int = 4,
                 batch_norm: bool = True):
        super().__init__()
        channels = tuple(channels)
        self.body = nn.Sequential(*[ResidualBlock(channels[-1], batch_norm) for _ in range(body_blocks)])
        self.dagbs = nn.ModuleList(
            DualAwarenessGuidanceBlock(channels[i + 1], channels[i], sensitive_blocks, insensitive_blocks,
                                       batch_norm)
            for i in range(len(channels) - 2, -1, -1))
        #: channels of the guidance stages, coarse to fine (D/2, D/4, D/8 in the paper)
        self.block_channels = tuple(channels[i] for i in range(len(channels) - 2, -1, -1))
        self.tail = nn.Conv2d(channels[0], out_channels, 3, padding=1)
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)

    def forward(self, f: torch.Tensor, skips: Sequence[torch.Tensor],
                sensitive: Sequence[tuple[torch.Tensor, torch.Tensor]],
                insensitive: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        f = self.body(f)
        for k, dagb in enumerate(self.dagbs):
            f = dagb(f, skips[-1 - k], sensitive[k], insensitive[k])
        return self.tail(f + skips[0])


class AwarenessFeatures(NamedTuple):
    insensitive: torch.Tensor | None  #: F_cif, (N, C, H/16, W/16); None without CIGM and CFM
    sensitive: torch.Tensor           #: F_csf, (N, C, H/16, W/16)


class DAGN(nn.Module):
    """Dual Awareness Guidance Network.

    Shape: (N, in_channels, H, W) in [0, 1] -> restored (N, in_channels, H, W),
    any H, W (padded by replication to a multiple of ``pad_multiple`` and
    cropped back).

    Submodules: ``ci_encoder`` / ``cs_encoder`` (E_ci / E_cs), ``qf_predictor``
    (P_qf, used by ``predict_quality``), ``ci_guider`` / ``cs_guider``,
    ``base_encoder``, ``cfm``, ``decoder``. The auto-encoders' decoders and the
    discriminator exist only for stage one: ``insensitive_autoencoder()`` /
    ``sensitive_autoencoder()`` build them around the shared encoders.

    Example::

        >>> model = DAGN(channels=(8, 16, 32, 64), encoder_blocks=1, decoder_blocks=1,
        ...              sensitive_blocks=1, insensitive_blocks=1, awareness_layers=(1, 1, 1, 1),
        ...              awareness_width=4, guider_hidden=16, qf_hidden=16)
        >>> model(torch.rand(1, 3, 37, 29)).shape
        torch.Size([1, 3, 37, 29])
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (64, 128, 256, 512),
                 encoder_blocks: int | Sequence[int] = 4, decoder_blocks: int = 4,
                 sensitive_blocks: int = 4, insensitive_blocks: int = 4, batch_norm: bool = True,
                 awareness_layers: Sequence[int] = (3, 4, 6, 3), awareness_width: int = 64,
                 awareness_block: str = "bottleneck", guider_hidden: int = 512, qf_hidden: int = 2048,
                 discriminator_hidden: int = 2048,
                 ae_decoder_channels: Sequence[int] = (512, 512, 256, 128, 64, 32),
                 fusion_bins: Sequence[int] = (1, 2, 4, 8), fusion_softmax: bool = True,
                 use_cigm: bool = True, use_csgm: bool = True, use_cfm: bool = True,
                 global_residual: bool = True):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ModelError("DAGN needs at least two scales")
        blocks = _tuple(encoder_blocks, len(channels), "encoder_blocks")
        self.in_channels = in_channels
        self.channels = channels
        self.global_residual = global_residual
        self.use_cigm, self.use_csgm, self.use_cfm = use_cigm, use_csgm, use_cfm
        # Kept for building the stage-one auto-encoders around the shared encoders.
        self._ae_config = {"in_channels": in_channels, "decoder_channels": tuple(ae_decoder_channels),
                           "discriminator_hidden": discriminator_hidden}

        def encoder() -> AwarenessEncoder:
            return AwarenessEncoder(in_channels, awareness_layers, awareness_width, awareness_block)

        self.ci_encoder = encoder() if (use_cigm or use_cfm) else None
        self.cs_encoder = encoder()
        feat = self.cs_encoder.out_channels
        self.qf_predictor = MLPHead(feat, qf_hidden, NUM_QF_CLASSES)
        self.base_encoder = BaseEncoder(in_channels, channels, blocks, batch_norm)
        self.cfm = CrossFeatureFusion(feat, channels[-1], fusion_bins, fusion_softmax) if use_cfm else None
        self.decoder = GuidedDecoder(in_channels, channels, decoder_blocks, sensitive_blocks,
                                     insensitive_blocks, batch_norm)
        self.ci_guider = Guider(feat, guider_hidden, self.decoder.block_channels) if use_cigm else None
        self.cs_guider = Guider(feat, guider_hidden, self.decoder.block_channels) if use_csgm else None
        self.pad_multiple = math.lcm(2 ** (len(channels) - 1), self.cs_encoder.stride)
        self._awareness_frozen = False

    # ---- inference ------------------------------------------------------------------------

    def _awareness(self, xp: torch.Tensor) -> AwarenessFeatures:
        f_ci = self.ci_encoder(xp) if self.ci_encoder is not None else None
        return AwarenessFeatures(f_ci, self.cs_encoder(xp))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = _pad_to_multiple(x, self.pad_multiple)
        f_ci = self.ci_encoder(xp) if self.ci_encoder is not None else None
        f_cs = self.cs_encoder(xp) if self.cs_guider is not None else None
        skips = self.base_encoder(xp)
        f = skips[-1] if self.cfm is None else self.cfm(f_ci, skips[-1])
        n, bc = x.shape[0], self.decoder.block_channels
        insensitive = self.ci_guider(f_ci) if self.ci_guider is not None else Guider.neutral(n, bc, f)
        sensitive = self.cs_guider(f_cs) if self.cs_guider is not None else Guider.neutral(n, bc, f)
        r = self.decoder(f, skips, sensitive, insensitive)
        out = xp + r if self.global_residual else r
        return out[..., :h, :w]

    def awareness_features(self, x: torch.Tensor) -> AwarenessFeatures:
        """(F_cif, F_csf) of ``x`` as the restorer sees them (padded like
        ``forward``): (N, C, ceil(H/16), ceil(W/16)) each."""
        return self._awareness(_pad_to_multiple(x, self.pad_multiple))

    def predict_quality(self, x: torch.Tensor) -> QFPrediction:
        """The compression-sensitive branch's JPEG quality estimate:
        ``logits`` (N, 100), ``expected`` quality (N,) in [1, 100] and
        ``most_likely`` (N,) int in 1..100."""
        return _qf_prediction(self.qf_logits(x))

    def qf_logits(self, x: torch.Tensor) -> torch.Tensor:
        """P_qf(E_cs(x)): (N, 100) logits, class k is JPEG quality k + 1."""
        return self.qf_predictor(self.cs_encoder(_pad_to_multiple(x, self.pad_multiple)))

    # ---- training (Algorithm 1) -----------------------------------------------------------

    def insensitive_autoencoder(self) -> CompressionInsensitiveAE:
        """A new D_ci + discriminator around this model's ``ci_encoder``
        (shared: training the auto-encoder trains the encoder in place)."""
        if self.ci_encoder is None:
            raise ModelError("this DAGN has no compression-insensitive encoder (use_cigm=use_cfm=False)")
        cfg = self._ae_config
        return CompressionInsensitiveAE(cfg["in_channels"], decoder_channels=cfg["decoder_channels"],
                                        discriminator_hidden=cfg["discriminator_hidden"], encoder=self.ci_encoder)

    def sensitive_autoencoder(self) -> CompressionSensitiveAE:
        """A new D_cs around this model's ``cs_encoder`` and ``qf_predictor`` (shared)."""
        cfg = self._ae_config
        return CompressionSensitiveAE(cfg["in_channels"], decoder_channels=cfg["decoder_channels"],
                                      encoder=self.cs_encoder, qf_predictor=self.qf_predictor)

    def _awareness_modules(self) -> list[nn.Module]:
        return [m for m in (self.ci_encoder, self.cs_encoder, self.qf_predictor) if m is not None]

    def freeze_awareness_encoders(self) -> None:
        """Stage two: E_ci, E_cs (and P_qf, trained with E_cs) stop learning:
        ``requires_grad`` False, and they stay in eval mode (BatchNorm running
        statistics fixed) even after ``train()``."""
        for m in self._awareness_modules():
            m.requires_grad_(False)
            m.eval()
        self._awareness_frozen = True

    def unfreeze_awareness_encoders(self) -> None:
        for m in self._awareness_modules():
            m.requires_grad_(True)
            m.train(self.training)
        self._awareness_frozen = False

    @property
    def awareness_frozen(self) -> bool:
        return self._awareness_frozen

    def train(self, mode: bool = True) -> "DAGN":
        super().train(mode)
        if self._awareness_frozen:
            for m in self._awareness_modules():
                m.eval()
        return self

    def restorer_parameters(self) -> Iterator[nn.Parameter]:
        """theta_res of eq. 15: guiders, base encoder, CFM and guided decoder."""
        for m in (self.ci_guider, self.cs_guider, self.base_encoder, self.cfm, self.decoder):
            if m is not None:
                yield from m.parameters()

    def parameter_breakdown(self) -> dict[str, int]:
        """Parameters per top-level submodule."""
        return {name: sum(p.numel() for p in m.parameters()) for name, m in self.named_children()}


# --------------------------------------------------------------------------------------------
# named configurations

#: dagn-small: same modules and losses at about the CPU cost per pixel of resunet-color.
SMALL_KWARGS = dict(channels=(32, 64, 128, 256), encoder_blocks=(1, 2, 2, 1), decoder_blocks=1,
                    sensitive_blocks=1, insensitive_blocks=1, awareness_layers=(2, 2, 2, 2),
                    awareness_width=16, guider_hidden=128, qf_hidden=512, discriminator_hidden=512,
                    ae_decoder_channels=(128, 128, 64, 32, 32, 16))

register_model("dagn", DAGN, paper=PAPER, in_channels=3,
               note="paper size: base 64/128/256/512, 4 res blocks a scale, 3 DAGBs of 4+4 guidance blocks, "
                    "two ResNet-50 (3-4-6-3, output stride 16) awareness encoders, CFM 1/2/4/8; "
                    "110.7 M restorer parameters (paper 109.9 M), 933 G MACs at 512x512 (paper 952.8 G)")
register_model("dagn-small", DAGN, paper=PAPER, in_channels=3, **SMALL_KWARGS,
               note="CPU-trainable DAGN: base 32/64/128/256 with 1/2/2/1 res blocks, 1 body block, DAGBs of "
                    "1+1 guidance blocks, quarter-width ResNet-26-style (bottleneck 2-2-2-2) awareness encoders")
