"""Shared fixtures.

``shared_data``: the read-only image data folder ``../shared/data`` beside the
checkout (CI has the same layout); tests that use it are skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test if the folder is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Torch on one thread for the test, the count restored after. Tiny
    networks gain nothing from threads, and on a busy machine OpenMP's
    barriers make several threads far slower; modules of tiny-network tests
    use it for every test (``pytestmark = pytest.mark.usefixtures("one_thread")``),
    and a test that compares thread counts sets its own inside."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
