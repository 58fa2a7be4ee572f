"""Weights hosted outside the package: fetched once into a cache folder,
kept only if their sha256 is the record's.

The cache is ``$CARKIT_CACHE/weights`` (default ``~/.cache/carkit/weights``).
A download goes to a temporary file beside its target and is renamed into
place after the digest matches, so an interrupted or tampered download
never leaves a file that loads.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import WeightsError

#: environment variable naming carkit's cache folder
CACHE_ENV = "CARKIT_CACHE"


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "carkit"
    return Path(root) / "weights"


def cached_path(record) -> Path:
    """Where the weights of ``record`` (one with a ``url``) are cached."""
    return cache_dir() / f"{record.name}.safetensors"


def fetch(url: str, target: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` if its sha256 is ``sha256``; else a
    one-line WeightsError and nothing written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise WeightsError(f"{url}: sha256 {digest.hexdigest()[:12]} does not match the record's {sha256[:12]}; "
                               "not kept")
        os.replace(tmp, target)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise WeightsError(f"{url}: could not fetch the weights ({exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
