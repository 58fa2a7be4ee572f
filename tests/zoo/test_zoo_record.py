"""The typed weights record (carkit.zoo.record) and the model descriptor:
every record is schema 2 and agrees with its model; malformed records are
one-line WeightsErrors; weights hosted at a URL are fetched once, kept only
if their sha256 matches."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import carkit.zoo.registry as zoo
from carkit.errors import WeightsError
from carkit.models.registry import InputKind, Role, create_model, describe, list_models
from carkit.zoo.record import SCHEMA, WeightsRecord, licence_text
from carkit.zoo.registry import list_weights, load_pretrained, save_record, sha256_of, weights_record


@pytest.mark.parametrize("name", list_weights(include_extra=True))
def test_every_record_is_typed_and_agrees_with_its_model(name):
    record = weights_record(name)
    record.check_model()
    data = json.loads((record.folder / f"{name}.json").read_text())
    assert data["schema"] == SCHEMA and "results" not in data
    assert data["role"] == describe(record.model).role.value
    assert record.codec in ("jpeg", "jpegli", "jpeg2000", "heif", "factorized")
    assert record.licence.startswith("MIT") and record.budget_seconds > 0 and record.steps > 0
    lo, hi = record.qualities
    assert 1 <= lo <= hi <= 100
    assert record.recipe and record.recipe is record.training["recipe"]   # provenance, as exported


def test_descriptors_say_how_to_run_each_model():
    for name in list_models():
        d = describe(name)
        assert isinstance(d.role, Role) and isinstance(d.input, InputKind) and d.size_multiple % 8 == 0
        assert set(d.channels) <= {1, 3}
    assert describe("jpegnet").input == InputKind.PIXELS_AND_TABLES and describe("jpegnet").channels == (1, 3)
    assert describe("jpegnet").size_multiple == 16
    assert describe("hrcnn-blind").input == InputKind.COEFFICIENTS and describe("hrcnn-blind").role == "kspace"
    assert describe("dagn-small") .channels == (3,) and describe("blockcnn-predictor").role == Role.PREDICTOR
    assert f"{Role.RESTORER}" == "restorer"


def test_licence_names_the_training_data():
    text = licence_text(["train/cid22", "train/t91"])
    assert text.startswith("MIT; trained on ") and "CC BY-SA 4.0" in text and "T91" in text
    assert licence_text([]) == "MIT"


def _zoo_with(tmp_path, monkeypatch, url: str | None = None, keep_file: bool = True):
    package = tmp_path / "package"
    package.mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", package)
    monkeypatch.setattr(zoo, "extra_dirs", lambda: [])
    monkeypatch.setenv("CARKIT_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    net = create_model("resunet-gray", channels=(8, 16), blocks=1)
    hosted = tmp_path / "hosted.safetensors"
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(hosted))
    record = WeightsRecord.new(name="w", model="resunet-gray", model_kwargs={"channels": [8, 16], "blocks": 1}, gray=True,
                               qualities=[10, 40], sha256=sha256_of(hosted), url=url, training={"steps": 1})
    save_record(record)
    if keep_file:
        (package / "w.safetensors").write_bytes(hosted.read_bytes())
    return package, hosted


def test_malformed_records_are_one_line_errors(tmp_path, monkeypatch):
    package, _ = _zoo_with(tmp_path, monkeypatch)
    data = json.loads((package / "w.json").read_text())
    cases = [({**data, "schema": 1}, "schema 1"),
             ({k: v for k, v in data.items() if k != "licence"}, "missing keys ['licence']"),
             ({**data, "results": {}}, "unknown keys ['results']"),
             ({**data, "role": "oracle"}, "'oracle' is not a valid Role"),
             ({**data, "role": "hiding"}, "the record says hiding of pixels, but resunet-gray is a restorer"),
             ([1, 2], "a weights record is a JSON object")]
    for bad, message in cases:
        (package / "w.json").write_text(json.dumps(bad))
        with pytest.raises(WeightsError) as info:
            weights_record("w").check_model()
        assert message in str(info.value) and "\n" not in str(info.value), message
    (package / "w.json").write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable weights record"):
        weights_record("w")


def test_hosted_weights_are_fetched_once_and_checked(tmp_path, monkeypatch):
    _, hosted = _zoo_with(tmp_path, monkeypatch, url=None, keep_file=False)
    with pytest.raises(WeightsError, match="weights file missing"):
        load_pretrained("w")
    record = weights_record("w")
    record.url = hosted.as_uri()
    save_record(record)
    net = load_pretrained("w")
    cached = tmp_path / "cache" / "weights" / "w.safetensors"
    assert cached.read_bytes() == hosted.read_bytes() and net(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    hosted.unlink()
    load_pretrained("w")  # from the cache, no fetch
    # a file whose digest is not the record's is refused and nothing is kept
    cached.unlink()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not the weights")
    record.url = bad.as_uri()
    save_record(record)
    with pytest.raises(WeightsError, match="does not match the record"):
        load_pretrained("w")
    assert not cached.exists() and not list(cached.parent.iterdir())
    record.url = (tmp_path / "nowhere.safetensors").as_uri()
    save_record(record)
    with pytest.raises(WeightsError, match="could not fetch"):
        load_pretrained("w")
