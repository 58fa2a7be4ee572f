"""Small helpers shared by the benches' matplotlib figures."""

from __future__ import annotations

import os
from pathlib import Path

from ..extras import require_bench_deps


def save_figure(fig, out: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` to ``out`` as a whole file (temporary name, then rename),
    so a stopped bench never leaves half a PNG; closes the figure."""
    require_bench_deps()
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, out)
    return out
