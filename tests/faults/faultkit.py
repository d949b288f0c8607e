"""Helpers of the fault suite: the one-line error contract, the CLI in-process and in its own process,
tiny data, and fake installed plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from zoo_core.testing import config_of, metrics_of, without_time  # noqa: F401  (the suite's own helpers, re-exported)

TINY_SETTINGS = dict(backbone="cnn2", pretrained=False, image_size=16, epochs=1, batch_size=8, workers=0,
                     device="cpu", quiet=True, seed=0)
TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "16", "--epochs", "1", "--batch-size", "8",
        "--workers", "0", "--device", "cpu", "-q"]
ZOO = [sys.executable, "-m", "zoo_core.cli"]


def make_folder(root: Path, classes=("red", "green", "blue"), per_class: int = 8, size: int = 20) -> Path:
    colours = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(k)
        for i in range(per_class):
            arr = np.clip(np.array(colours[c], float) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{c}{i}.png")
    return root


def one_line_error(exit_code: int, stderr: str, code: int | None = 1) -> str:
    """The contract for a known failure: exit `code` (any non-zero when None), exactly one line on stderr
    starting with 'Error: ', no traceback. Returns the line."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("Error: "), lines[0]
    if code is None:
        assert exit_code != 0, lines[0]
    else:
        assert exit_code == code, f"exit {exit_code}, expected {code}: {lines[0]}"
    assert not lines[0].startswith("Error: unexpected "), f"a known failure reported as a crash: {lines[0]}"
    return lines[0]


def cli(*args: str, env: dict | None = None):
    """`zoo ARGS` in this process (fast): click's runner keeps stderr apart."""
    from click.testing import CliRunner

    from zoo_core.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def cli_error(*args: str, code: int | None = 1) -> str:
    result = cli(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return one_line_error(result.exit_code, result.stderr, code)


def zoo_process(*args: str, cwd: Path | None = None, env: dict | None = None, preexec_fn=None,
                timeout: int = 300) -> subprocess.CompletedProcess:
    """`zoo ARGS` in its own process: real signals, real exit codes, real limits."""
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", **(env or {})}
    return subprocess.run([*ZOO, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=full,
                          preexec_fn=preexec_fn, timeout=timeout)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes: 'nothing saved changed' is snapshot before == after."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.glob(".*.tmp")]


def install_plugin(site: Path, name: str, source: str) -> None:
    """A plugin 'installed' the way pip leaves one: a module and a .dist-info with its entry point."""
    module = f"zoo_fault_{name.replace('-', '_')}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"zoo_fault_{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: zoo-fault-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{name} = {module}\n")
