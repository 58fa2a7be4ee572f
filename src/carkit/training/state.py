"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is ``DIR/last.safetensors`` (model, EMA and optimizer tensors)
plus ``DIR/last.json`` (step, optimizer hyper-parameters, recipe). Both are
written to temporary files and renamed, JSON last, so an interrupted save
leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(directory: Path, step: int, model: torch.nn.Module, ema: torch.nn.Module | None,
                    optimizer: torch.optim.Optimizer, extra: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    if ema is not None:
        for k, v in ema.state_dict().items():
            tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    opt = optimizer.state_dict()
    scalar_state: dict = {}
    for idx, st in opt["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalar_state.setdefault(str(idx), {})[k] = v
    meta = {"step": step, "param_groups": opt["param_groups"], "opt_scalars": scalar_state, **extra}
    _atomic_write_bytes(directory / "last.safetensors",
                        lambda p: save_file(tensors, str(p), metadata={"step": str(step)}))
    _atomic_write_bytes(directory / "last.json", lambda p: p.write_text(json.dumps(meta, indent=1)))


def load_checkpoint(directory: Path, model: torch.nn.Module, ema: torch.nn.Module | None,
                    optimizer: torch.optim.Optimizer) -> dict | None:
    """Restore in place; returns the JSON record, or None if there is no checkpoint."""
    meta_path, tensor_path = directory / "last.json", directory / "last.safetensors"
    if not (meta_path.exists() and tensor_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    tensors = load_file(str(tensor_path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema is not None:
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, st in meta.get("opt_scalars", {}).items():
        state.setdefault(int(idx), {}).update(st)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta
