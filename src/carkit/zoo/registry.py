"""The registry of trained weights shipped in ``carkit/zoo/weights``.

Each entry is ``NAME.safetensors`` (tensors stored as float16 to keep the
package small; loaded as float32) plus ``NAME.json``, its record:
architecture (registry name and kwargs), what it restores (gray/color,
quality range), the training recipe, data and budget, the sha256 of the
safetensors file, and results measured by ``carkit bench``.

Loading checks the sha256 and never unpickles (safetensors only).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError, WeightsError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass
class WeightsRecord:
    name: str
    model: str
    model_kwargs: dict
    gray: bool
    qualities: list[int]  # [lo, hi] inclusive range it was trained for
    sha256: str
    description: str = ""
    training: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    def covers(self, quality: int) -> bool:
        return self.qualities[0] <= quality <= self.qualities[1]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.json"


def list_weights() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.json"))


def weights_record(name: str) -> WeightsRecord:
    path = _record_path(name)
    if not path.exists():
        known = ", ".join(list_weights()) or "none"
        raise ModelError(f"no shipped weights named {name!r}; known: {known}")
    data = json.loads(path.read_text())
    return WeightsRecord(**data)


def save_record(record: WeightsRecord) -> None:
    path = _record_path(record.name)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def load_pretrained(name: str, device: str = "cpu"):
    """Build the model of a zoo entry and load its weights (sha256-checked)."""
    from safetensors.torch import load_file

    from ..models.registry import create_model

    record = weights_record(name)
    if not record.path.exists():
        raise WeightsError(f"{record.path}: weights file missing")
    digest = sha256_of(record.path)
    if digest != record.sha256:
        raise WeightsError(f"{record.path}: sha256 {digest[:12]} does not match record {record.sha256[:12]}")
    model = create_model(record.model, **record.model_kwargs)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(record.path)).items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{name}: weights do not fit {record.model}: {exc}") from exc
    return model.to(device).eval()


def export_run(run_dir: str | os.PathLike, name: str, description: str = "", use_ema: bool = True) -> WeightsRecord:
    """Copy a training run's final (EMA) weights into the zoo with a fresh record.

    The record's training budget comes from the run's budget.json and
    recipe.json; measured results are added later by ``carkit bench``.
    """
    import torch
    from safetensors.torch import load_file, save_file

    run_dir = Path(run_dir)
    if not (run_dir / "last.safetensors").exists():
        raise WeightsError(f"{run_dir}: no checkpoint (last.safetensors) to export")
    recipe = json.loads((run_dir / "recipe.json").read_text())
    meta = json.loads((run_dir / "last.json").read_text())
    budget = json.loads((run_dir / "budget.json").read_text()) if (run_dir / "budget.json").exists() else {}
    tensors = load_file(str(run_dir / "last.safetensors"))
    prefix = "ema." if use_ema and any(k.startswith("ema.") for k in tensors) else "model."
    state = {k[len(prefix):]: (v.to(torch.float16) if v.is_floating_point() else v).contiguous()
             for k, v in tensors.items() if k.startswith(prefix)}
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    path = WEIGHTS_DIR / f"{name}.safetensors"
    save_file(state, str(path), metadata={"name": name, "model": recipe["model"]})
    qualities = recipe["quality_range"] or [min(recipe["qualities"]), max(recipe["qualities"])]
    record = WeightsRecord(
        name=name, model=recipe["model"], model_kwargs=recipe["model_kwargs"], gray=recipe["gray"],
        qualities=list(qualities), sha256=sha256_of(path), description=description,
        training={"recipe": recipe, "steps": meta["step"], "weights": "EMA" if prefix == "ema." else "raw",
                  "wall_seconds": round(budget.get("seconds", 0.0)), "slices": budget.get("slices", []),
                  "data": recipe["train_dirs"], "validation": recipe["val_dir"]},
    )
    save_record(record)
    return record
