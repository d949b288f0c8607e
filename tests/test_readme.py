"""The README's commands and its plugin example are the real ones."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from fast_settings import FAST_FLAGS

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "pytest" in ci and ci in README


def test_readme_first_command_runs_the_default_training():
    first = re.search(r"```bash\n(.+?)\n```", README).group(1)
    assert first.startswith("python3 -m venv .venv") and first.endswith(".venv/bin/zoo train classify")


def _block_after(label: str, lang: str) -> str:
    m = re.search(re.escape(label) + r":\n\n```" + lang + r"\n(.*?)```", README, re.S)
    assert m, f"README has no {lang} block after {label}"
    return m.group(1)


def test_the_plugin_example_installs_and_trains(tmp_path, monkeypatch, image_folder):
    from zoo_core.cli import main
    from zoo_core.registry.plugins import get_zoo

    files = dict(re.findall(r"`zoo-cosine/(\S+\.py)`:\n\n```python\n(.*?)```", README, re.S))
    assert "zoo_cosine/__init__.py" in files, "README has no zoo-cosine/zoo_cosine/__init__.py block"
    pyproject = tomllib.loads(_block_after("`zoo-cosine/pyproject.toml`", "toml"))
    (name, target), = pyproject["project"]["entry-points"]["zoo"].items()
    site = tmp_path / "site"
    info = site / "zoo_cosine-0.1.0.dist-info"
    info.mkdir(parents=True)
    for relative, source in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {pyproject['project']['name']}\n"
                                   f"Version: {pyproject['project']['version']}\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(site))
    get_zoo.cache_clear()
    try:
        listed = CliRunner().invoke(main, ["list"])
        assert "cosine (zoo-cosine 0.1.0)" in listed.stdout
        assert "zoo_cosine.heads" not in sys.modules  # listed without importing the head's code
        res = CliRunner().invoke(main, ["train", "classify", "--data", str(image_folder()), *FAST_FLAGS,
                                        "--head", "cosine", "--set", "head.scale=20", "--out", str(tmp_path / "run")])
        assert res.exit_code == 0, res.output
    finally:
        get_zoo.cache_clear()


def test_known_models_resolve():
    from zoo_core.registry.registry_file import known_models
    from zoo_core.registry.plugins import get_zoo

    models = known_models(get_zoo())
    assert len(models) >= 5 and all(m["available"] for m in models)
