"""A run directory: its name, its log, its config, its checkpoints and metrics, and rebuilding the
trained model from it. Every file is written atomically (temp file + rename)."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from . import artifacts
from .errors import ZooError

RUN_FORMAT = "zoo-run/2"


def next_run_dir(task: str, root: Path = Path("runs")) -> Path:
    """runs/<task>-001, -002, ...: short to type, sorted by age."""
    existing = root.iterdir() if root.is_dir() else []
    taken = [int(m.group(1)) for p in existing if (m := re.fullmatch(rf"{re.escape(task)}-(\d+)", p.name))]
    return root / f"{task}-{max(taken, default=0) + 1:03d}"


class RunLog:
    """Lines to stderr (above the progress bar) and to the run's train.log."""

    def __init__(self, path: Path | None = None, quiet: bool = False):
        self.path, self.quiet = path, quiet
        self._buffer: list[str] = []

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            from tqdm import tqdm
            tqdm.write(msg, file=sys.stderr)
        if self.path is None:
            self._buffer.append(msg)
        else:
            with open(self.path, "a") as f:
                f.write(msg + "\n")

    def attach(self, path: Path) -> None:
        self.path = path
        with open(path, "a") as f:
            f.writelines(m + "\n" for m in self._buffer)
        self._buffer = []


def read_config(run_dir: str | Path, what: str = "") -> dict[str, Any]:
    """A run's config.json, checked enough that a damaged one is a one-line error, not a KeyError later."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    prefix = f"{what} {run_dir}" if what else str(run_dir)
    if not path.is_file():
        raise ZooError(f"{prefix}: not a zoo run directory (no config.json)")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: unreadable run config ({e})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict) or not isinstance(saved.get("train"), dict):
        raise ZooError(f"{path}: not a zoo run config (no 'model' and 'train' sections)")
    missing = [k for k in ("task", "backbone", "head", "info", "data_config") if k not in saved["model"]]
    if missing:
        raise ZooError(f"{path}: the 'model' section lacks {', '.join(missing)}")
    return saved


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    artifacts.write_json(run_dir / "config.json", {"format": RUN_FORMAT, **config})


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """metrics.jsonl gets one line per epoch; metrics.csv is rewritten from it (columns can grow)."""
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    rows = read_metrics(run_dir)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    artifacts.write_text(run_dir / "metrics.csv", buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(run_dir: Path) -> None:
    rows = read_metrics(run_dir)
    if rows:
        from .plots import plot_curves as plot
        plot(rows, run_dir / "curves.png")


def rebuild(run_dir: str | Path, which: str = "best"):
    """(model, saved config, task) of a run, from its config.json and weights alone."""
    from .model import build_model
    from .plugins import get_zoo

    run_dir = Path(run_dir)
    saved = read_config(run_dir)
    weights = run_dir / f"{which}.safetensors"
    if not weights.is_file() and (run_dir / "model.safetensors").is_file():  # a model pulled from the Hub
        weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise ZooError(f"{run_dir}: no {which}.safetensors (did training finish an epoch?)")
    zoo = get_zoo()
    task = zoo.tasks.create(saved["model"]["task"])
    model = build_model(zoo, saved["model"])
    try:
        artifacts.load_weights(model, weights)
    except ZooError:
        raise
    except Exception as e:
        raise ZooError(f"{weights}: unreadable weights ({type(e).__name__}); the file is damaged") from None
    return model.eval(), saved, task
