"""The typed record beside every zoo weights file (``NAME.json``).

A record states what the weights are, never how they measured: the
architecture (a registered model and its keyword arguments), its role and
input kind (checked against the model's descriptor on load), the codec
whose output it was trained on, the qualities and the kind of image (gray
or color) it covers, the training recipe and budget, the sha256 of the
safetensors file, its licence and, for weights hosted outside the package,
the URL they are fetched from (checked by the same sha256). Measured
results live in the repository's results/ folder, written by
``carkit bench``; the default choices that rest on them are reviewed
tables in :mod:`carkit.zoo.defaults`.

Schema 2. Schema 1 records (no role, input, codec or licence; measured
results inside) are refused with a message naming the file.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from ..errors import WeightsError
from ..models.registry import InputKind, Role, describe

SCHEMA = 2

#: the package's weights folder (product weights only)
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"

#: the licence of weights trained by this project (the code's licence)
PROJECT_LICENCE = "MIT"

#: licences of the training sets under ../shared/data (its README), named
#: in each record so a user can judge the weights' provenance
DATA_LICENCES = {
    "train/bsd200": "BSDS300/500 (Berkeley, academic use)",
    "train/cid22": "CID22 (Cloudinary, CC BY-SA 4.0)",
    "train/t91": "T91 (Yang et al., research use)",
    "train/div2k": "DIV2K (research use)",
}


def licence_text(data_dirs: list[str] | None) -> str:
    """The licence line of weights trained on ``data_dirs``."""
    sets = [DATA_LICENCES.get(d, d) for d in data_dirs or []]
    return PROJECT_LICENCE + (f"; trained on {', '.join(sets)}" if sets else "")


@dataclass
class WeightsRecord:
    name: str
    model: str
    model_kwargs: dict
    role: Role
    input: InputKind
    #: the codec whose decoded output (or, for a codec, whose input) it was trained on
    codec: str
    gray: bool
    qualities: list[int]  # [lo, hi] inclusive range it was trained for
    sha256: str
    licence: str
    description: str = ""
    #: where weights not in any weights folder are fetched from (sha256-checked)
    url: str | None = None
    #: recipe, data, validation set, steps and budget (wall seconds, stages, slices)
    training: dict = field(default_factory=dict)
    schema: int = SCHEMA
    #: the folder holding the record (None: the package's); not stored in the record
    folder: Path | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.role, self.input = Role(self.role), InputKind(self.input)

    @property
    def path(self) -> Path:
        """The safetensors file beside the record (the package's weights
        folder for a record not yet saved)."""
        return (self.folder or PACKAGE_WEIGHTS) / f"{self.name}.safetensors"

    @property
    def kind(self) -> Role:
        """The role (the name callers used before records were typed)."""
        return self.role

    @property
    def family(self) -> str:
        """The model family (:attr:`carkit.models.registry.ModelDescriptor.family`:
        "jpegnet", "dagn", "residual_hiding", ...), from the registered model."""
        return describe(self.model).family

    @property
    def trained_codec(self) -> str:
        return self.codec

    @property
    def steps(self) -> int | None:
        return self.training.get("steps")

    @property
    def recipe(self) -> dict:
        """The training recipe as exported: provenance that benches and the
        report show, never read to decide what inference does."""
        return self.training.get("recipe") or {}

    @property
    def budget_seconds(self) -> float:
        """Wall seconds of training, every stage and slice together."""
        return float(self.training.get("wall_seconds") or 0.0)

    def covers(self, quality: int) -> bool:
        return self.qualities[0] <= quality <= self.qualities[1]

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "folder"}
        out["role"], out["input"] = self.role.value, self.input.value
        return out

    @classmethod
    def new(cls, name: str, model: str, model_kwargs: dict, gray: bool, qualities: list[int], sha256: str,
            codec: str = "jpeg", licence: str = PROJECT_LICENCE, **rest) -> "WeightsRecord":
        """A record whose role and input kind are its model's (:func:`describe`)."""
        described = describe(model)
        return cls(name=name, model=model, model_kwargs=model_kwargs, role=described.role, input=described.input,
                   codec=codec, gray=gray, qualities=list(qualities), sha256=sha256, licence=licence, **rest)

    def check_model(self) -> None:
        """Raise WeightsError unless the record's role and input kind are its
        model's (a check that imports the models, so loading runs it, not reading)."""
        model = describe(self.model)
        if (self.role, self.input) != (model.role, model.input):
            raise WeightsError(f"{self.name}: the record says {self.role.value} of {self.input.value}, but "
                               f"{self.model} is a {model.role.value} of {model.input.value}")

    @classmethod
    def from_dict(cls, data: dict, source: str | Path = "", folder: Path | None = None) -> "WeightsRecord":
        """A record read from JSON, checked: its schema, its keys and its enums."""
        where = f"{source}: " if source else ""
        if not isinstance(data, dict):
            raise WeightsError(f"{where}a weights record is a JSON object")
        if data.get("schema") != SCHEMA:
            raise WeightsError(f"{where}weights record schema {data.get('schema', 1)}, this carkit reads {SCHEMA}")
        known = {f.name for f in fields(cls)} - {"folder"}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        if set(data) - known or required - set(data):
            raise WeightsError(f"{where}weights record with unknown keys {sorted(set(data) - known)} "
                               f"or missing keys {sorted(required - set(data))}")
        try:
            return cls(**data, folder=folder)
        except ValueError as exc:
            raise WeightsError(f"{where}{exc}") from None
