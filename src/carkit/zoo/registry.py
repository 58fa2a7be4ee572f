"""The registry of trained weights shipped in ``carkit/zoo/weights``.

Each entry is ``NAME.safetensors`` (tensors stored as float16 to keep the
package small; loaded as float32) plus ``NAME.json``, its typed record
(:mod:`carkit.zoo.record`): architecture, role and input kind, the codec
it was trained behind, what it covers (gray/color, quality range), the
training recipe, data and budget, the sha256 of the safetensors file, its
licence and an optional URL for weights hosted elsewhere.

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
from pathlib import Path

from ..errors import ModelError, WeightsError
from .record import PACKAGE_WEIGHTS, WeightsRecord

WEIGHTS_DIR = PACKAGE_WEIGHTS

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
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable weights record ({exc})") from None
    return WeightsRecord.from_dict(data, source=path, folder=path.parent)


def save_record(record: WeightsRecord) -> None:
    """Write ``record`` into its folder (WEIGHTS_DIR for a new one)."""
    record.folder = record.folder or WEIGHTS_DIR
    path = record.folder / f"{record.name}.json"
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
    record.check_model()
    path = weights_file(record)
    model = create_model(record.model, **record.model_kwargs)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{name}: weights do not fit {record.model}: {exc}") from exc
    return model.to(device).eval()


def weights_file(record: WeightsRecord) -> Path:
    """The record's safetensors file, sha256-checked: beside the record or,
    for weights hosted elsewhere (``url``), in the download cache, fetched
    there first if need be (:mod:`carkit.zoo.fetch`)."""
    from .fetch import cached_path, fetch

    path = record.path
    if not path.exists() and record.url:
        path = cached_path(record)
        if not path.exists():
            fetch(record.url, path, record.sha256)
    if not path.exists():
        raise WeightsError(f"{path}: weights file missing")
    digest = sha256_of(path)
    if digest != record.sha256:
        raise WeightsError(f"{path}: sha256 {digest[:12]} does not match record {record.sha256[:12]}")
    return path
