"""Image folders: list, load into memory, convert to the training color mode."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from ..color import rgb_to_y_matlab_uint8
from ..io import read_image

IMAGE_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp", ".ppm", ".pgm")


def list_images(dirs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """All image files under one or more folders (recursive), sorted."""
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: not a folder")
        files.extend(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return sorted(files)


GRAY_PLANES = ("y", "green")


def as_mode(pixels: np.ndarray, gray: bool, plane: str = "y") -> np.ndarray:
    """Gray mode uses the MATLAB BT.601 Y (PROTOCOL.md), or with ``plane="green"``
    the green channel (HR-CNN's protocol); color mode RGB."""
    if gray:
        if pixels.ndim == 2:
            return pixels
        if plane == "green":
            return np.ascontiguousarray(pixels[:, :, 1])
        if plane != "y":
            raise ValueError(f"gray plane must be one of {GRAY_PLANES}, got {plane!r}")
        return rgb_to_y_matlab_uint8(pixels)
    return pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)


def load_images(dirs, gray: bool, min_size: int = 0, plane: str = "y") -> list[np.ndarray]:
    """Load every image of the folders into memory as uint8 (H, W) or (H, W, 3).
    Images smaller than ``min_size`` on either side are skipped."""
    out = []
    for path in list_images(dirs):
        px = as_mode(read_image(path).pixels, gray, plane)
        if min(px.shape[:2]) >= min_size:
            out.append(px)
    if not out:
        raise FileNotFoundError(f"no usable images in {dirs}")
    return out
