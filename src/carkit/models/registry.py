"""One registry of named model configurations (timm-style).

A configuration is a constructor plus keyword arguments, a short note and a
role. ``create_model(name)`` builds it; ``describe(name)`` says, without
building it, how callers run it (a :class:`ModelDescriptor`, in the spirit
of spandrel's): its role, what it takes in, its channels, the multiple its
tile origins keep and the overlap tiles need. Every registered model is
covered by the generic tests in tests/models/test_models.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from ..errors import ModelError


class _StrEnum(str, Enum):
    """A ``str`` enum that prints as its value (``enum.StrEnum`` from Python 3.11)."""

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class Role(_StrEnum):
    """What a model does in carkit (``Role.RESTORER == "restorer"``)."""

    #: decoded pixels (N, C, H, W) in, restored pixels out
    RESTORER = "restorer"
    #: a JPEG's quantized DCT coefficients in, pixels out (HR-CNN)
    KSPACE = "kspace"
    #: BlockCNN's codec predictor: an 8x8 block from its causal context
    PREDICTOR = "predictor"
    #: residual hiding's encoder E and decoder D around a standard codec
    HIDING = "hiding"
    #: a learned codec simulator, used only to train hiding (Strategy II)
    CODEC_SIM = "codec-sim"
    #: the virtual codec's FDNN / VCNN / PPNN
    VCODEC = "vcodec"
    #: an end-to-end learned codec (analysis, entropy model, synthesis)
    LEARNED_CODEC = "learned-codec"


class InputKind(_StrEnum):
    """What a model's forward takes besides its weights."""

    PIXELS = "pixels"
    #: pixels and the file's (luma, chroma) quantization tables
    PIXELS_AND_TABLES = "pixels+tables"
    COEFFICIENTS = "coefficients"


@dataclass(frozen=True)
class ModelDescriptor:
    """How to run a registered model, known without building it."""

    role: Role
    input: InputKind
    #: the image channel counts it takes (and gives back): (1,), (3,) or (1, 3)
    channels: tuple[int, ...]
    #: tile origins (and, for a restorer, the padding) keep this multiple
    size_multiple: int = 8
    #: pixels of context a tile needs on each side (0: the caller's default)
    tile_overlap: int = 0
    #: the model family: the module defining the constructor ("jpegnet", "dagn", "unet", ...)
    family: str = ""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    constructor: Callable
    kwargs: dict = field(default_factory=dict)
    paper: str = ""
    note: str = ""
    kind: Role = Role.RESTORER

    @property
    def in_channels(self) -> int:
        return int(self.kwargs.get("in_channels", 1))

    @property
    def descriptor(self) -> ModelDescriptor:
        # Facts a model class states about itself (class attributes), else
        # those of its role.
        cls = self.constructor
        tables = bool(getattr(cls, "takes_tables", False))
        kind = (InputKind.PIXELS_AND_TABLES if tables else
                InputKind.COEFFICIENTS if self.kind == Role.KSPACE else InputKind.PIXELS)
        channels = tuple(getattr(cls, "accepts_channels", (self.in_channels,)))
        return ModelDescriptor(role=self.kind, input=kind, channels=channels,
                               size_multiple=int(getattr(cls, "tile_align", 8)),
                               tile_overlap=int(getattr(cls, "tile_overlap", 0)),
                               family=cls.__module__.rsplit(".", 1)[-1])


_REGISTRY: dict[str, ModelConfig] = {}


def register_model(name: str, constructor: Callable, paper: str = "", note: str = "",
                   kind: Role | str = Role.RESTORER, **kwargs) -> ModelConfig:
    if name in _REGISTRY:
        raise ModelError(f"model {name!r} registered twice")
    cfg = ModelConfig(name=name, constructor=constructor, kwargs=dict(kwargs), paper=paper,
                      note=note, kind=Role(kind))
    _REGISTRY[name] = cfg
    return cfg


def _load_all() -> None:
    # Importing the model modules registers their configurations.
    from . import (arcnn, blockcnn, dagn, dncnn, factorized_prior, hrcnn, jpegnet, memnet,  # noqa: F401
                   residual_hiding, unet, virtual_codec)


def list_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def model_config(name: str) -> ModelConfig:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def describe(name: str) -> ModelDescriptor:
    """The :class:`ModelDescriptor` of a registered model."""
    return model_config(name).descriptor


def create_model(name: str, **overrides):
    cfg = model_config(name)
    kwargs = {**cfg.kwargs, **overrides}
    try:
        return cfg.constructor(**kwargs)
    except TypeError as exc:
        raise ModelError(f"bad configuration for {name!r}: {exc}") from exc
