"""Residual hiding: the networks of "hide the compression residual in the
image before a standard codec" (the Residual hiding paper,
../shared/papers/residual-hiding.txt, sections 3.1-3.3 and Fig. 1).

- Encryption encoder E (section 3.1): ``IH_enc = E(IH, IR)`` from the
  original image IH and its compression residual IR = IH - IL, where IL is
  the real codec's decode of IH. IH_enc is what the standard codec then
  codes.
- Decryption decoder D (section 3.2): the hidden residual ``I'R = D(IL_enc)``
  from the decoded IL_enc; the output is ``I'H = IL_enc + I'R``.
- The simulation network of Strategy I (section 3.3, and section 4.2 for
  its shape): for JPEG 2000 / BPG the paper uses "an autoencoder-based
  architecture composed of 8 conv-ReLU blocks without down-sampling"
  (:class:`CodecSimulator`); for JPEG it re-implements JPEG's quantization,
  which carkit already has (``carkit.jpeg.proxy.DiffJPEG``, used by
  ``training/hiding_tasks.py``).

The paper's layer-by-layer design is in a supplement we do not have; what
is chosen here, for CPU training:

- E and D are carkit's multi-scale residual U-Net (``models/unet.py``:
  strided-conv downsampling, residual blocks, transposed-conv upsampling,
  skip additions), 3 scales of 32/64/128 maps with 1/2/2 residual blocks.
  Most of the work runs at 1/2 and 1/4 resolution; the receptive field
  (about 80 px across) spans several 8x8 JPEG blocks.
- E reads IH and IR concatenated (2C planes) and outputs IH plus a learned
  correction (the U-Net's ``out_channels``); D outputs I'R, and
  ``reconstruct`` adds it to IL_enc (Fig. 1's sum). Both corrections start
  at zero (zero-initialised last convolution), so an untrained pair is
  "plain codec": IH_enc = IH and I'H = IL_enc.
- Parameters (RGB, ``in_channels=3``): E 1,007,587, D 1,006,723, the pair
  2,014,310; gray: 2,011,426. The default simulator (64 maps) has 262,019
  (RGB) / 259,713 (gray).
- :class:`CodecSimulator` adds a zero-initialised output convolution and a
  global skip (output = input + correction), not in the paper, so the
  simulator starts as the identity (a fair first guess of a codec at
  moderate quality) before it is fitted to the codec (eq. 2).
- ``in_channels=1`` runs the same networks on gray images (the paper
  codes color).
- ``decoder=NAME`` (beyond the paper) makes D a registered restorer, e.g.
  ``hiding-color-dagn`` (D = dagn-small, 6.9M parameters, its awareness
  encoders frozen): a recipe's ``init_from`` + ``init_into = "decoder"``
  starts D from the shipped restorer, so the untrained pair is codec +
  restorer and training adds what hiding brings on top of it.
- A pair with more U-Net scales than a trained one starts from it grown
  (``grown_state``, applied by ``init_from``): it computes what the trained
  pair did, and the new scale learns from there.

``ResidualHiding.forward`` connects E to D directly, with no codec between
them and a zero residual (the shape contract of every registered model);
the real pipeline (E, codec, D) is in ``codecs/hiding/codec.py`` and the
training with the compression proxies in ``training/hiding_tasks.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model
from .unet import ResUNet


def skip_component(value: torch.Tensor, carrier: torch.Tensor) -> torch.Tensor:
    """Eqs. (1) and (3), ``carrier + (value - carrier)`` with the difference
    detached: the value of ``value`` (the real codec's output), the gradient of
    ``carrier`` (IH_enc for Strategy II, the simulation ISL_enc for Strategy
    I). Written ``value + (carrier - carrier.detach())`` so that the forward
    value is ``value`` to the bit (the added term is exactly zero)."""
    return value.detach() + (carrier - carrier.detach())


_PAPER = "Residual hiding paper: hiding the compression residual before a standard codec (E, D, Strategies I/II)"


class ResidualHiding(nn.Module):
    """The encryption encoder E and the decryption decoder D.

    Shape:
        - ``hide(image, residual)``: (N, C, H, W) twice -> (N, C, H, W) IH_enc
        - ``reveal(decoded)``: (N, C, H, W) IL_enc -> (N, C, H, W) I'R
        - ``reconstruct(decoded)``: (N, C, H, W) IL_enc -> I'H = IL_enc + I'R
        - ``forward(x, residual=None)``: ``reconstruct(hide(x, residual or 0))``,
          no codec between E and D

    Example:
        >>> net = ResidualHiding(in_channels=3)
        >>> ih = torch.rand(1, 3, 37, 50); il = ih.clone()   # IL: the codec's decode of IH
        >>> enc = net.hide(ih, ih - il)                      # code this with the codec
        >>> net.reconstruct(enc).shape                        # from the codec's decode of enc
        torch.Size([1, 3, 37, 50])
    """

    def __init__(self, in_channels: int = 3, channels: tuple[int, ...] = (32, 64, 128),
                 blocks: int | tuple[int, ...] = (1, 2, 2), decoder: str = ""):
        super().__init__()
        self.in_channels = in_channels
        self.encoder = ResUNet(2 * in_channels, channels, blocks, out_channels=in_channels)
        # D is the encoder's twin, or a registered restorer (``decoder``, e.g. "dagn-small"), so a
        # pair can start from a trained restorer's weights (a recipe's init_from + init_into)
        self.decoder = (ResUNet(in_channels, channels, blocks) if not decoder
                        else self._restorer(decoder, in_channels))

    @staticmethod
    def _restorer(name: str, in_channels: int) -> nn.Module:
        from .registry import create_model, model_config

        cfg = model_config(name)
        if cfg.kind != "restorer" or cfg.kwargs.get("in_channels", in_channels) != in_channels:
            raise ValueError(f"decoder {name!r} is not a restorer of {in_channels}-plane images")
        net = create_model(name)
        if hasattr(net, "freeze_awareness_encoders"):
            # DAGN's stage two: its awareness encoders stay as trained, only its restorer learns
            net.freeze_awareness_encoders()
        return net

    def grown_state(self, state: dict) -> dict:
        """A pair's weights for this pair when its U-Nets have more scales
        (``channels``/``blocks`` given longer; see ``ResUNet.grown_state``):
        the grown pair starts computing what the trained one did."""
        for name, net in (("encoder", self.encoder), ("decoder", self.decoder)):
            if isinstance(net, ResUNet):
                state = net.grown_state(state, prefix=f"{name}.")
        return state

    def hide(self, image: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """E: IH_enc = E(IH, IR) (section 3.1)."""
        return self.encoder(torch.cat([image, residual], dim=1))

    def reveal(self, decoded: torch.Tensor) -> torch.Tensor:
        """D: the recovered residual I'R = D(IL_enc) (section 3.2)."""
        if isinstance(self.decoder, ResUNet):
            return self.decoder.correction(decoded)
        return self.decoder(decoded) - decoded

    def reconstruct(self, decoded: torch.Tensor) -> torch.Tensor:
        """I'H = IL_enc + I'R."""
        return self.decoder(decoded)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return self.reconstruct(self.hide(x, torch.zeros_like(x) if residual is None else residual))


class CodecSimulator(nn.Module):
    """Strategy I's simulation network for codecs without a differentiable
    re-implementation (section 4.2: "8 conv-ReLU blocks without
    down-sampling"): 3x3 convolutions of ``features`` maps, each followed by
    ReLU, then a zero-initialised 3x3 convolution back to the image planes
    added to the input (not in the paper; see the module docstring).

    Shape: (N, C, H, W) -> (N, C, H, W) for any H, W.
    """

    def __init__(self, in_channels: int = 3, features: int = 64, blocks: int = 8):
        super().__init__()
        if blocks < 1:
            raise ValueError("blocks must be at least 1")
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers += [nn.Conv2d(in_channels if i == 0 else features, features, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(features, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.body(x))


_NOTE = "E and D: residual U-Nets, 3 scales 32/64/128, 1/2/2 res blocks a scale"
register_model("hiding-color", ResidualHiding, paper=_PAPER, kind="hiding", in_channels=3,
               note=_NOTE + ", RGB (the paper's setting)")
register_model("hiding-gray", ResidualHiding, paper=_PAPER, kind="hiding", in_channels=1,
               note=_NOTE + ", gray (beyond the paper)")
register_model("hiding-color-dagn", ResidualHiding, paper=_PAPER, kind="hiding", in_channels=3,
               decoder="dagn-small",
               note="E: residual U-Net 32/64/128; D: the dagn-small restorer (beyond the paper: D can start "
                    "from the shipped blind restorer), RGB")
_SIM = "Strategy I codec simulator: 8 conv-ReLU blocks of 64 maps, no down-sampling, global skip"
register_model("hiding-sim-color", CodecSimulator, paper=_PAPER, kind="codec-sim", in_channels=3, features=64,
               note=_SIM + ", RGB")
register_model("hiding-sim-gray", CodecSimulator, paper=_PAPER, kind="codec-sim", in_channels=1, features=64,
               note=_SIM + ", gray")
