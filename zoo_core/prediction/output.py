"""Writing predictions as they come: one line per image to the terminal, or a .json, .jsonl or .csv
file. Nothing is held beyond the current record, so 100,000 images take the memory of one."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from ..base.errors import ZooError

FORMATS = {".json": "json", ".jsonl": "jsonl", ".csv": "csv"}


def output_format(path: str | None) -> str | None:
    if path is None:
        return None
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ZooError(f"--output {path}: use a .json, .jsonl or .csv file")
    return fmt


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """A CSV row: nested values (a top-k list, a box) as compact JSON in one cell."""
    return {k: json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list, tuple)) else v for k, v in record.items()}


class PredictionWriter:
    """text (image: caption) or JSON on stdout, or a file in the format its suffix names."""

    def __init__(self, output: str | None = None, as_json: bool = False):
        self.format = output_format(output) or ("json" if as_json else "text")
        self.path = Path(output) if output else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stream: TextIO = open(self.path, "w", newline="" if self.format == "csv" else None) if self.path else sys.stdout
        self.count = 0
        self._csv: csv.DictWriter | None = None

    def write(self, prediction) -> None:
        if self.format == "text":
            self.stream.write(f"{prediction.source}: {prediction.caption()}\n")
        elif self.format == "jsonl":
            self.stream.write(json.dumps(prediction.record()) + "\n")
        elif self.format == "json":  # an array written element by element
            self.stream.write(("[\n  " if self.count == 0 else ",\n  ") + json.dumps(prediction.record()))
        else:
            row = _flat(prediction.record())
            if self._csv is None:
                self._csv = csv.DictWriter(self.stream, fieldnames=list(row), extrasaction="ignore")
                self._csv.writeheader()
            self._csv.writerow(row)
        self.count += 1

    def close(self) -> None:
        if self.format == "json":
            self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()
        if self.path is not None:
            self.stream.close()
