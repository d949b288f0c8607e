"""zoo_core.testing, what the core's and every plugin's tests are built on: the tiny task exists only while a test
installs it, in this process and in the `zoo` processes it starts, and is a task like any other; the zoo_plugins
mark skips a test whose plugins are missing and says which."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from zoo_core import get_zoo
from zoo_core.testing import COLOURS, installed_tiny_task, make_image, run_zoo, tiny_train


def task_names() -> set[str]:
    get_zoo.cache_clear()
    return {c.name for c in get_zoo().tasks}


def test_the_tiny_task_exists_only_while_installed(tmp_path):
    assert "tiny" not in task_names()
    with installed_tiny_task(tmp_path / "site") as name:
        assert name == "tiny" and name in task_names()
        assert get_zoo().tasks.get(name).plugin == "tiny"
        listing = run_zoo("list", "--json")
        assert listing.returncode == 0, listing.stderr
        assert "tiny" in [t["name"] for t in json.loads(listing.stdout)["components"]["tasks"]]
    assert "tiny" not in task_names()
    assert "tiny" not in [t["name"] for t in json.loads(run_zoo("list", "--json").stdout)["components"]["tasks"]]


def test_the_tiny_task_trains_on_its_embedded_swatches_and_predicts_a_colour(tiny_task, tmp_path):
    run = tiny_train(tiny_task, tmp_path, image_size=16)
    assert run.info["classes"] == list(COLOURS)
    [prediction] = run.predict([make_image(tmp_path / "red.png", COLOURS["red"])])
    assert prediction.to_json()["label"] in COLOURS and 0 < prediction.to_json()["probability"] <= 1


def test_a_test_needing_a_plugin_that_is_not_installed_is_skipped_saying_which(tmp_path):
    (tmp_path / "test_needs.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.zoo_plugins("no-such-plugin")
        def test_it():
            raise AssertionError("ran without its plugin")
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "needs the zoo plugin(s) no-such-plugin installed" in result.stdout
