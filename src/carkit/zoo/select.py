"""The one selector of zoo weights: by what their records declare.

Every automatic choice of weights (residual hiding's pair, the virtual
codec's pair, the factorized codec's rate point, restore's model in a
custom zoo) starts from :func:`candidates`, the records of one role
filtered by the codec they were trained behind, the kind of image and the
model family. :func:`select_weights` then takes the candidate trained
nearest the quality (:func:`quality_distance`, 0 inside its range); among
equally near ones the reviewed default (``prefer``, from the tables in
:mod:`carkit.zoo.defaults`), then the name. Measured results never take
part: what is chosen depends on the records and the reviewed tables only.

Only the package's weights are candidates unless ``include_extra`` (the
extra folders of :func:`carkit.zoo.registry.extra_dirs`: bench baselines,
variants not shipped), which are otherwise used only when named.
"""

from __future__ import annotations

from typing import Iterable

from ..models.registry import Role
from . import registry
from .record import WeightsRecord


def quality_distance(qualities, quality: int) -> int:
    """How far ``quality`` lies outside the trained range ``(lo, hi)`` (0 inside)."""
    lo, hi = qualities
    return max(int(lo) - quality, quality - int(hi), 0)


def candidates(role: Role | str, *, codec: str | None = None, gray: bool | None = None, family: str | None = None,
               include_extra: bool = False, records: Iterable[WeightsRecord] | None = None) -> list[WeightsRecord]:
    """The records of ``role`` trained behind ``codec``, for gray (or color)
    images, of model ``family`` (each None: any). From the package's weights
    (and, with ``include_extra``, the extra folders'), by name, or from
    ``records`` when given, in their order."""
    role = Role(role)
    if records is None:
        records = [registry.weights_record(n) for n in registry.list_weights(include_extra=include_extra)]
    return [r for r in records
            if r.role == role and (codec is None or r.codec == codec) and (gray is None or r.gray == gray)
            and (family is None or r.family == family)]


def nearest(records: Iterable[WeightsRecord], quality: int, prefer: str | None = None) -> WeightsRecord | None:
    """Of ``records``, the one trained nearest ``quality`` (inside its range
    is nearest); ties go to ``prefer`` (a reviewed default), then the name.
    None when there are none."""
    return min(records, key=lambda r: (quality_distance(r.qualities, quality), r.name != prefer, r.name),
               default=None)


def select_weights(role: Role | str, quality: int, *, codec: str | None = None, gray: bool | None = None,
                   family: str | None = None, prefer: str | None = None, include_extra: bool = False) -> str | None:
    """The zoo name :func:`nearest` picks among :func:`candidates`, or None
    when the zoo has no candidate."""
    best = nearest(candidates(role, codec=codec, gray=gray, family=family, include_extra=include_extra), quality,
                   prefer)
    return None if best is None else best.name
