"""Shared fixtures: paths into ../shared (weights, data, parity fixtures) and tiny images."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SOD100K_SHARED", ROOT.parent / "shared"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def graph_cache(tmp_path_factory) -> Path:
    """The exported-graph cache of this test session (never the user's ~/.cache); set in
    the environment, so commands run in child processes share it."""
    folder = tmp_path_factory.mktemp("graph-cache")
    previous = os.environ.get("SOD100K_CACHE")
    os.environ["SOD100K_CACHE"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["SOD100K_CACHE"]
    else:
        os.environ["SOD100K_CACHE"] = previous


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips the test where ../shared is absent (never in CI)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing; CI must run with ../shared beside the repo")
        pytest.skip(f"{path} not available (../shared is absent)")
    return path


@pytest.fixture(scope="session")
def weights_x1() -> Path:
    return shared_path("weights", "csnet-L-x1")


@pytest.fixture(scope="session")
def weights_x2() -> Path:
    return shared_path("weights", "csnet-L-x2")


@pytest.fixture(scope="session")
def ecssd() -> Path:
    return shared_path("data", "ECSSD")


@pytest.fixture(scope="session")
def duts2k() -> Path:
    return shared_path("data", "DUTS-TR-2k")


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return shared_path("parity")


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` fixture, read into memory (the file is closed)."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (parity tolerances assume it), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """Eight 40x36 images with a bright square as the salient object."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(8):
        img = rng.integers(0, 100, size=(36, 40, 3), dtype=np.uint8)
        mask = np.zeros((36, 40), dtype=np.uint8)
        y, x = rng.integers(0, 16, size=2)
        img[y : y + 16, x : x + 16] += 150
        mask[y : y + 16, x : x + 16] = 255
        Image.fromarray(img).save(root / "images" / f"{i:02d}.jpg")
        Image.fromarray(mask).save(root / "masks" / f"{i:02d}.png")
    return root


@pytest.fixture
def deny_writes(monkeypatch):
    """``deny_writes(folder)``: creating a temporary file directly in ``folder`` fails
    with EACCES, as in a read-only folder or on a read-only mount, for root too (root
    writes into a chmod 555 folder, and CI runs as root). Every probe and atomic write
    of sod100k creates its file with ``tempfile.mkstemp``."""
    real = tempfile.mkstemp

    def deny(folder: Path) -> None:
        denied = Path(folder).resolve()

        def mkstemp(*args, **kwargs):
            where = kwargs.get("dir")
            if where is not None and Path(where).resolve() == denied:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    return deny


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow checks run only when asked for (``-m slow``), keeping CI's suite short."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow check; run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def ecssd_subset(ecssd: Path, dst: Path, stems: tuple[str, ...]) -> tuple[Path, Path]:
    """Copy the ECSSD images and masks named by ``stems`` to ``dst/img`` and ``dst/gt``."""
    images, masks = dst / "img", dst / "gt"
    images.mkdir()
    masks.mkdir()
    for stem in stems:
        shutil.copy(ecssd / "images" / f"{stem}.jpg", images)
        shutil.copy(ecssd / "masks" / f"{stem}.png", masks)
    return images, masks


@pytest.fixture(scope="module")
def chromium_browser():
    """Headless Chromium (Playwright) with the fake camera; see tests/chromium.py."""
    from chromium import FAKE_CAMERA, chromium

    with chromium(extra_flags=FAKE_CAMERA) as browser:
        yield browser


@pytest.fixture
def page(chromium_browser):
    """A fresh page that may reach only this machine (asserted at the end)."""
    from chromium import offline_page

    with offline_page(chromium_browser) as p:
        yield p
        assert p.external_requests == [], p.external_requests
