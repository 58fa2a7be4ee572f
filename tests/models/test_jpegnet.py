"""JpegNet (carkit.models.jpegnet) and its training task's data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from carkit.data.jpeg_mix import KINDS, JpegMixBatches, QualityMix, file_tables
from carkit.jpeg.tables import ijg_tables
from carkit.models.jpegnet import JpegNet


def _small():
    return JpegNet(luma_channels=(8, 16, 32), luma_enc_blocks=(1, 1, 1), luma_dec_blocks=(1, 1),
                   chroma_channels=(8, 16), chroma_enc_blocks=(1, 1), chroma_dec_blocks=(1,),
                   cond_channels=16, refine_channels=4)


@pytest.mark.parametrize("shape", [(1, 3, 37, 29), (2, 1, 21, 40), (1, 3, 8, 8), (1, 1, 5, 3)])
def test_shapes_gray_colour_and_odd_sizes(shape):
    net = _small().eval()
    lum, chrom = ijg_tables(20)
    with torch.no_grad():
        assert net(torch.rand(shape), lum, chrom).shape == shape


def test_fresh_net_is_the_identity():
    x = torch.rand(1, 3, 24, 17)
    with torch.no_grad():
        assert torch.allclose(_small()(x), x, atol=1e-5)


def test_tables_condition_the_output():
    torch.manual_seed(0)
    net = _small().eval()
    for tail in (net.luma_tail, net.refine2):   # a trained net's tails are not zero
        torch.nn.init.normal_(tail.weight, std=0.1)
    for block in [m for m in net.modules() if hasattr(m, "film")]:
        torch.nn.init.normal_(block.film.weight, std=0.5)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a = net(x, *ijg_tables(10))
        b = net(x, *ijg_tables(90))
        # per-image tables: image 0 at QF 10, image 1 at QF 90
        mixed = net(x, np.stack([ijg_tables(10)[0], ijg_tables(90)[0]]),
                    np.stack([ijg_tables(10)[1], ijg_tables(90)[1]]))
    assert (a - b).abs().max() > 1e-3
    assert torch.allclose(mixed[0], a[0], atol=1e-5) and torch.allclose(mixed[1], b[1], atol=1e-5)
    with pytest.raises(ValueError, match="tables for a batch"):
        net(x, np.stack([ijg_tables(10)[0]] * 3))


def test_quality_mix_weights_low_and_photographic_ranges_alike():
    rng = np.random.default_rng(0)
    q = np.array([QualityMix().sample(rng) for _ in range(20000)])
    assert q.min() == 5 and q.max() == 100
    low, high = np.mean((q >= 5) & (q <= 40)), np.mean((q >= 60) & (q <= 95))
    assert abs(low - 0.475) < 0.02 and abs(high - 0.475) < 0.02


def test_batches_carry_their_files_tables_and_shapes():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (60, 70, 3), dtype=np.uint8) for _ in range(3)]
    seen = set()
    for kind_index, kind in enumerate(KINDS):
        kinds = tuple(float(i == kind_index) for i in range(len(KINDS)))
        ds = JpegMixBatches(images, 32, 3, kinds=kinds, double=0.5, seed=7)
        b = ds[5]
        c = 1 if kind == "gray" else 3
        assert b["lq"].shape == b["gt"].shape == (3, c, 32, 32)
        assert b["luma_table"].shape == b["chroma_table"].shape == (3, 64)
        for i, q in enumerate(b["quality"].tolist()):
            lum, chrom = ijg_tables(q)   # Pillow codes with the IJG tables of the last quality
            assert np.array_equal(b["luma_table"][i].numpy().reshape(8, 8), lum)
            assert np.array_equal(b["chroma_table"][i].numpy().reshape(8, 8), lum if kind == "gray" else chrom)
        assert torch.equal(ds[5]["lq"], b["lq"])   # a pure function of the step
        seen.add(kind)
    assert seen == set(KINDS)


def test_a_share_of_pairs_is_written_by_jpegli():
    """jpegli's files (its own tables, adaptive quantization) join the mix at
    the asked share, decoded by libjpeg-turbo as a viewer does, with their
    own tables; a mix without jpegli draws exactly the batches it always did."""
    from carkit.codecs.registry import available_codecs

    if "jpegli" not in available_codecs():
        pytest.skip("jpegli bindings not installed")
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (60, 70, 3), dtype=np.uint8) for _ in range(2)]
    for kind_index in range(len(KINDS)):
        kinds = tuple(float(i == kind_index) for i in range(len(KINDS)))
        plain = JpegMixBatches(images, 32, 4, kinds=kinds, double=0.0, seed=2)
        assert torch.equal(plain[3]["lq"], JpegMixBatches(images, 32, 4, kinds=kinds, double=0.0, seed=2,
                                                          jpegli=0.0)[3]["lq"])
        b = JpegMixBatches(images, 32, 4, kinds=kinds, double=0.0, seed=2, jpegli=1.0)[3]
        ijg = [ijg_tables(q)[0] for q in b["quality"].tolist()]
        assert not all(np.array_equal(b["luma_table"][i].numpy().reshape(8, 8), t) for i, t in enumerate(ijg))
    with pytest.raises(ValueError, match="jpegli"):
        JpegMixBatches(images, 32, 4, jpegli=1.5)


def test_a_share_of_pairs_has_tables_shaped_unlike_ijgs():
    """Tables as cameras and editors write them: IJG's tilted and jittered,
    within baseline's 1..255, read back from the file the pair was coded to."""
    from carkit.data.jpeg_mix import varied_tables

    rng = np.random.default_rng(4)
    for q in (5, 50, 95):
        luma, chroma = varied_tables(q, rng)
        assert luma.shape == chroma.shape == (8, 8) and luma.min() >= 1 and chroma.max() <= 255
        assert not np.array_equal(luma, ijg_tables(q)[0])
        ratio = luma / ijg_tables(q)[0]
        assert 0.2 < ratio.min() and ratio.max() < 5
    images = [rng.integers(0, 256, (60, 70, 3), dtype=np.uint8) for _ in range(2)]
    for kind_index in (0, 1):   # gray (one table) and 4:2:0
        kinds = tuple(float(i == kind_index) for i in range(len(KINDS)))
        b = JpegMixBatches(images, 32, 4, kinds=kinds, double=0.0, seed=5, varied_tables=1.0)[2]
        assert b["lq"].shape[1] == (1 if kind_index == 0 else 3)
        for i, q in enumerate(b["quality"].tolist()):
            assert not np.array_equal(b["luma_table"][i].numpy().reshape(8, 8), ijg_tables(q)[0])
        if kind_index == 0:
            assert torch.equal(b["luma_table"], b["chroma_table"])
    with pytest.raises(ValueError, match="varied_tables"):
        JpegMixBatches(images, 32, 4, varied_tables=-0.1)


def test_file_tables_read_the_file():
    from carkit.codecs.jpeg import JpegCodec

    img = np.zeros((16, 16, 3), np.uint8)
    lum, chrom = file_tables(JpegCodec("4:2:0").encode(img, 37))
    assert np.array_equal(lum, ijg_tables(37)[0]) and np.array_equal(chrom, ijg_tables(37)[1])


def test_task_loss_and_validation_inference_run():
    from carkit.training.engine import get_task
    from carkit.training.recipe import Recipe

    task = get_task("jpegnet")
    recipe = Recipe(name="t", model="jpegnet", quality_range=[5, 100], patch_size=16, batch_size=2)
    rng = np.random.default_rng(2)
    ds = task.batches([rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)], None, recipe, 0)
    net = _small()
    loss = task.loss("main", net, {}, ds[0], recipe)
    loss.backward()
    assert torch.isfinite(loss)
    x = torch.rand(1, 3, 20, 20)
    assert task.infer(net.eval(), x, x, 30).shape == x.shape


def test_bench_restore_gives_each_coded_file_its_tables(tmp_path, monkeypatch):
    """`carkit bench restore` restores with the tables of the file it coded
    (a table-conditioned model never falls back to default tables there)."""
    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    import carkit.zoo.registry as zoo
    from carkit.bench.restore_bench import run_restore_bench
    from carkit.models.jpegnet import JpegNet
    from carkit.models.registry import create_model
    from carkit.zoo.registry import WeightsRecord, save_record, sha256_of

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "zoo")
    monkeypatch.setattr(zoo, "extra_dirs", lambda: [])
    (tmp_path / "zoo").mkdir()
    net = create_model("jpegnet")
    path = tmp_path / "zoo" / "tiny-jpegnet.safetensors"
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(path))
    save_record(WeightsRecord.new(name="tiny-jpegnet", model="jpegnet", model_kwargs={}, gray=False,
                              qualities=[5, 100], sha256=sha256_of(path), description="test"))
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3)).astype(np.uint8)).save(images / f"{i}.png")
    seen = []
    real = JpegNet.forward

    def forward(self, x, luma_table=None, chroma_table=None):
        seen.append(None if luma_table is None else float(torch.as_tensor(luma_table).reshape(-1)[0]))
        return real(self, x, luma_table, chroma_table)

    monkeypatch.setattr(JpegNet, "forward", forward)
    run_restore_bench([str(images)], ["tiny-jpegnet"], [10, 90], gray=None, limit=None,
                      results_dir=str(tmp_path / "r"), threads=1)
    from carkit.jpeg.tables import STD_LUMINANCE, quality_scale, _scale_with_factor

    expected = {float(_scale_with_factor(STD_LUMINANCE, quality_scale(q), True).reshape(-1)[0]) for q in (10, 90)}
    assert len(seen) == 4 and set(seen) == expected
