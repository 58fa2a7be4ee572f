"""The registry of trained weights shipped in ``carkit/zoo/weights``.

Each entry is ``NAME.safetensors`` (tensors stored as float16 to keep the
package small; loaded as float32) plus ``NAME.json``, its record:
architecture (registry name and kwargs), what it restores (gray/color,
quality range), the training recipe, data and budget, the sha256 of the
safetensors file, and results measured by ``carkit bench``.

The package ships product weights only. Weights outside it are found in
extra folders searched after the package's (:func:`extra_dirs`): those
named by ``CARKIT_WEIGHTS_PATH`` (``os.pathsep``-separated), then the
repository's ``weights/bench`` when carkit runs from a checkout (bench
baselines, training-only simulators, variants not shipped).
:func:`weights_record` and :func:`load_pretrained` find a name in any of
them (the package's first); :func:`list_weights` lists the package's
unless asked for the extra ones too, so automatic choices (restore's model,
encode's defaults) and ``carkit zoo list`` see shipped weights only.

Loading checks the sha256 and never unpickles (safetensors only).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError, WeightsError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: environment variable naming more weights folders (``os.pathsep``-separated)
WEIGHTS_PATH_ENV = "CARKIT_WEIGHTS_PATH"


def _repository_weights() -> Path | None:
    """``weights/bench`` of the repository this package runs from (an editable
    install: ``src/carkit`` beside it), or None (an installed wheel)."""
    root = Path(__file__).resolve().parents[3]
    return root / "weights" / "bench" if (root / "src" / "carkit" / "zoo").is_dir() else None


#: the repository's folder of weights that the package does not ship (benches read it)
BENCH_DIR = _repository_weights()


def extra_dirs() -> list[Path]:
    """The weights folders searched after WEIGHTS_DIR, in order: each folder in
    ``CARKIT_WEIGHTS_PATH``, then BENCH_DIR; those that exist."""
    named = [Path(p) for p in os.environ.get(WEIGHTS_PATH_ENV, "").split(os.pathsep) if p]
    return [d for d in [*named, *([BENCH_DIR] if BENCH_DIR is not None else [])] if d.is_dir()]


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
    #: the folder holding the record (None: WEIGHTS_DIR); not stored in the record
    folder: Path | None = field(default=None, repr=False, compare=False)

    @property
    def path(self) -> Path:
        return (self.folder or WEIGHTS_DIR) / f"{self.name}.safetensors"

    @property
    def kind(self) -> str:
        """The architecture's role: "restorer" (decoded image in, restored image
        out) or another job (e.g. BlockCNN's codec "predictor")."""
        from ..models.registry import model_config

        return model_config(self.model).kind

    def covers(self, quality: int) -> bool:
        return self.qualities[0] <= quality <= self.qualities[1]

    @property
    def trained_codec(self) -> str:
        """The codec whose output the model learned to restore (:func:`recipe_codec`)."""
        return recipe_codec(self.training.get("recipe"))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "folder"}


def recipe_codec(recipe: dict | None) -> str:
    """The codec a run's inputs came from (its recipe's ``data.codec``; JPEG
    for recipes from before that key)."""
    return (recipe or {}).get("codec", "jpeg")


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record_path(name: str) -> Path | None:
    """The record of ``name`` in the first weights folder holding one, or None."""
    return next((p for d in [WEIGHTS_DIR, *extra_dirs()] if (p := d / f"{name}.json").exists()), None)


def list_weights(include_extra: bool = False) -> list[str]:
    """Names of the package's weights; ``include_extra``: those of the extra
    folders too (:func:`extra_dirs`; what benches score)."""
    folders = [WEIGHTS_DIR, *(extra_dirs() if include_extra else [])]
    return sorted({p.stem for d in folders for p in d.glob("*.json")})


#: what a zoo name may be: letters, digits, '.', '_' and '-', not starting with
#: a dot, at most 128 characters (names also arrive from files being decoded)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def weights_record(name: str) -> WeightsRecord:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ModelError(f"{str(name)[:80]!r} is not a zoo weights name")
    path = _record_path(name)
    if path is None:
        known = ", ".join(list_weights()) or "none"
        raise ModelError(f"no shipped weights named {name!r}; known: {known}")
    data = json.loads(path.read_text())
    return WeightsRecord(**data, folder=path.parent)


def save_record(record: WeightsRecord) -> None:
    """Write ``record`` into its folder (WEIGHTS_DIR for a new one)."""
    path = (record.folder or WEIGHTS_DIR) / f"{record.name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def load_codec_weights(name: str, kind: str, label: str, sha256: str | None = None):
    """(network, record) of the zoo weights a codec pipeline names (in a
    file's marker or by ``--model``): they must exist and be of ``kind``
    (``label`` names it in the message) and, with ``sha256`` (a marker's
    digest prefix), be the weights the file was coded with. Every failure is
    a one-line CodecError."""
    from ..errors import CodecError

    try:
        record = weights_record(name)
    except ModelError as exc:
        raise CodecError(str(exc)) from None
    if record.kind != kind:
        raise CodecError(f"{name} is not a {label} model (it is a {record.kind})")
    if sha256 is not None and not record.sha256.startswith(sha256):
        raise CodecError(f"this file was coded with other {name} weights "
                         f"(sha256 {sha256}, the zoo has {record.sha256[:16]})")
    return load_pretrained(name), record


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
    from ..training.recipe import resolve_run

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
    from safetensors.torch import load_file

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
    from ..models.registry import create_model

    state, recipe, _ = run_weights(run_dir, use_ema)
    model = create_model(recipe["model"], **recipe["model_kwargs"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval(), recipe


def _part_model(run_dir: Path, recipe: dict, part: str) -> tuple[str, dict]:
    """The registered model (name, kwargs) of a training extra that ships on
    its own (a codec simulator, say): the run's task says (``extra_models``)."""
    from ..training.engine import get_task

    parts = get_task(recipe["task"], **recipe["task_kwargs"]).extra_models(recipe["gray"])
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
    recipe.json; measured results are added later by ``carkit bench``.
    """
    import torch
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    raw, recipe, kind = run_weights(run_dir, use_ema, part)
    model, model_kwargs = ((recipe["model"], recipe["model_kwargs"]) if part is None
                           else _part_model(run_dir, recipe, part))
    meta = json.loads((run_dir / "last.json").read_text())
    # A run started from earlier stages (init_from) carries their budget too.
    stages = _stage_chain(run_dir, recipe, runs_root)
    state = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in raw.items()}
    target = Path(folder) if folder is not None else WEIGHTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.safetensors"
    # One metadata key: safetensors writes a metadata map in hash order, so
    # two keys made a re-export of the same weights a file with another sha256.
    save_file(state, str(path), metadata={"carkit": json.dumps({"model": model, "name": name})})
    qualities = recipe["quality_range"] or [min(recipe["qualities"]), max(recipe["qualities"])]
    record = WeightsRecord(
        name=name, model=model, model_kwargs=model_kwargs, gray=recipe["gray"],
        qualities=list(qualities), sha256=sha256_of(path), description=description,
        training={"recipe": recipe, "steps": meta["step"], "weights": kind,
                  "wall_seconds": sum(s.get("wall_seconds", 0) for s in stages),
                  "slices": [sl for s in stages for sl in s.pop("slices", [])],
                  "stages": stages, "data": recipe["train_dirs"], "validation": recipe["val_dir"]},
        folder=None if folder is None else target,
    )
    save_record(record)
    return record
