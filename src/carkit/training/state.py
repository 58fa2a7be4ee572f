"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is ``DIR/last.safetensors`` (the tensors of every module: model,
EMA, task extras; and of every optimizer) plus ``DIR/last.json`` (step,
optimizer hyper-parameters, recipe). Both are
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


def _opt_prefix(name: str) -> str:
    # The main optimizer keeps the plain "opt." prefix (the first checkpoint format).
    return "opt." if name == "main" else f"opt_{name}."


def save_checkpoint(directory: Path, step: int, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], extra: dict) -> None:
    """``modules``: name -> module ("model", "ema", and any task extras);
    ``optimizers``: name -> optimizer ("main" and any task extras)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    # Task extras may share sub-modules with the model (DAGN's auto-encoders
    # wrap its encoders): each shared tensor is stored once, the other names
    # recorded as aliases.
    aliases: dict[str, str] = {}
    first_name: dict[tuple, str] = {}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            key, ident = f"{name}.{k}", (v.data_ptr(), v.dtype, tuple(v.shape), v.stride())
            if v.numel() and ident in first_name:
                aliases[key] = first_name[ident]
                continue
            first_name[ident] = key
            tensors[key] = v.detach().cpu().contiguous()
    meta = {"step": step, **extra, "optimizers": {}, "aliases": aliases}
    for name, optimizer in optimizers.items():
        opt = optimizer.state_dict()
        scalar_state: dict = {}
        for idx, st in opt["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"{_opt_prefix(name)}{idx}.{k}"] = v.detach().cpu().contiguous()
                else:
                    scalar_state.setdefault(str(idx), {})[k] = v
        entry = {"param_groups": opt["param_groups"], "opt_scalars": scalar_state}
        if name == "main":
            meta.update(entry)
        else:
            meta["optimizers"][name] = entry
    _atomic_write_bytes(directory / "last.safetensors",
                        lambda p: save_file(tensors, str(p), metadata={"step": str(step)}))
    _atomic_write_bytes(directory / "last.json", lambda p: p.write_text(json.dumps(meta, indent=1)))


def load_checkpoint(directory: Path, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer]) -> dict | None:
    """Restore in place; returns the JSON record, or None if there is no checkpoint."""
    meta_path, tensor_path = directory / "last.json", directory / "last.safetensors"
    if not (meta_path.exists() and tensor_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    tensors = load_file(str(tensor_path))
    for alias, original in meta.get("aliases", {}).items():
        tensors[alias] = tensors[original]
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        entry = meta if name == "main" else meta["optimizers"][name]
        prefix = _opt_prefix(name)
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith(prefix):
                idx, key = k[len(prefix):].split(".", 1)
                state.setdefault(int(idx), {})[key] = v
        for idx, st in entry.get("opt_scalars", {}).items():
            state.setdefault(int(idx), {}).update(st)
        optimizer.load_state_dict({"state": state, "param_groups": entry["param_groups"]})
    return meta
