"""Helpers for plugin authors' tests: a real training run of a task, tiny enough for a laptop CPU, and
`zoo` on the command line in-process with its one-line error contract.

    from zoo_core.testing import cli, one_line_error, tiny_train

    def test_my_task_trains(tmp_path):
        run = tiny_train("mytask", tmp_path)            # 1 epoch, small images, no pretrained weights
        assert run.predict([some_image])[0].to_json()

    def test_a_bad_flag_is_one_line(tmp_path):
        assert "--loss" in one_line_error(cli("train", "mytask", "--loss", "nope"))

Also: `run_zoo` (zoo in its own process), `make_image` and `image_folder` (small generated images),
`metrics_of`, `without_time` and `config_of` (what a run directory holds),
`installed_tiny_task` (a complete test task, for what is not a task: the core, a backbone, an exporter).

pytest fixtures (no import needed: zoo-core registers them through its `pytest11` entry point), in
zoo_core/testing/fixtures.py: `hub` (a local Hub-compatible server), `offline` (no network for the test),
`in_tmp` (the test runs in an empty folder), `image_folder` (a builder of class folders under tmp_path),
`tiny_task` (the test task, installed); and the mark `zoo_plugins(*names)` (skipped without those plugins).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

# Small and quick everywhere: a from-scratch CNN on 32 px images, one epoch, no worker processes.
TINY = dict(backbone="cnn2", pretrained=False, image_size=32, epochs=1, batch_size=8, workers=0, quiet=True,
            device="cpu")


def tiny_train(task: str, tmp_path: str | Path, channels: int = 1, **settings: Any):
    """Train `task` with TINY settings (yours win) into tmp_path/run and return the loaded Run.
    channels=3: the same small CNN on RGB input (a colour task: restoration, generation)."""
    from .. import load_run, train

    if channels not in (1, 3):
        raise ValueError(f"tiny_train: channels must be 1 or 3, got {channels}")
    out = Path(tmp_path) / "run"
    rgb = {"backbone_options": {"in_chans": 3}} if channels == 3 else {}
    train(task, out=str(out), **{**TINY, **rgb, **settings})
    return load_run(out, device="cpu")


def isolate_environment() -> None:
    """For a test session (call it at the top of a conftest.py): no test waits on the network (HF_ENDPOINT points
    at a loopback port nothing listens on; the `hub` fixture points it at its own server) and zoo's cache
    (features, decoded images, converted weights, ONNX files) is a new folder shared by the tests and the
    processes they start, never the user's ~/.cache/zoo and never stale. Variables already set win."""
    import tempfile

    os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
    os.environ.setdefault("ZOO_CACHE", tempfile.mkdtemp(prefix="zoo-test-cache-"))


def run_zoo(*args: str, cwd=None, env: dict | None = None, timeout: int = 300):
    """`zoo ARGS` in its own process (real exit codes, signals, start-up), this environment plus `env`.
    Returns the CompletedProcess, output captured as text."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "zoo_core.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


# Three colours that a tiny network tells apart after one epoch (the `image_folder` fixture's classes).
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def swatch(colour: tuple[int, int, int], size: int = 20, seed: int = 0):
    """A noisy size x size PIL image dominated by one colour: easy to learn, never identical."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour, dtype=float) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def make_image(path: str | Path, colour: tuple[int, int, int], size: int = 20, seed: int = 0) -> Path:
    """swatch(colour, size, seed) saved at `path` (folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    swatch(colour, size, seed).save(path)
    return path


def image_folder(root: str | Path, classes=("red", "green", "blue"), per_class: int = 8,
                 presplit: bool = False) -> Path:
    """root/<class>/*.png for classes of COLOURS (or root/train/<class> and root/val/<class>, one in four in
    val, with presplit=True): the layout image classifiers read. Returns root."""
    root = Path(root)
    for c in classes:
        for i in range(per_class):
            sub = (root / ("val" if i % 4 == 0 else "train") / c) if presplit else root / c
            make_image(sub / f"{c}_{i}.png", COLOURS[c], seed=i + 100 * list(COLOURS).index(c))
    return root


def metrics_of(run_dir: str | Path) -> list[dict]:
    """A run's metrics.jsonl: one dict per finished epoch."""
    import json

    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]


def without_time(rows: list[dict]) -> list[dict]:
    """Metric rows without their wall-clock seconds: what two seeded runs must agree on exactly."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def config_of(run_dir: str | Path) -> dict:
    """A run's config.json."""
    import json

    return json.loads((Path(run_dir) / "config.json").read_text())


def cli(*args: str):
    """`zoo ARGS` in this process through click's runner (stdout and stderr kept apart); plugins are loaded
    afresh first, so one installed by the test is seen. Returns click's Result."""
    from click.testing import CliRunner

    from .. import get_zoo
    from ..cli import main

    get_zoo.cache_clear()
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result) -> str:
    """zoo's contract for a known failure, on a `cli(...)` result: exit 1, no escaped exception, no traceback,
    exactly one line on stderr starting 'Error: '. Returns that line, for the test to check what it names."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@contextmanager
def installed_tiny_task(folder: str | Path) -> Iterator[str]:
    """Install `tiny` (zoo_core.testing.tinytask, the smallest complete task) while the block runs, the way pip
    installs a plugin: a distribution in `folder` whose `zoo` entry point names the registration module, on
    sys.path for this process and on PYTHONPATH for the `zoo` processes started meanwhile. Yields the task's
    name. The core itself knows no task: outside this block `tiny` does not exist."""
    from .. import get_zoo

    site = Path(folder)
    info = site / "zoo_testing_tiny-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-testing-tiny\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zoo]\ntiny = zoo_core.testing.tinytask\n")
    old_pythonpath = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), *([old_pythonpath] if old_pythonpath else [])])
    get_zoo.cache_clear()
    try:
        yield "tiny"
    finally:
        sys.path.remove(str(site))
        if old_pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_pythonpath
        get_zoo.cache_clear()
