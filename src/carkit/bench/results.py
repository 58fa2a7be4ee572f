"""Result files with provenance (PROTOCOL.md, "Provenance").

Every stored result records the project version and git commit, torch and
Pillow/libjpeg-turbo versions, the model name and weights sha256, codec
settings, the dataset folder and its file list hash, and the date.
``provenance()`` gathers that dict; ``write_result`` stores a payload as
JSON (sorted keys, indent 2, atomically); ``read_result`` loads one.

Benchmark results live in ``results/*.json`` at the repository root.
Torch is never imported here: its version is read from the installed
package metadata (None when torch is not installed).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from .. import __version__

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def file_list_hash(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """sha256 over the sorted relative names and the sha256 of each file.

    Names are relative to ``root`` (default: the common parent folder of the
    files), with '/' separators, so the hash does not depend on where the
    dataset is mounted; renaming, adding, removing or changing any file
    changes it. One line per file, ``"<name>\\t<sha256>\\n"``, is hashed.
    """
    files = [Path(p).resolve() for p in paths]
    if not files:
        return hashlib.sha256(b"").hexdigest()
    base = Path(root).resolve() if root is not None else Path(os.path.commonpath([f.parent for f in files]))
    rows = sorted((f.relative_to(base).as_posix(), sha256_file(f)) for f in files)
    h = hashlib.sha256()
    for name, digest in rows:
        h.update(f"{name}\t{digest}\n".encode("utf-8"))
    return h.hexdigest()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=_PACKAGE_DIR, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


#: Outputs of ``carkit bench`` itself: changing them does not change what is measured.
_BENCH_OUTPUTS = ("results/", "docs/RESULTS.md", "docs/figures/")


def _only_results_changed(path: str) -> bool:
    """A zoo record whose only difference from HEAD is its measured ``results``
    (what an earlier bench run wrote into it)."""
    if not (path.startswith(("src/carkit/zoo/weights/", "weights/bench/")) and path.endswith(".json")):
        return False
    head, top = _git("show", f"HEAD:{path}"), _git("rev-parse", "--show-toplevel")
    if head is None or top is None:
        return False
    try:
        now = json.loads((Path(top) / path).read_text())
        before = json.loads(head)
    except (OSError, ValueError):
        return False
    now.pop("results", None)
    before.pop("results", None)
    return now == before


def git_info() -> dict:
    """{"commit": sha or None, "dirty": bool or None}. Dirty means tracked files
    differ from HEAD, or untracked files sit inside the package. Bench outputs
    (result files, the report, figures, and zoo records whose only change is
    their measured results) do not count. None/None outside a git checkout (an
    installed wheel) or without git."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    tracked = _git("status", "--porcelain", "--untracked-files=no")
    untracked = _git("status", "--porcelain", "--untracked-files=normal", "--", ".")
    dirty = None
    if tracked is not None and untracked is not None:
        # "XY PATH" or "XY OLD -> NEW" (_git strips the first line's leading blank)
        changed = [line.split(None, 1)[1].split(" -> ")[-1] for line in tracked.splitlines() if line.strip()]
        dirty = any(not p.startswith(_BENCH_OUTPUTS) and not _only_results_changed(p) for p in changed) or \
            any(line.startswith("??") for line in untracked.splitlines())
    return {"commit": commit, "dirty": dirty}


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict:
    """Versions of the libraries that shape results; torch without importing it."""
    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": _dist_version("numpy"),
        "torch": (sys.modules["torch"].__version__ if "torch" in sys.modules
                  else _dist_version("torch")),
        "pillow": None,
        "libjpeg_turbo": None,
        "pillow_heif": _dist_version("pillow-heif") or _dist_version("pillow_heif"),
    }
    try:
        import PIL
        from PIL import features

        versions["pillow"] = PIL.__version__
        versions["libjpeg_turbo"] = features.version("libjpeg_turbo")
        versions["libjpeg"] = features.version("jpg")
        versions["openjpeg"] = features.version("jpg_2000")
        versions["libwebp"] = features.version("webp")
        versions["libavif"] = features.version("avif")
    except Exception:  # Pillow missing or without features: versions stay None
        pass
    return versions


def provenance(dataset_dir: str | os.PathLike | None = None,
               files: Iterable[str | os.PathLike] | None = None,
               model: str | None = None, weights_sha256: str | None = None,
               codec_settings: dict | list | None = None) -> dict:
    """The PROTOCOL.md provenance record.

    ``files`` are the dataset files actually used (names stored relative to
    ``dataset_dir``); when only ``dataset_dir`` is given, the hash covers
    every file directly inside it. Fields that do not apply are None.
    """
    dataset = None
    if dataset_dir is not None or files is not None:
        root = Path(dataset_dir).resolve() if dataset_dir is not None else None
        if files is None:
            file_list = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            file_list = sorted(Path(f).resolve() for f in files)
        if root is None and file_list:
            root = Path(os.path.commonpath([f.parent for f in file_list]))
        dataset = {
            "dir": str(root) if root is not None else None,
            "name": root.name if root is not None else None,
            "files": [f.relative_to(root).as_posix() for f in file_list],
            "n_files": len(file_list),
            "file_list_hash": file_list_hash(file_list, root=root),
        }
    git = git_info()
    return {
        "project": {"name": "carkit", "version": __version__, "git_commit": git["commit"],
                    "git_dirty": git["dirty"]},
        "versions": library_versions(),
        "model": {"name": model, "weights_sha256": weights_sha256},
        "codec_settings": codec_settings,
        "dataset": dataset,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "machine": platform.machine(),
                 "cpu_count": os.cpu_count()},
    }


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays -> Python, Paths -> str, tuples -> lists, and
    non-finite floats -> None (strict JSON has no NaN/Infinity; a lossless
    PSNR is stored as null)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return _jsonable(obj.tolist())
    raise TypeError(f"cannot store {type(obj).__name__} in a result file")


def write_result(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` as JSON (sorted keys, indent 2, trailing newline)
    atomically: a temporary file beside the target, then ``os.replace``."""
    if not isinstance(payload, dict):
        raise TypeError(f"a result payload must be a dict, got {type(payload).__name__}")
    path = Path(path)
    text = json.dumps(_jsonable(payload), sort_keys=True, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_result(path: str | os.PathLike) -> dict:
    """Load a result file written by ``write_result``."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
