"""Class 6, plugins: two plugins registering one component or command name disable the later
registration (named in `zoo list` and in one warning), never take zoo down; a plugin raising in predict
is one line and the other tasks go on; a scaffold name that is not an identifier or holds a path
separator is one line and writes nothing."""

from __future__ import annotations

import json

import pytest

from .faultkit import cli, cli_error, install_plugin

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

CLASH = """
from torch import nn
from zoo_core import CommandSpec, HeadSpec, TaskSpec, hookimpl


@hookimpl
def register_heads(register):
    register(HeadSpec("linear", lambda backbone, info: nn.Identity(), "logits/class", description="a clash"))
    register(HeadSpec("clash-own", lambda backbone, info: nn.Identity(), "logits/class", description="its own"))
    register(HeadSpec("clash-own", lambda backbone, info: nn.Identity(), "logits/class", description="twice"))


@hookimpl
def register_commands(cli):
    @cli.command("twin")
    def twin():
        print("first")

    @cli.command("twin2")
    def twin2():
        print("mine")
"""

CLASH_COMMAND = """
from zoo_core import hookimpl


@hookimpl
def register_commands(cli):
    @cli.command("twin")
    def twin():
        print("second")
"""


def test_clashing_names_disable_the_later_registration_not_zoo(site):
    # plugins load built-ins first, then by entry-point name: these come after 'classify'
    install_plugin(site, "zclash", CLASH)
    install_plugin(site, "zclashz", CLASH_COMMAND)
    result = cli("list")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("Warning: "), result.stderr
    for words in ("head 'linear'", "head 'clash-own'", "command 'zoo twin'", "'zclashz'", "'classify'"):
        assert words in warnings[0], warnings[0]
    assert "disabled:" in result.stdout
    listed = json.loads(cli("list", "--json").stdout)
    plugins = {p["name"]: p for p in listed["plugins"]}
    assert any("linear" in d for d in plugins["zclash"]["disabled"])
    assert plugins["zclash"]["components"]["heads"] == ["clash-own"] and plugins["zclash"]["status"] == "ok"
    assert any("twin" in d for d in plugins["zclashz"]["disabled"])
    twin = cli("twin")
    assert twin.exit_code == 0 and "first" in twin.output  # the first registration is the one kept
    from zoo_core.registry.plugins import get_zoo

    assert get_zoo().heads.get("linear").plugin == "classify"  # the first registration stays what it is


RAISES_IN_PREDICT = """
from zoo_core import hookimpl
import zoo_classify.task as t


class Raising(t.ClassifyTask):
    name = "raising"
    description = "a task whose predict raises"

    def predict(self, *a, **k):
        raise RuntimeError("boom in predict")


@hookimpl
def register_tasks(register):
    register(Raising)
"""


def test_a_plugin_raising_in_predict_is_one_line_and_other_tasks_go_on(site, trained, tmp_path):
    install_plugin(site, "raising", RAISES_IN_PREDICT)
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["task"] = config["task"] = "raising"
    from zoo_core.training.rundir import model_digest, weights_metadata

    (run / "config.json").write_text(json.dumps(config))
    from safetensors.torch import load_file, save_file

    for name in ("best.safetensors", "last.safetensors"):
        save_file(load_file(run / name), run / name,
                  metadata={**weights_metadata(run / name), "model_digest": model_digest(config["model"])})
    image = next((trained.parent.parent.parent).rglob("*.png"), None) or next(run.rglob("*.png"))
    raised = cli("predict", run, image)  # a plugin's bug: one line, with a crash log, exit 1
    lines = [line for line in raised.stderr.splitlines() if line.strip()]
    assert raised.exit_code == 1 and len(lines) == 1 and "Traceback" not in raised.stderr, raised.stderr
    assert "boom in predict" in lines[0] and "log" in lines[0], lines[0]
    ok = cli("predict", trained, image)
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "1abc", "with space", "", "class"])
def test_a_scaffold_name_that_is_not_an_identifier_is_one_line_and_writes_nothing(in_tmp, name):
    line = cli_error("plugin", "new", name, "--dir", in_tmp, code=None)
    assert line.startswith("Error: ")
    assert not any(in_tmp.iterdir()) and not (in_tmp.parent / "evil").exists()
