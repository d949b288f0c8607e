"""Shared fixtures: tiny generated image folders and fast training settings (2 CPU cores)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Never wait on the network in tests: nothing listens on port 9 of the loopback.
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
# zoo's cache (features, decoded images, converted weights, ONNX files) in one folder for the session,
# shared by the tests and the processes they start: never the user's ~/.cache/zoo, and never stale.
os.environ.setdefault("ZOO_CACHE", tempfile.mkdtemp(prefix="zoo-test-cache-"))

ZOO = [sys.executable, "-m", "zoo_core.cli"]

# A small from-scratch CNN on 16x16 images, one epoch: a real training run in well under a second.
FAST = dict(backbone="cnn2", pretrained=False, image_size=16, epochs=1, batch_size=8, workers=0, quiet=True)
FAST_FLAGS = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "16", "--epochs", "1",
              "--batch-size", "8", "--workers", "0"]


def make_image(path: Path, colour: tuple[int, int, int], size: int = 20, seed: int = 0) -> Path:
    """A noisy image dominated by one colour: easy to learn, never identical."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour, dtype=float) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


@pytest.fixture
def image_folder(tmp_path):
    """tmp/pets/<class>/*.png: three colour classes, 8 images each."""

    def build(classes=("red", "green", "blue"), per_class=8, root_name="pets", presplit=False):
        root = tmp_path / root_name
        for c in classes:
            for i in range(per_class):
                sub = (root / ("val" if i % 4 == 0 else "train") / c) if presplit else root / c
                make_image(sub / f"{c}_{i}.png", COLOURS[c], seed=i + 100 * list(COLOURS).index(c))
        return root

    return build


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_zoo(*args: str, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*ZOO, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One quick run on the embedded digits (2 epochs), shared by predict/eval/export tests."""
    from zoo_core import train

    out = tmp_path_factory.mktemp("digits") / "run"
    train("classify", out=str(out), epochs=2, quiet=True)
    return out


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where fake distributions are 'installed'; plugins reload around the test,
    and the modules imported from it are forgotten after it."""
    from zoo_core.registry.plugins import get_zoo

    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    get_zoo.cache_clear()
    yield path
    get_zoo.cache_clear()
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(path)):
            del sys.modules[name]
