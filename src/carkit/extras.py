"""Optional dependencies, the extras that install them, one clear message.

``pip install carkit`` installs what restoring, encoding and decoding need.
Plotting and curve fitting (matplotlib, scipy: ``carkit bench``, the report,
Bjontegaard numbers) live in the ``bench`` extra, the virtual codec's SSIM loss
(pytorch-msssim) in the ``train`` extra, HEIF in ``heif``. Code that needs
one calls the ``require_*`` function here right before importing it, so a
missing package is a one-line :class:`~carkit.errors.CarkitError` naming
the extra instead of an ``ImportError`` traceback, and ``import carkit`` (or a
restore) never loads them.
"""

from __future__ import annotations

import importlib

from .errors import CarkitError

#: import names of the ``bench`` extra (pyproject: matplotlib, scipy)
BENCH_MODULES = ("matplotlib", "scipy")
#: import names of the ``train`` extra (pyproject: pytorch-msssim)
TRAIN_MODULES = ("pytorch_msssim",)


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def require_extra(extra: str, modules: tuple[str, ...], needed_by: str) -> None:
    """Raise CarkitError naming ``pip install 'carkit[<extra>]'`` unless every
    module in ``modules`` imports (importing them is what the caller does next
    anyway, so this costs nothing extra)."""
    missing = [m for m in modules if not _installed(m)]
    if missing:
        raise CarkitError(f"{needed_by} needs {' and '.join(modules)} ({', '.join(missing)} "
                          f"not installed): pip install 'carkit[{extra}]'")


def require_bench_deps() -> None:
    """matplotlib and scipy, for ``carkit bench``'s curves, BD numbers and plots."""
    require_extra("bench", BENCH_MODULES, "carkit bench")


def require_train_deps() -> None:
    """pytorch-msssim, for the virtual codec's SSIM training loss."""
    require_extra("train", TRAIN_MODULES, "training with an SSIM loss")
