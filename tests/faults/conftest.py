"""The fault suite: bad inputs and faults (kills, signals, full disks, tampered files, hostile plugins) on
tiny runs. One trained run is shared per session; every case states what the user must see: one line
`Error: ...`, the right exit code, no traceback, and nothing already saved changed.

The suite prints its case count at the end of every pytest session that ran it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .faultkit import TINY_SETTINGS, make_folder

FAULTS_DIR = Path(__file__).resolve().parent


# Each file's class in issue 25's list (files of the earlier suite: what they cover); the summary counts by it.
CLASSES = {
    "test_fault_formats": "1 task data formats",
    "test_fault_images": "2 images",
    "test_fault_server": "3 server",
    "test_fault_hub": "4 hub",
    "test_fault_exports": "5 exports, compress, caches",
    "test_fault_caches": "5 exports, compress, caches",
    "test_fault_plugins": "6 plugins and the scaffold",
    "test_fault_plugins2": "6 plugins and the scaffold",
    "test_fault_kills": "training: kills, signals, full disks",
    "test_fault_signals": "training: kills, signals, full disks",
    "test_fault_rundirs": "training: run directories",
    "test_fault_commands": "training: commands and settings",
    "test_fault_settings": "training: commands and settings",
}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """'fault suite: N cases (...)': each case counted once, by its outcome; then the count per class."""
    counts: dict[str, int] = {}
    per_class: dict[str, int] = {}
    for outcome, reports in terminalreporter.stats.items():
        for report in reports:
            nodeid = getattr(report, "nodeid", "").replace("\\", "/")
            when = getattr(report, "when", None)
            if "tests/faults/" not in f"tests/{nodeid}" and "faults/" not in nodeid or when is None:
                continue
            if when == "call" or (when == "setup" and not report.passed):
                counts[outcome or "other"] = counts.get(outcome or "other", 0) + 1
                stem = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
                label = CLASSES.get(stem, stem)
                per_class[label] = per_class.get(label, 0) + 1
    total = sum(counts.values())
    if total:
        detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        terminalreporter.write_sep("-", f"fault suite: {total} cases ({detail})")
        for label, n in sorted(per_class.items()):
            terminalreporter.write_line(f"  class {label}: {n}")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No case may reach the network; the small nets are built from scratch."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


@pytest.fixture(scope="session")
def folder(tmp_path_factory) -> Path:
    """Three classes of 8 small PNGs each: a seeded run trains on it in about a second."""
    return make_folder(tmp_path_factory.mktemp("data") / "pets")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, folder) -> Path:
    """One finished 2-epoch run, shared: tests that tamper with it work on a copy (`run_copy`)."""
    from zoo_core import train

    out = tmp_path_factory.mktemp("trained") / "run"
    train("classify", data=str(folder), out=str(out), **{**TINY_SETTINGS, "epochs": 2})
    return out


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(trained, dest)
    return dest
