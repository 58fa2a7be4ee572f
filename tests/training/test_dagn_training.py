"""Algorithm 1 through the one training engine: stage one trains the awareness
auto-encoders, stage two starts from it with the encoders frozen."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from carkit.training.export import export_run
from carkit.training.engine import train
from carkit.training.recipe import load_recipe

RECIPE = """
name = "{name}"
[model]
name = "dagn-small"
[data]
train = ["val/cid22"]
gray = false
patch_size = 32
batch_size = 2
quality_range = [10, 95]
[val]
every = 0
[optim]
task = "{task}"
init_from = "{init}"
iterations = 2
checkpoint_every = 2
bf16 = false
threads = 1
"""


def _recipe(tmp_path, name, task, init=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(RECIPE.format(name=name, task=task, init=init))
    return path


def test_two_stages(tmp_path, shared_data, monkeypatch):
    one = load_recipe(_recipe(tmp_path, "one", "dagn-stage1"), data_root=str(shared_data))
    train(one, tmp_path / "one", resume=False, progress=False)
    state = load_file(str(tmp_path / "one" / "last.safetensors"))
    assert any(k.startswith("ci_ae.discriminator.") for k in state)
    assert any(k.startswith("opt_discriminator.") for k in state)
    two = load_recipe(_recipe(tmp_path, "two", "dagn-stage2", str(tmp_path / "one")), data_root=str(shared_data))
    train(two, tmp_path / "two", resume=False, progress=False)
    after = load_file(str(tmp_path / "two" / "last.safetensors"))
    enc = [k for k in state if k.startswith("model.cs_encoder.") and state[k].is_floating_point()]
    assert enc and all(torch.equal(state[k], after[k]) for k in enc)  # frozen in stage two
    dec = [k for k in state if k.startswith("model.decoder.") and k.endswith("weight")]
    assert any(not torch.equal(state[k], after[k]) for k in dec)  # the restorer learned
    # the exported weights carry both stages' budgets
    import carkit.zoo.registry as zoo

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    record = export_run(tmp_path / "two", "two")
    assert [s["run"] for s in record.training["stages"]] == ["one", "two"]
    assert [s["steps"] for s in record.training["stages"]] == [2, 2]
    assert record.training["wall_seconds"] == sum(s["wall_seconds"] for s in record.training["stages"])
    assert zoo.load_pretrained("two").use_cigm
    # a run that is not in the zoo is benchmarked straight from its folder (ablation tables)
    import json

    from PIL import Image

    from carkit.cli import main
    from carkit.bench.report import build_report

    data = tmp_path / "live1_color"
    data.mkdir()
    Image.open(shared_data / "eval" / "kodak" / "kodim23.png").crop((0, 0, 64, 48)).save(data / "a.png")
    results = tmp_path / "results"
    assert main(["bench", "restore", "--data", str(data), "--runs", str(tmp_path / "two"), "--tag", "ablation",
                 "--qualities", "10", "--results", str(results), "--threads", "1"]) == 0
    payload = json.loads((results / "restore_live1_color_color_ablation.json").read_text())
    assert set(payload["rows"]) == {"jpeg", "two"} and payload["models"]["two"]["run"] == str(tmp_path / "two")
    assert payload["models"]["two"]["mode"] == "color" and payload["models"]["two"]["training"]["steps"] == 2
    report = build_report(results)
    assert "live1_color (color, ablation)" in report and "--runs" in report and "Table V" in report
