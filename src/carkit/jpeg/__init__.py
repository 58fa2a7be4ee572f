"""JPEG internals: standard tables and IJG quality scaling, quality estimation
from a file's tables, quantized DCT coefficients in and out of real files,
blockwise DCT/IDCT in torch, and a differentiable JPEG proxy.

``import carkit.jpeg`` needs only numpy: the torch parts (``dct``, ``proxy``)
are imported on first use of their names, jpeglib on the first coefficient
read or write, Pillow on the first quality estimate from a file.

Modules:
    tables        T.81 Annex K tables, zigzag order, libjpeg quality scaling
    quality       estimate_quality(tables), estimate_quality_of_file(path | bytes)
    coefficients  JpegCoefficients, read_coefficients, write_coefficients (jpeglib)
    dct           dct_matrix, block_dct, block_idct, blockify, unblockify (torch)
    proxy         DiffJPEG, a differentiable libjpeg-turbo look-alike (torch)
"""

from __future__ import annotations

import importlib

from .coefficients import (JpegCoefficients, coefficients_to_bytes, expected_block_dims,
                           read_coefficients, write_coefficients)
from .quality import QualityEstimate, estimate_quality, estimate_quality_of_file, read_quant_tables
from .tables import (STD_CHROMINANCE, STD_LUMINANCE, ZIGZAG, ZIGZAG_INVERSE, check_quality,
                     from_zigzag, ijg_tables, quality_scale, scaled_table, to_zigzag)

_LAZY = {
    "dct_matrix": ".dct",
    "blockify": ".dct",
    "unblockify": ".dct",
    "block_dct": ".dct",
    "block_idct": ".dct",
    "dct_blocks": ".dct",
    "idct_blocks": ".dct",
    "DiffJPEG": ".proxy",
    "ProxyCode": ".proxy",
    "diff_jpeg": ".proxy",
    "quality_tables": ".proxy",
}

__all__ = [
    # tables
    "STD_LUMINANCE", "STD_CHROMINANCE", "ZIGZAG", "ZIGZAG_INVERSE", "check_quality",
    "quality_scale", "scaled_table", "ijg_tables", "to_zigzag", "from_zigzag",
    # quality
    "QualityEstimate", "estimate_quality", "estimate_quality_of_file", "read_quant_tables",
    # coefficients
    "JpegCoefficients", "read_coefficients", "write_coefficients", "coefficients_to_bytes",
    "expected_block_dims",
    # torch (lazy)
    *_LAZY,
]


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
