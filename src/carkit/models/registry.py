"""One registry of named model configurations (timm-style).

A configuration is a constructor plus keyword arguments and a short note.
``create_model(name)`` builds it; every registered model is covered by the
generic tests in tests/models/test_models.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import ModelError


@dataclass(frozen=True)
class ModelConfig:
    name: str
    constructor: Callable
    kwargs: dict = field(default_factory=dict)
    paper: str = ""
    note: str = ""
    #: "restorer" models map a decoded image (N, C, H, W) to a restored one.
    kind: str = "restorer"

    @property
    def in_channels(self) -> int:
        return int(self.kwargs.get("in_channels", 1))


_REGISTRY: dict[str, ModelConfig] = {}


def register_model(name: str, constructor: Callable, paper: str = "", note: str = "",
                   kind: str = "restorer", **kwargs) -> ModelConfig:
    if name in _REGISTRY:
        raise ModelError(f"model {name!r} registered twice")
    cfg = ModelConfig(name=name, constructor=constructor, kwargs=dict(kwargs), paper=paper,
                      note=note, kind=kind)
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


def create_model(name: str, **overrides):
    cfg = model_config(name)
    kwargs = {**cfg.kwargs, **overrides}
    try:
        return cfg.constructor(**kwargs)
    except TypeError as exc:
        raise ModelError(f"bad configuration for {name!r}: {exc}") from exc
