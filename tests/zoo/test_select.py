"""The one selector of zoo weights (carkit.zoo.select): candidates by the
records' declared role, codec, kind of image and family (package weights
only unless asked), then the nearest trained range, the reviewed default,
the name."""

from __future__ import annotations

import pytest

import carkit.zoo.registry as zoo
from carkit.models.registry import Role, describe
from carkit.zoo.select import candidates, nearest, quality_distance, select_weights
from carkit.zoo.registry import weights_record

from ..helpers import TINY_KWARGS, add_tiny_vcodec, add_tiny_weights, make_tiny_zoo

DNCNN_KWARGS = {"depth": 3, "features": 4}


def _gray(folder, name, qualities, codec="jpeg"):
    add_tiny_weights(folder, name, "resunet-gray", TINY_KWARGS, True, qualities, codec=codec)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A package zoo of gray restorers ('tiny-gray', QF 10..40, from make_tiny_zoo), no extra folders."""
    return make_tiny_zoo(tmp_path / "zoo", monkeypatch)


def test_quality_distance_is_zero_inside_and_the_gap_outside():
    assert [quality_distance((10, 40), q) for q in (1, 10, 25, 40, 41, 90)] == [9, 0, 0, 0, 1, 50]
    assert quality_distance([50, 50], 50) == 0 and quality_distance([50, 50], 45) == 5


def test_the_nearest_trained_range_wins_inside_and_outside(tiny):
    _gray(tiny, "g-50-60", (50, 60))
    _gray(tiny, "g-q90", (90, 90))
    picks = {q: select_weights(Role.RESTORER, q) for q in (1, 10, 40, 44, 46, 55, 75, 76, 100)}
    assert picks == {1: "tiny-gray", 10: "tiny-gray", 40: "tiny-gray", 44: "tiny-gray", 46: "g-50-60",
                     55: "g-50-60", 75: "g-50-60", 76: "g-q90", 100: "g-q90"}


def test_ties_go_to_the_preferred_default_then_the_name(tiny):
    _gray(tiny, "a-wide", (1, 100))
    _gray(tiny, "z-q30", (30, 30))
    # inside three ranges at QF 30: all at distance 0, so the name decides unless one is preferred
    assert select_weights(Role.RESTORER, 30) == "a-wide"
    assert select_weights(Role.RESTORER, 30, prefer="z-q30") == "z-q30"
    assert select_weights(Role.RESTORER, 30, prefer="tiny-gray") == "tiny-gray"
    # the preference never beats a nearer range (and a name not among the candidates changes nothing)
    assert select_weights(Role.RESTORER, 80, prefer="z-q30") == "a-wide"
    assert select_weights(Role.RESTORER, 30, prefer="not-in-zoo") == "a-wide"
    assert nearest([], 30) is None


def test_role_codec_gray_and_family_filter_the_candidates(tiny):
    _gray(tiny, "g-heif", (10, 40), codec="heif")
    add_tiny_weights(tiny, "c-dncnn", "dncnn3-color", DNCNN_KWARGS, False, (10, 40))
    add_tiny_vcodec(tiny, "vc-gray-q10", True, 10)
    names = lambda **kw: [r.name for r in candidates(**kw)]  # noqa: E731
    assert names(role=Role.RESTORER) == ["c-dncnn", "g-heif", "tiny-gray"]
    assert names(role="restorer", codec="jpeg") == ["c-dncnn", "tiny-gray"]
    assert names(role=Role.RESTORER, codec="heif") == ["g-heif"]
    assert names(role=Role.RESTORER, gray=False) == ["c-dncnn"]
    assert names(role=Role.RESTORER, gray=True, codec="jpeg") == ["tiny-gray"]
    assert names(role=Role.RESTORER, family="dncnn") == ["c-dncnn"]
    assert names(role=Role.VCODEC) == ["vc-gray-q10"] and names(role=Role.HIDING) == []
    assert select_weights(Role.RESTORER, 25, codec="jpeg", gray=False) == "c-dncnn"
    assert select_weights(Role.RESTORER, 25, codec="jpeg2000") is None
    assert select_weights(Role.VCODEC, 25) == "vc-gray-q10"
    # given records are filtered in their order (restore's custom-zoo path)
    given = [weights_record(n) for n in ("tiny-gray", "c-dncnn", "vc-gray-q10")]
    assert [r.name for r in candidates(Role.RESTORER, records=given)] == ["tiny-gray", "c-dncnn"]


def test_only_package_weights_unless_extra_folders_are_asked_for(tiny, tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    _gray(extra, "x-q30", (30, 30))
    monkeypatch.setenv(zoo.WEIGHTS_PATH_ENV, str(extra))
    assert [r.name for r in candidates(Role.RESTORER)] == ["tiny-gray"]
    assert [r.name for r in candidates(Role.RESTORER, include_extra=True)] == ["tiny-gray", "x-q30"]
    assert select_weights(Role.RESTORER, 30) == "tiny-gray"
    assert select_weights(Role.RESTORER, 30, prefer="x-q30") == "tiny-gray"   # not a candidate
    assert select_weights(Role.RESTORER, 30, prefer="x-q30", include_extra=True) == "x-q30"


def test_a_record_states_its_model_family(tiny):
    assert weights_record("tiny-gray").family == "unet" == describe("resunet-gray").family
    assert {describe(m).family for m in ("jpegnet", "dagn", "hiding-color", "factorized-small")} == \
        {"jpegnet", "dagn", "residual_hiding", "factorized_prior"}
