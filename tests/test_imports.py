"""Startup: `import carkit` and a restore load no plotting or curve fitting
(matplotlib, scipy: the ``bench`` extra), and a bench without them says
which extra to install."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from carkit.errors import CarkitError

#: top-level packages of the optional extras that the restore path must not load
OPTIONAL = ("matplotlib", "scipy", "pytorch_msssim", "skimage")

# Run in a fresh interpreter: the test process has long imported everything.
_RESTORE_PATH = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import carkit
    t1 = time.perf_counter()
    after_import_carkit = sorted(m for m in sys.modules if m.split(".")[0] in {optional!r})
    import carkit.restoration.restorer
    t2 = time.perf_counter()
    import carkit.zoo.registry, carkit.models.dagn, carkit.models.unet, carkit.models.registry
    from carkit.cli import main
    rc = main(["restore", sys.argv[1], "-o", sys.argv[2]])
    print(json.dumps({{"rc": rc, "import_carkit_s": t1 - t0, "import_restore_s": t2 - t1,
                      "after_import_carkit": after_import_carkit,
                      "after_restore": sorted(m for m in sys.modules if m.split(".")[0] in {optional!r})}}))
""").format(optional=OPTIONAL)


def test_import_and_restore_load_no_bench_dependencies(tmp_path):
    src = tmp_path / "tiny.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (45, 67, 3)).astype(np.uint8)).save(src, quality=20)
    out = tmp_path / "tiny.png"
    proc = subprocess.run([sys.executable, "-c", _RESTORE_PATH, str(src), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["rc"] == 0 and out.is_file()
    assert info["after_import_carkit"] == []
    assert info["after_restore"] == []
    # noted, not asserted (shared CPUs): torch is most of it
    print(f"import carkit: {info['import_carkit_s']:.3f} s; "
          f"import carkit.restoration.restorer: {info['import_restore_s']:.2f} s")


@pytest.mark.parametrize("missing", ["scipy", "matplotlib"])
def test_bench_without_extra_names_it(monkeypatch, tmp_path, capsys, missing):
    from carkit.cli import main
    from carkit import metrics
    from carkit.bench.plots import save_figure
    from carkit.extras import require_bench_deps

    monkeypatch.setitem(sys.modules, missing, None)   # import fails as if not installed
    with pytest.raises(CarkitError, match=r"pip install 'carkit\[bench\]'") as exc:
        require_bench_deps()
    assert missing in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(CarkitError, match=r"carkit\[bench\]"):
        metrics.bd_rate([1, 2, 3, 4], [30, 31, 32, 33], [1, 2, 3, 4], [30.5, 31.5, 32.5, 33.5])
    with pytest.raises(CarkitError, match=r"carkit\[bench\]"):
        save_figure(object(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    # the CLI: an error exit and one line, before any work
    (tmp_path / "results").mkdir()
    assert main(["bench", "report", "--results", str(tmp_path / "results"),
                 "--out", str(tmp_path / "R.md")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("carkit: error: carkit bench needs matplotlib and scipy") and "\n" not in err
    assert not (tmp_path / "R.md").exists()


def test_ssim_loss_without_train_extra_names_it(monkeypatch):
    import torch

    from carkit.training.vcodec_tasks import ssim_loss

    monkeypatch.setitem(sys.modules, "pytorch_msssim", None)
    with pytest.raises(CarkitError, match=r"pip install 'carkit\[train\]'"):
        ssim_loss(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
