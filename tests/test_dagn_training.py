"""Algorithm 1 through the one training engine: stage one trains the awareness
auto-encoders, stage two starts from it with the encoders frozen."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

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


def test_two_stages(tmp_path, shared_data):
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
