"""What restoring one JPEG decided and produced: the plan (quality read,
model chosen, why) and the restored image with its metadata. Shared by the
pixel path (:mod:`carkit.restoration.restorer`) and the DCT-coefficient path
(:mod:`carkit.restoration.kspace`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import ImageMetadata


@dataclass
class RestorePlan:
    quality: int | None
    standard_tables: bool | None
    model: str | None
    mode: str  # "gray", "color", "color-via-Y", or "passthrough"
    reason: str
    #: the model's own blind estimate of the quality (models with a QF predictor, e.g. DAGN)
    model_quality: float | None = None
    #: why the quality is unknown (invalid tables), when it is
    quality_problem: str | None = None
    #: the file's (luma, chroma) quantization tables, for models conditioned on them
    tables: tuple | None = None

    def explain(self) -> str:
        q = f"unknown ({self.quality_problem})" if self.quality_problem else (
            "unknown" if self.quality is None else str(self.quality))
        tables = "" if self.standard_tables is None else (
            " (standard IJG tables)" if self.standard_tables else " (non-standard tables, nearest IJG quality)")
        own = "" if self.model_quality is None else f"; model's own estimate {self.model_quality:.0f}"
        return f"quality {q}{tables}{own}; model {self.model or 'none'} [{self.mode}]: {self.reason}"


@dataclass
class Restored:
    """One restored JPEG: upright pixels, alpha, the metadata to write with
    them, and the plan that made them."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    metadata: ImageMetadata
    plan: RestorePlan
