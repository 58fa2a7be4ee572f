"""Training recipes: TOML files (recipes/*.toml), never source edits.

A recipe has four tables, [model], [data], [val] and [optim]; their keys are
the fields of :class:`Recipe` (unknown keys are errors, so typos fail loudly).
Data folders are relative to ``data_root`` (default: ../shared/data beside the
checkout, or $CARKIT_DATA). Run folders (``init_from``, a task's ``sim_init``)
are relative to the runs root (default ./runs, ``carkit train --runs-root``):
see :func:`resolve_run`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError


class RecipeError(UsageError):
    """A recipe that cannot be read or run as written (the CLI exits 2)."""


def default_data_root() -> Path:
    env = os.environ.get("CARKIT_DATA")
    if env:
        return Path(env)
    # src/carkit/training/recipe.py -> repo root is parents[3]; data sits beside it.
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


#: where ``carkit train`` writes run folders (runs_root/NAME) and where a recipe's
#: run paths point, unless told otherwise; relative to the working directory
DEFAULT_RUNS_ROOT = Path("runs")


def resolve_run(run: str | os.PathLike, runs_root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> Path:
    """The run folder a recipe's run path names (``init_from``, ``sim_init``;
    not ``zoo:NAME``, which the engine handles).

    An absolute path is itself. A relative one is a run under ``runs_root``,
    with a leading ``runs/`` standing for the runs root (recipes write
    ``runs/NAME`` for the default ./runs), so ``"NAME"``, ``"runs/NAME"`` and
    ``"./runs/NAME"`` all name ``runs_root/NAME``, wherever the runs root is.

    Example::

        >>> resolve_run("runs/dagn-small-stage1", "/data/runs").as_posix()
        '/data/runs/dagn-small-stage1'
    """
    path = Path(run)
    if path.is_absolute():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("runs",) else path.parts
    if not parts:
        raise RecipeError(f"{str(run)!r} names no run folder (give runs/NAME or NAME)")
    return Path(runs_root).joinpath(*parts)


@dataclass
class Recipe:
    name: str
    # [model]
    model: str = "resunet-gray"
    model_kwargs: dict = field(default_factory=dict)
    # [data]
    train_dirs: list[str] = field(default_factory=lambda: ["train/bsd200", "train/cid22", "train/t91"])
    data_root: str = ""
    gray: bool = True
    #: which plane a gray run reads from color images: "y" (MATLAB BT.601) or "green" (HR-CNN)
    gray_plane: str = "y"
    patch_size: int = 64
    batch_size: int = 16
    qualities: list[int] = field(default_factory=list)
    quality_range: list[int] = field(default_factory=list)
    subsampling: str = "4:2:0"
    #: the codec that makes the training and validation inputs (carkit.codecs name; the
    #: residual hiding baselines of JPEG 2000 or HEIF); quality is on that codec's scale
    codec: str = "jpeg"
    aligned: bool = False
    workers: int = 0
    # [val]
    val_dir: str = "val/cid22"
    val_qualities: list[int] = field(default_factory=lambda: [10])
    val_crop: int = 256
    val_limit: int = 0
    val_every: int = 1000
    # [optim]
    task: str = "restore"
    task_kwargs: dict = field(default_factory=dict)
    #: a run folder whose model weights initialise this run (e.g. a previous stage; "runs/NAME"
    #: or "NAME", under the runs root: resolve_run), or "zoo:NAME", shipped weights (to go on
    #: training a model whose run is gone); a model with more U-Net scales than those weights'
    #: starts from them grown (ResUNet.grown_state)
    init_from: str = ""
    #: the submodule (dotted name) that init_from's weights go into, "" for the whole model
    #: (e.g. "decoder": a residual-hiding pair whose D starts from a shipped restorer)
    init_into: str = ""
    iterations: int = 10000
    lr: float = 2e-4
    min_lr: float = 1e-6
    schedule: str = "cosine"
    warmup: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    loss: str = "l1"
    ema: float = 0.999
    bf16: bool = True
    channels_last: bool = True
    seed: int = 0
    threads: int = 0
    log_every: int = 50
    checkpoint_every: int = 500

    def __post_init__(self):
        if bool(self.qualities) == bool(self.quality_range):
            raise RecipeError(f"{self.name}: give exactly one of data.qualities or data.quality_range")
        if self.schedule not in ("cosine", "constant"):
            raise RecipeError(f"{self.name}: schedule must be 'cosine' or 'constant'")
        if self.gray_plane not in ("y", "green"):
            raise RecipeError(f"{self.name}: gray_plane must be 'y' or 'green'")
        if self.loss not in ("l1", "l2"):
            raise RecipeError(f"{self.name}: loss must be 'l1' or 'l2'")
        from ..codecs import canonical_name
        from ..errors import CodecError

        try:
            self.codec = canonical_name(self.codec)
        except CodecError as exc:
            raise RecipeError(f"{self.name}: data.codec: {exc}") from None

    @property
    def root(self) -> Path:
        return Path(self.data_root) if self.data_root else default_data_root()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = ("model", "data", "val", "optim")
_RENAMES = {("model", "name"): "model", ("model", "kwargs"): "model_kwargs",
            ("data", "train"): "train_dirs", ("val", "dir"): "val_dir",
            ("val", "qualities"): "val_qualities", ("val", "crop"): "val_crop",
            ("val", "limit"): "val_limit", ("val", "every"): "val_every"}


def load_recipe(path: str | os.PathLike, **overrides) -> Recipe:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: bad TOML ({exc})") from None
    flat: dict = {"name": raw.pop("name", path.stem)}
    for section in _SECTIONS:
        for key, value in raw.pop(section, {}).items():
            flat[_RENAMES.get((section, key), key)] = value
    if raw:
        raise RecipeError(f"{path}: unknown tables {sorted(raw)}")
    flat.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise RecipeError(f"{path}: unknown keys {unknown}")
    return Recipe(**flat)
