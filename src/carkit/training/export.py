"""Training runs into the zoo: a run's final (EMA) weights, the budget of
every stage it grew from, and ``carkit zoo export`` writing them as typed
weights records (:mod:`carkit.zoo.record`) into a weights folder.

Lives with training (not in zoo/) because it reads run folders, recipes and
tasks: the zoo below it knows records and files only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import WeightsError
from ..models.registry import create_model
from ..zoo import registry as zoo
from ..zoo.record import WeightsRecord, licence_text
from ..zoo.registry import save_record, sha256_of, weights_record
from .engine import get_task
from .recipe import resolve_run


def _task(recipe: dict):
    return get_task(recipe.get("task", "restore"), **(recipe.get("task_kwargs") or {}))


def run_trained_for(recipe: dict) -> tuple[str, list[int]]:
    """(codec, [lo, hi]) a run's weights are for, as its task declares
    (:meth:`carkit.training.engine.TrainTask.trained_for`)."""
    return _task(recipe).trained_for(recipe)


def run_record(run_dir: str | os.PathLike, recipe: dict, sha256: str, name: str | None = None,
               model: str | None = None, model_kwargs: dict | None = None, **rest) -> WeightsRecord:
    """The record a run's final weights get (not saved): what its task says
    they are for, its licence; ``name``/``model``/``model_kwargs`` default to
    the run's, ``rest`` are further record fields. Export writes it; benches
    score runs beside zoo weights with it."""
    codec, qualities = run_trained_for(recipe)
    return WeightsRecord.new(name=name or recipe.get("name", Path(run_dir).name), model=model or recipe["model"],
                             model_kwargs=(recipe.get("model_kwargs") or {}) if model_kwargs is None else model_kwargs,
                             gray=bool(recipe["gray"]), qualities=qualities, sha256=sha256, codec=codec,
                             licence=licence_text(recipe.get("train_dirs")),
                             **{"training": {"recipe": recipe}, **rest})


def run_budget(run_dir: str | os.PathLike, recipe: dict) -> dict:
    """What one training run spent: its name, task, steps reached, batch and
    patch size, wall seconds and the slices it ran in (budget.json)."""
    run_dir = Path(run_dir)
    budget_path, meta_path = run_dir / "budget.json", run_dir / "last.json"
    budget = json.loads(budget_path.read_text()) if budget_path.exists() else {}
    steps = json.loads(meta_path.read_text())["step"] if meta_path.exists() else None
    return {"run": recipe.get("name", run_dir.name), "task": recipe.get("task"), "steps": steps,
            "batch_size": recipe.get("batch_size"), "patch_size": recipe.get("patch_size"),
            "wall_seconds": round(budget.get("seconds", 0.0)), "slices": budget.get("slices", [])}


def _stage_chain(run_dir: Path, recipe: dict, runs_root: str | os.PathLike | None = None) -> list[dict]:
    """The runs this one started from (recipe ``init_from``, followed back
    under ``runs_root``, default the folder holding ``run_dir``, as training
    resolved them), oldest first, each with its ``run_budget``, then this run."""
    root = Path(runs_root) if runs_root is not None else Path(run_dir).parent
    chain, seen = [], set()
    current, rec = run_dir, recipe
    while True:
        chain.append(run_budget(current, rec))
        parent = rec.get("init_from")
        if parent and parent.startswith("zoo:"):
            chain.extend(_zoo_stages(parent[4:])[::-1])
            break
        folder = resolve_run(parent, root) if parent else None
        if folder is None or not (folder / "recipe.json").exists() or folder.resolve() in seen:
            if parent and not (folder / "recipe.json").exists():
                chain.append({"run": str(parent), "missing": True})
            break
        seen.add(folder.resolve())
        current = folder
        rec = json.loads((current / "recipe.json").read_text())
    return chain[::-1]


def _zoo_stages(name: str) -> list[dict]:
    """The budget of shipped weights a run started from (``init_from =
    "zoo:NAME"``): the stages their record carries, oldest first, each marked
    with the zoo name; the record's slices ride on the last one."""
    training = weights_record(name).training
    stages = [dict(s, zoo=name) for s in training.get("stages") or []]
    if not stages:
        stages = [{"run": f"zoo:{name}", "zoo": name, "steps": training.get("steps"),
                   "wall_seconds": training.get("wall_seconds", 0)}]
    stages[-1]["slices"] = list(training.get("slices") or [])
    return stages


def run_weights(run_dir: str | os.PathLike, use_ema: bool = True, part: str | None = None) -> tuple[dict, dict, str]:
    """A training run's final weights: (state dict, recipe, "EMA" or "raw");
    ``part``: one of its extras (a checkpointed module beside the model; no EMA)."""
    run_dir = Path(run_dir)
    if not (run_dir / "last.safetensors").exists():
        raise WeightsError(f"{run_dir}: no checkpoint (last.safetensors) in this run folder")
    recipe = json.loads((run_dir / "recipe.json").read_text())
    tensors = load_file(str(run_dir / "last.safetensors"))
    if part is not None:
        prefix = f"{part}."
    else:
        prefix = "ema." if use_ema and any(k.startswith("ema.") for k in tensors) else "model."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return state, recipe, "EMA" if prefix == "ema." else "raw"


def load_run_model(run_dir: str | os.PathLike, device: str = "cpu", use_ema: bool = True):
    """Build a training run's model and load its final (EMA) weights, for
    benchmarking runs that are not in the zoo (e.g. ablation variants)."""
    state, recipe, _ = run_weights(run_dir, use_ema)
    model = create_model(recipe["model"], **recipe["model_kwargs"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval(), recipe


def _part_model(run_dir: Path, recipe: dict, part: str) -> tuple[str, dict]:
    """The registered model (name, kwargs) of a training extra that ships on
    its own (a codec simulator, say): the run's task says (``extra_models``)."""
    parts = _task(recipe).extra_models(recipe["gray"])
    if part not in parts:
        known = ", ".join(sorted(parts)) or "none"
        raise WeightsError(f"{run_dir}: no exportable part {part!r} in this run (it has: {known})")
    return parts[part]


def export_run(run_dir: str | os.PathLike, name: str, description: str = "", use_ema: bool = True,
               part: str | None = None, runs_root: str | os.PathLike | None = None,
               folder: str | os.PathLike | None = None) -> WeightsRecord:
    """Copy a training run's final (EMA) weights into the zoo with a fresh record.

    ``folder``: where to write them (default the package's WEIGHTS_DIR); a
    model still in training goes to the repository's weights/bench, found by
    name all the same (``init_from = "zoo:NAME"`` resumes from it).

    ``runs_root``: where the run's ``init_from`` runs are (their budgets join
    the record's); default the folder holding ``run_dir``.

    ``part`` ships one of the run's extras instead of its model (the task's
    ``extra_models``; extras keep no EMA, so their last weights ship).
    The record's training budget comes from the run's budget.json and
    recipe.json; its role and input kind from the model's descriptor.
    """
    run_dir = Path(run_dir)
    raw, recipe, kind = run_weights(run_dir, use_ema, part)
    model, model_kwargs = ((recipe["model"], recipe["model_kwargs"]) if part is None
                           else _part_model(run_dir, recipe, part))
    meta = json.loads((run_dir / "last.json").read_text())
    # A run started from earlier stages (init_from) carries their budget too.
    stages = _stage_chain(run_dir, recipe, runs_root)
    state = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in raw.items()}
    target = Path(folder) if folder is not None else zoo.WEIGHTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.safetensors"
    # One metadata key: safetensors writes a metadata map in hash order, so
    # two keys made a re-export of the same weights a file with another sha256.
    save_file(state, str(path), metadata={"carkit": json.dumps({"model": model, "name": name})})
    record = run_record(
        run_dir, recipe, sha256_of(path), name=name, model=model, model_kwargs=model_kwargs, description=description,
        training={"recipe": recipe, "steps": meta["step"], "weights": kind,
                  "wall_seconds": sum(s.get("wall_seconds", 0) for s in stages),
                  "slices": [sl for s in stages for sl in s.pop("slices", [])],
                  "stages": stages, "data": recipe["train_dirs"], "validation": recipe["val_dir"]},
        folder=target,
    )
    save_record(record)
    return record
