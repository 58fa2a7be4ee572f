"""The training engine: a tiny recipe trains, resumes exactly, and keeps two
data-parallel processes in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from carkit.training.export import export_run
from carkit.training.engine import learning_rate, train
from carkit.training.recipe import Recipe, RecipeError, load_recipe

TINY = """
name = "tiny"
[model]
name = "resunet-gray"
kwargs = {{channels = [8, 16], blocks = 1}}
[data]
train = ["val/cid22"]
patch_size = 32
batch_size = 2
quality_range = [10, 40]
[val]
qualities = [10]
crop = 64
limit = 2
every = 4
[optim]
iterations = {iterations}
checkpoint_every = 3
log_every = 2
bf16 = {bf16}
threads = 1
"""


def _recipe(tmp_path, shared_data, iterations=6, bf16="false") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(iterations=iterations, bf16=bf16))
    return path


def test_train_resume_is_exact(tmp_path, shared_data):
    recipe = load_recipe(_recipe(tmp_path, shared_data), data_root=str(shared_data))
    whole = train(recipe, tmp_path / "whole", resume=False, progress=False)
    first = train(recipe, tmp_path / "sliced", resume=False, max_steps=3, progress=False)
    assert first["step"] == 3
    second = train(recipe, tmp_path / "sliced", progress=False)
    assert second["step"] == 6
    assert second["param_sha256"] == whole["param_sha256"]
    log = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert any("val" in e for e in log) and any("loss" in e for e in log)
    budget = json.loads((tmp_path / "sliced" / "budget.json").read_text())
    assert [s["until_step"] for s in budget["slices"]] == [3, 6]
    # a restart into the same folder discards the old run, and its time with it
    train(recipe, tmp_path / "sliced", resume=False, max_steps=3, progress=False)
    budget = json.loads((tmp_path / "sliced" / "budget.json").read_text())
    assert [(s["from_step"], s["until_step"]) for s in budget["slices"]] == [(0, 3)]
    assert budget["seconds"] == budget["slices"][0]["seconds"]
    restarted_log = [json.loads(line) for line in (tmp_path / "sliced" / "log.jsonl").read_text().splitlines()]
    assert max(e["step"] for e in restarted_log) <= 3


def test_a_recipe_can_train_on_another_codecs_output(tmp_path, shared_data):
    """data.codec: the residual hiding paper's baselines behind JPEG 2000 learn
    from JPEG 2000's output, and validation scores against it too; a gray
    model learns the Y of the color image's decoding, as it is used (coded
    alone, the gray plane would get a third of the bits)."""
    import numpy as np

    from carkit.codecs import get_codec
    from carkit.data.degrade import JpegDegradation, make_degradation
    from carkit.data.folders import as_mode, load_images
    from carkit.metrics import psnr
    from carkit.training.validate import center_crop

    gt = load_images(shared_data / "val" / "cid22", gray=False)[0][:64, :64]
    j2k = make_degradation("JPEG2000", qualities=(28,))
    decoded = get_codec("jpeg2000").roundtrip(gt, 28).decoded
    assert np.array_equal(j2k(gt, 28), decoded) and not j2k.color_input
    y_gt, y_lq = make_degradation("jpeg2000", qualities=(28,), gray=True).pair(gt, 28)
    assert np.array_equal(y_gt, as_mode(gt, True)) and np.array_equal(y_lq, as_mode(decoded, True))
    alone = get_codec("jpeg2000").roundtrip(y_gt, 28)
    assert psnr(alone.decoded, y_gt) < psnr(y_lq, y_gt) - 1                   # why: the rate is the image's
    assert type(make_degradation("jpeg", quality_range=(10, 40), gray=True)) is JpegDegradation
    with pytest.raises(RecipeError, match="data.codec"):
        Recipe(name="x", qualities=[28], codec="bpg")

    recipe = load_recipe(_recipe(tmp_path, shared_data, iterations=2), data_root=str(shared_data),
                         codec="jpeg2000", quality_range=[], qualities=[28], val_qualities=[28], val_every=2)
    train(recipe, tmp_path / "run", resume=False, progress=False)
    val = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()][-1]["val"]
    crops = [center_crop(im, 64) for im in load_images(shared_data / "val" / "cid22", gray=False)[:2]]
    want = np.mean([psnr(as_mode(get_codec("jpeg2000").roundtrip(c, 28).decoded, True), as_mode(c, True))
                    for c in crops])
    assert val["q28"]["jpeg"] == pytest.approx(want)
    assert json.loads((tmp_path / "run" / "recipe.json").read_text())["codec"] == "jpeg2000"


def test_checkpoints_are_safetensors_and_json(tmp_path, shared_data):
    recipe = load_recipe(_recipe(tmp_path, shared_data, iterations=3), data_root=str(shared_data))
    train(recipe, tmp_path / "run", resume=False, progress=False)
    with safe_open(str(tmp_path / "run" / "last.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("model.") for k in keys)
    assert any(k.startswith("ema.") for k in keys)
    assert any(k.startswith("opt.") for k in keys)
    assert json.loads((tmp_path / "run" / "last.json").read_text())["step"] == 3


def test_cosine_schedule_and_warmup():
    r = Recipe(name="x", qualities=[10], lr=1e-3, min_lr=0.0, iterations=100, warmup=10)
    assert learning_rate(r, 0) == pytest.approx(1e-4)
    assert learning_rate(r, 50) == pytest.approx(5e-4)
    assert learning_rate(r, 100) == pytest.approx(0.0)


def test_recipe_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\nqualities = [10]\nbogus = 1\n')
    with pytest.raises(RecipeError, match="unknown keys"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="exactly one"):
        Recipe(name="x")
    with pytest.raises(RecipeError, match="no such recipe"):
        load_recipe(tmp_path / "missing.toml")


def test_shipped_recipes_load():
    """Every recipe (sub-folders too) parses, has a name of its own (its run
    folder), and names a registered model and a task that accepts its arguments."""
    from carkit.models.registry import model_config
    from carkit.training.engine import get_task

    paths = sorted(Path(__file__).resolve().parents[2].joinpath("recipes").rglob("*.toml"))
    assert len(paths) > 20
    names = set()
    for path in paths:
        recipe = load_recipe(path)
        assert recipe.name not in names, path
        names.add(recipe.name)
        model_config(recipe.model)
        get_task(recipe.task, **recipe.task_kwargs)


@pytest.mark.slow
def test_two_process_data_parallel_stays_in_sync(tmp_path, shared_data):
    recipe = _recipe(tmp_path, shared_data, iterations=4)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CARKIT_DATA": str(shared_data)}
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", port,
           "-m", "carkit.cli", "train", str(recipe), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = [(out / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 4
    # and the two ranks did train on different batches: a single process gives other weights
    single = train(load_recipe(recipe, data_root=str(shared_data)), tmp_path / "single", progress=False)
    assert single["param_sha256"] != digests[0].strip()


def test_export_run_to_zoo_and_load(tmp_path, shared_data, monkeypatch):
    import torch

    import carkit.zoo.registry as zoo
    from carkit.cli import main

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    recipe = load_recipe(_recipe(tmp_path, shared_data, iterations=3), data_root=str(shared_data))
    train(recipe, tmp_path / "run", resume=False, progress=False)
    assert main(["zoo", "export", str(tmp_path / "run"), "tiny-export", "--description", "t"]) == 0
    record = zoo.weights_record("tiny-export")
    assert record.gray and record.qualities == [10, 40] and record.training["steps"] == 3
    assert record.training["recipe"]["name"] == "tiny"
    model = zoo.load_pretrained("tiny-export")
    # exporting the same run again gives the same file (a record's sha stays valid)
    assert main(["zoo", "export", str(tmp_path / "run"), "tiny-export", "--description", "t"]) == 0
    assert zoo.weights_record("tiny-export").sha256 == record.sha256
    from safetensors.torch import load_file

    ema = {k[4:]: v for k, v in load_file(str(tmp_path / "run" / "last.safetensors")).items()
           if k.startswith("ema.")}
    for k, v in model.state_dict().items():
        # shipped as float16: equal to the EMA weights to half precision
        assert torch.allclose(v, ema[k].float(), rtol=1e-3, atol=1e-4), k
    # a model still in training goes to another weights folder, found by name (init_from = "zoo:NAME")
    bench = tmp_path / "bench"
    monkeypatch.setenv("CARKIT_WEIGHTS_PATH", str(bench))
    assert main(["zoo", "export", str(tmp_path / "run"), "tiny-wip", "--to", str(bench)]) == 0
    assert (bench / "tiny-wip.safetensors").exists() and not (tmp_path / "zoo" / "tiny-wip.json").exists()
    wip = zoo.weights_record("tiny-wip")
    assert wip.path == bench / "tiny-wip.safetensors" and wip.training["steps"] == 3
    for k, v in zoo.load_pretrained("tiny-wip").state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert "tiny-wip" not in zoo.list_weights() and "tiny-wip" in zoo.list_weights(include_extra=True)


def test_task_with_extras_and_two_optimizers_resumes_exactly(tmp_path, shared_data):
    """A task with an auxiliary module and its own optimizer (the shape of an
    adversarial stage): both are checkpointed, and a resumed run matches."""
    import torch

    from carkit.training.engine import TrainTask, pixel_loss, register_task

    @register_task
    class ToyCritic(TrainTask):
        name = "toy-critic"
        optimizers = ("critic", "main")

        def extras(self, model, recipe):
            return {"critic": torch.nn.Conv2d(1, 1, 3, padding=1)}

        def parameters(self, optimizer, model, extras):
            return extras["critic"].parameters() if optimizer == "critic" else model.parameters()

        def loss(self, optimizer, model, extras, batch, recipe):
            out = model(batch["lq"])
            if optimizer == "critic":
                return (extras["critic"](out.detach()) - extras["critic"](batch["gt"])).mean().abs()
            return pixel_loss("l1", out, batch["gt"]) + 0.01 * extras["critic"](out).mean()

    recipe_path = _recipe(tmp_path, shared_data)
    recipe_path.write_text(recipe_path.read_text().replace("[optim]\n", '[optim]\ntask = "toy-critic"\n'))
    recipe = load_recipe(recipe_path, data_root=str(shared_data))
    whole = train(recipe, tmp_path / "whole", resume=False, progress=False)
    log = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    logged = [e["losses"] for e in log if "losses" in e]
    assert logged and set(logged[0]) == {"critic", "main"} and logged[0]["main"] == next(
        e["loss"] for e in log if "losses" in e)
    train(recipe, tmp_path / "sliced", resume=False, max_steps=3, progress=False)
    with safe_open(str(tmp_path / "sliced" / "last.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("critic.") for k in keys) and any(k.startswith("opt_critic.") for k in keys)
    resumed = train(recipe, tmp_path / "sliced", progress=False)
    assert resumed["param_sha256"] == whole["param_sha256"]


def test_unknown_task_is_a_recipe_error(tmp_path, shared_data):
    recipe_path = _recipe(tmp_path, shared_data)
    recipe_path.write_text(recipe_path.read_text().replace("[optim]\n", '[optim]\ntask = "nope"\n'))
    with pytest.raises(RecipeError, match="unknown training task"):
        train(load_recipe(recipe_path, data_root=str(shared_data)), tmp_path / "x", progress=False)


def test_init_from_zoo_weights_and_the_budget_they_carry(tmp_path, shared_data, monkeypatch):
    """``init_from = "zoo:NAME"`` starts from shipped weights (a run that is
    gone can be continued), and the exported record counts their budget."""
    import torch

    import carkit.zoo.registry as zoo
    from carkit.models.registry import create_model
    from carkit.training.engine import init_from_run

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    recipe = load_recipe(_recipe(tmp_path, shared_data, iterations=3), data_root=str(shared_data))
    train(recipe, tmp_path / "run", resume=False, progress=False)
    first = export_run(tmp_path / "run", "tiny-first")

    model = create_model("resunet-gray", channels=[8, 16], blocks=1)
    counts = init_from_run(model, "zoo:tiny-first")
    assert counts["missing"] == 0 and counts["unused"] == 0
    shipped = zoo.load_pretrained("tiny-first").state_dict()
    assert all(torch.equal(v, shipped[k]) for k, v in model.state_dict().items())

    more = tmp_path / "more.toml"
    more.write_text(TINY.format(iterations=2, bf16="false").replace("[optim]\n", '[optim]\ninit_from = "zoo:tiny-first"\n'))
    train(load_recipe(more, data_root=str(shared_data)), tmp_path / "run2", resume=False, progress=False)
    second = export_run(tmp_path / "run2", "tiny-second")
    stages = second.training["stages"]
    assert [s.get("zoo") for s in stages] == ["tiny-first", None]
    assert stages[0]["steps"] == 3 and stages[1]["steps"] == 2
    assert second.training["wall_seconds"] >= first.training["wall_seconds"]
    assert len(second.training["slices"]) == 2

    with pytest.raises(RecipeError, match="no shipped weights named 'nope'"):
        init_from_run(model, "zoo:nope")


def test_init_from_a_shallower_run_grows_the_unet(tmp_path, shared_data):
    """A recipe whose U-Net has one more scale than its ``init_from`` run's
    starts from that run's weights (renamed, the new scale a no-op) and trains."""
    import torch

    from carkit.models.registry import create_model
    from carkit.training.engine import init_from_run

    recipe = load_recipe(_recipe(tmp_path, shared_data, iterations=3), data_root=str(shared_data))
    train(recipe, tmp_path / "run", resume=False, progress=False)
    small = create_model("resunet-gray", channels=[8, 16], blocks=1)
    init_from_run(small, tmp_path / "run")
    big = create_model("resunet-gray", channels=[8, 16, 32], blocks=1)
    counts = init_from_run(big, tmp_path / "run")
    assert counts["unused"] == 0 and counts["missing"] == 8   # the new scale's block (4), its downsampling (2), the first conv of the block reading it (2)
    x = torch.rand(1, 1, 40, 36)
    with torch.no_grad():
        assert torch.equal(big.eval()(x), small.eval()(x))
    grown = tmp_path / "grown.toml"
    grown.write_text(TINY.format(iterations=2, bf16="false")
                     .replace("channels = [8, 16]", "channels = [8, 16, 32]")
                     .replace("[optim]\n", f'[optim]\ninit_from = "{tmp_path / "run"}"\n'))
    summary = train(load_recipe(grown, data_root=str(shared_data)), tmp_path / "run2", resume=False, progress=False)
    assert summary["step"] == 2


def test_train_into_a_folder_that_cannot_be_made_is_a_one_line_error(tmp_path, shared_data, capsys):
    from carkit.cli import main

    (tmp_path / "runs").symlink_to(tmp_path / "gone")           # a dangling link where the run folder goes
    blocked = tmp_path / "file"
    blocked.write_text("")
    for out in (tmp_path / "runs" / "tiny", blocked / "tiny"):
        assert main(["train", str(_recipe(tmp_path, shared_data)), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("carkit: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
