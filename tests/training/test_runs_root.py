"""Run folders live under a runs root (default ./runs, ``carkit train
--runs-root``): a fresh clone trains anywhere, and a recipe's ``init_from``
("runs/NAME" or "NAME") names a run under that root, wherever it is."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from carkit.models.registry import create_model
from carkit.training.export import export_run
from carkit.training.engine import TrainTask, init_from_run, train
from carkit.training.recipe import DEFAULT_RUNS_ROOT, RecipeError, load_recipe, resolve_run

TINY = """
name = "{name}"
[model]
name = "resunet-gray"
kwargs = {{channels = [8, 16], blocks = 1}}
[data]
train = ["val/cid22"]
patch_size = 32
batch_size = 2
quality_range = [10, 40]
[val]
every = 0
[optim]
init_from = "{init}"
iterations = 2
checkpoint_every = 2
bf16 = false
threads = 1
"""


def _recipe(folder: Path, shared_data, name: str, init: str = ""):
    path = folder / f"{name}.toml"
    path.write_text(TINY.format(name=name, init=init))
    return load_recipe(path, data_root=str(shared_data))


def test_resolve_run():
    assert DEFAULT_RUNS_ROOT == Path("runs")
    for written in ("runs/stage1", "./runs/stage1", "stage1"):
        assert resolve_run(written) == Path("runs/stage1")
        assert resolve_run(written, "/data/runs") == Path("/data/runs/stage1")
    assert resolve_run("runs/a/b", "/r") == Path("/r/a/b")
    assert resolve_run("/elsewhere/stage1", "/r") == Path("/elsewhere/stage1")   # absolute: itself
    with pytest.raises(RecipeError, match="names no run folder"):
        resolve_run("runs", "/r")


def test_a_fresh_clone_trains_into_its_runs_root(tmp_path, shared_data, monkeypatch):
    clone = tmp_path / "clone"
    clone.mkdir()
    monkeypatch.chdir(clone)   # no runs/ here yet, as in a fresh clone
    recipe = _recipe(tmp_path, shared_data, "tiny")
    summary = train(recipe, progress=False)
    assert Path(summary["out_dir"]) == Path("runs/tiny")
    assert (clone / "runs" / "tiny" / "last.safetensors").is_file()
    elsewhere = tmp_path / "elsewhere" / "runs"   # --runs-root: made as needed
    summary = train(recipe, runs_root=elsewhere, progress=False)
    assert Path(summary["out_dir"]) == elsewhere / "tiny" and (elsewhere / "tiny" / "summary.json").is_file()
    assert summary["step"] == 2


def test_a_dangling_runs_link_is_a_clear_error(tmp_path, shared_data, monkeypatch):
    """What a clone of a repository that committed runs as a link met: one
    line naming the link, before any data is loaded."""
    monkeypatch.chdir(tmp_path)
    os.symlink(tmp_path / "gone", tmp_path / "runs")
    with pytest.raises(RecipeError, match=r"runs is a link to .*gone, which does not exist"):
        train(_recipe(tmp_path, shared_data, "tiny"), progress=False)
    (tmp_path / "afile").write_text("")
    with pytest.raises(RecipeError, match="cannot make the run folder"):
        train(_recipe(tmp_path, shared_data, "tiny"), runs_root=tmp_path / "afile", progress=False)


def test_init_from_names_a_run_under_the_runs_root(tmp_path, shared_data, monkeypatch):
    root = tmp_path / "somewhere" / "runs"
    train(_recipe(tmp_path, shared_data, "one"), runs_root=root, progress=False)
    one = {k[6:]: v for k, v in load_file(str(root / "one" / "last.safetensors")).items()
           if k.startswith("model.")}
    monkeypatch.chdir(tmp_path)   # no runs/ in the working directory: only the root can hold "one"
    for written in ("runs/one", "one"):
        net = create_model("resunet-gray", channels=[8, 16], blocks=1)
        counts = init_from_run(net, written, runs_root=root)
        assert counts["loaded"] == len(one) and counts["missing"] == 0
        assert all(torch.equal(net.state_dict()[k], v) for k, v in one.items())
    # a whole second stage through train(): starts from the run under the root
    loaded = []
    real = init_from_run

    def spy(model, run_dir, *args, **kwargs):
        counts = real(model, run_dir, *args, **kwargs)
        loaded.append((str(run_dir), Path(kwargs["runs_root"]), counts["loaded"]))
        return counts

    monkeypatch.setattr("carkit.training.engine.init_from_run", spy)
    summary = train(_recipe(tmp_path, shared_data, "two", init="runs/one"), runs_root=root, progress=False)
    assert loaded == [("runs/one", root, len(one))]
    assert Path(summary["out_dir"]) == root / "two"
    assert json.loads((root / "two" / "recipe.json").read_text())["init_from"] == "runs/one"   # as written
    # and the zoo record of stage two carries stage one's budget, found under the same root
    import carkit.zoo.registry as zoo

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    record = export_run(root / "two", "two")
    assert [s["run"] for s in record.training["stages"]] == ["one", "two"]
    # a run that is not there: the error names where it looked
    with pytest.raises(RecipeError, match=r"init_from: .*somewhere/runs/nope/last.safetensors does not exist "
                                          r"\(runs/nope is under the runs root"):
        init_from_run(create_model("resunet-gray", channels=[8, 16], blocks=1), "runs/nope", runs_root=root)


def test_task_run_paths_follow_the_runs_root(tmp_path):
    """A task's own run settings (residual hiding's ``sim_init``) resolve under
    the root that train() gives the task."""
    from carkit.training import hiding_tasks as ht

    assert TrainTask.runs_root == DEFAULT_RUNS_ROOT
    task = ht.ResidualHidingTask(strategy="I", simulator="autoencoder", sim_features=4, sim_blocks=2,
                                 sim_init="runs/gone")
    task.runs_root = tmp_path / "root"
    model = create_model("hiding-color", channels=[4, 8, 16], blocks=1)
    with pytest.raises(RecipeError, match=rf"sim init: {tmp_path}/root/gone/last.safetensors does not exist"):
        task.extras(model, None)
