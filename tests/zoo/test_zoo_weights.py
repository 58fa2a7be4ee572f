"""Where the zoo's weights live: the package ships product weights only, at
most 80 MB; the repository's weights/bench (and CARKIT_WEIGHTS_PATH) holds
the rest, which every lookup by name finds but automatic choices never see."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import carkit
import carkit.zoo.registry as zoo
from carkit.errors import ModelError
from carkit.models.registry import create_model
from carkit.restoration.restorer import choose_model
from carkit.zoo.registry import WeightsRecord, list_weights, load_pretrained, save_record, sha256_of, weights_record

#: the issue-35 budget for the weights inside the package (safetensors and records)
PACKAGE_BUDGET = 80_000_000

REPOSITORY = Path(__file__).resolve().parents[2]
BENCH_ONLY = sorted(set(list_weights(include_extra=True)) - set(list_weights()))


def test_package_weights_total_at_most_80_mb():
    files = [p for p in zoo.WEIGHTS_DIR.iterdir() if p.suffix in (".safetensors", ".json")]
    total = sum(p.stat().st_size for p in files)
    assert total <= PACKAGE_BUDGET, f"the package's weights are {total / 1e6:.1f} MB (budget 80 MB)"
    # every record has its weights beside it and nothing else ships there
    assert sorted(p.stem for p in files if p.suffix == ".json") == list_weights()
    assert sorted(p.stem for p in files if p.suffix == ".safetensors") == list_weights()


def test_bench_weights_live_in_the_repository_outside_the_package():
    assert zoo.BENCH_DIR == REPOSITORY / "weights" / "bench"
    assert not zoo.BENCH_DIR.is_relative_to(Path(carkit.__file__).resolve().parent)
    assert len(BENCH_ONLY) >= 20
    assert not set(BENCH_ONLY) & set(list_weights())


@pytest.mark.parametrize("name", list_weights())
def test_every_package_weight_loads(name):
    record = weights_record(name)
    assert record.path.parent == zoo.WEIGHTS_DIR
    load_pretrained(name)


@pytest.mark.parametrize("name", BENCH_ONLY)
def test_every_bench_weight_still_loads(name):
    record = weights_record(name)
    assert record.path.parent == zoo.BENCH_DIR and record.path.exists()
    load_pretrained(name)                         # sha256-checked, as for the package's


@pytest.mark.parametrize("gray", [True, False])
def test_automatic_choices_see_package_weights_only(gray):
    from carkit.codecs.hiding.codec import choose_weights as choose_hiding, default_carrier
    from carkit.codecs.virtual.codec import choose_weights as choose_vcodec
    from carkit.zoo.select import candidates

    shipped = set(list_weights())
    for q in [None, *range(1, 101)]:
        plan = choose_model(gray, q)
        assert plan.model is None or plan.model in shipped, (q, plan.model)
    assert {r.name for role in ("hiding", "vcodec") for r in candidates(role, gray=gray)} <= shipped
    for q in range(1, 101, 7):
        assert choose_vcodec(gray, q) in shipped
        if not gray:
            assert choose_hiding(default_carrier(), gray, q) in shipped


def _tiny(directory: Path, name: str, seed: int = 0) -> None:
    """A tiny gray ResUNet zoo entry ``name`` in ``directory`` (its record written there)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    kwargs = {"channels": [8, 16], "blocks": 1}
    path = directory / f"{name}.safetensors"
    save_file({k: v.half().contiguous() for k, v in create_model("resunet-gray", **kwargs).state_dict().items()},
              str(path))
    save_record(WeightsRecord.new(name=name, model="resunet-gray", model_kwargs=kwargs, gray=True, qualities=[10, 40],
                              sha256=sha256_of(path), description="test", folder=directory))


def test_extra_folders_are_searched_after_the_package_in_order(tmp_path, monkeypatch):
    package, first, second, bench = (tmp_path / d for d in ("package", "first", "second", "bench"))
    _tiny(package, "both", seed=0)
    _tiny(first, "both", seed=1)
    _tiny(first, "in-first", seed=2)
    _tiny(second, "in-first", seed=3)
    _tiny(bench, "in-bench", seed=4)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", package)
    monkeypatch.setattr(zoo, "BENCH_DIR", bench)
    monkeypatch.setenv(zoo.WEIGHTS_PATH_ENV, f"{first}{os.pathsep}{second}")
    assert zoo.extra_dirs() == [first, second, bench]
    assert list_weights() == ["both"]
    assert list_weights(include_extra=True) == ["both", "in-bench", "in-first"]
    assert weights_record("both").path.parent == package                   # the package's wins a clash
    assert weights_record("in-first").path.parent == first
    assert weights_record("in-bench").path.parent == bench
    load_pretrained("in-bench")
    # a record saved again is written back where it was found; a new record goes to the package
    record = weights_record("in-bench")
    record.description = "changed"
    save_record(record)
    assert weights_record("in-bench").description == "changed" and not (package / "in-bench.json").exists()
    assert "folder" not in record.to_dict()
    # gone folders are skipped; nothing named is only the package
    monkeypatch.setenv(zoo.WEIGHTS_PATH_ENV, str(tmp_path / "missing"))
    monkeypatch.setattr(zoo, "BENCH_DIR", None)
    assert zoo.extra_dirs() == [] and list_weights(include_extra=True) == ["both"]
    with pytest.raises(ModelError, match="in-bench"):
        weights_record("in-bench")
