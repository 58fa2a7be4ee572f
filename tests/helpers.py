"""Test helpers: a tiny zoo of untrained-but-real models in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from carkit.models.registry import create_model
from carkit.zoo.registry import WeightsRecord, save_record, sha256_of

TINY_KWARGS = {"channels": [8, 16], "blocks": 1}


def make_tiny_zoo(directory: Path, monkeypatch=None, gray_range=(10, 40)) -> Path:
    """Write one tiny gray ResUNet as zoo entry 'tiny-gray' into ``directory``;
    with ``monkeypatch``, point the zoo at it, with no extra weights folders
    (the repository's weights/bench, CARKIT_WEIGHTS_PATH), so what benches
    list is this zoo alone."""
    import carkit.zoo.registry as zoo

    directory.mkdir(parents=True, exist_ok=True)
    if monkeypatch is not None:
        monkeypatch.setattr(zoo, "WEIGHTS_DIR", directory)
        monkeypatch.setattr(zoo, "BENCH_DIR", None)
        monkeypatch.delenv(zoo.WEIGHTS_PATH_ENV, raising=False)
    old = zoo.WEIGHTS_DIR
    zoo.WEIGHTS_DIR = directory
    try:
        torch.manual_seed(0)
        model = create_model("resunet-gray", **TINY_KWARGS)
        with torch.no_grad():  # a visible, deterministic effect: a mild smoothing correction
            model.tail.weight.normal_(0, 1e-3)
        path = directory / "tiny-gray.safetensors"
        save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
        save_record(WeightsRecord.new(name="tiny-gray", model="resunet-gray", model_kwargs=TINY_KWARGS, gray=True,
                                  qualities=list(gray_range), sha256=sha256_of(path), description="test"))
    finally:
        if monkeypatch is None:
            zoo.WEIGHTS_DIR = old
    return directory


TINY_DAGN_KWARGS = {"channels": [8, 16, 32, 64], "encoder_blocks": 1, "decoder_blocks": 1, "sensitive_blocks": 1,
                    "insensitive_blocks": 1, "awareness_layers": [1, 1, 1, 1], "awareness_width": 4,
                    "guider_hidden": 16, "qf_hidden": 16, "discriminator_hidden": 16,
                    "ae_decoder_channels": [16, 16, 8, 8, 8, 8]}


def add_tiny_dagn(directory: Path, name: str = "tiny-dagn") -> None:
    """Add an untrained tiny color DAGN (QF 10..95, with a QF predictor) to the zoo in ``directory``."""
    import carkit.zoo.registry as zoo

    old = zoo.WEIGHTS_DIR
    zoo.WEIGHTS_DIR = directory
    try:
        torch.manual_seed(0)
        model = create_model("dagn", **TINY_DAGN_KWARGS)
        path = directory / f"{name}.safetensors"
        save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
        save_record(WeightsRecord.new(name=name, model="dagn", model_kwargs=TINY_DAGN_KWARGS, gray=False,
                                  qualities=[10, 95], sha256=sha256_of(path), description="test"))
    finally:
        zoo.WEIGHTS_DIR = old


def add_tiny_vcodec(directory: Path, name: str = "tiny-vcodec-gray-q10", gray: bool = True, quality: int = 10,
                    seed: int = 0) -> None:
    """Add an untrained virtual-codec pair (FDNN + PPNN, 4 maps) trained "at" ``quality`` to the zoo in ``directory``."""
    import carkit.zoo.registry as zoo

    old = zoo.WEIGHTS_DIR
    zoo.WEIGHTS_DIR = directory
    directory.mkdir(parents=True, exist_ok=True)
    try:
        torch.manual_seed(seed)
        kwargs = {"features": 4}
        model = create_model("vcodec-gray" if gray else "vcodec-color", **kwargs)
        path = directory / f"{name}.safetensors"
        save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
        save_record(WeightsRecord.new(name=name, model="vcodec-gray" if gray else "vcodec-color", model_kwargs=kwargs,
                                  gray=gray, qualities=[quality, quality], sha256=sha256_of(path), description="test"))
    finally:
        zoo.WEIGHTS_DIR = old


def add_tiny_weights(directory: Path, name: str, model: str, kwargs: dict, gray: bool, qualities, seed: int = 0,
                     training: dict | None = None, init=None, codec: str = "jpeg") -> None:
    """Add an untrained ``model`` (registry name, ``kwargs``) to the zoo in
    ``directory`` as ``name``, trained "for" ``qualities`` ([lo, hi]);
    ``init(model)`` may change its fresh weights; ``training`` is the record's
    (e.g. the recipe's ``task_kwargs``); ``codec`` the one it was trained behind."""
    import carkit.zoo.registry as zoo

    old = zoo.WEIGHTS_DIR
    zoo.WEIGHTS_DIR = directory
    directory.mkdir(parents=True, exist_ok=True)
    try:
        torch.manual_seed(seed)
        net = create_model(model, **kwargs)
        if init is not None:
            with torch.no_grad():
                init(net)
        path = directory / f"{name}.safetensors"
        save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(path))
        save_record(WeightsRecord.new(name=name, model=model, model_kwargs=kwargs, gray=gray, qualities=list(qualities),
                                      sha256=sha256_of(path), description="test", training=training or {},
                                      codec=codec))
    finally:
        zoo.WEIGHTS_DIR = old
