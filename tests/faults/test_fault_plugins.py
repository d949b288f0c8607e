"""Class 6 and 7, and the crash path: a diverging run is never saved as best; a plugin that raises at
import (even SystemExit) or half-way through registering takes nothing else down and offers nothing;
an unexpected exception is one line plus a log file; tokens are never printed."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch

from .faultkit import TINY, cli, cli_error, config_of, install_plugin, snapshot

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

HEADS = """
import torch
from torch import nn
from zoo_core import HeadSpec, hookimpl


class NanInEval(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        out = self.fc(x)
        return out if self.training else out * float("nan")


class InfWeights(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.spare = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.spare.fill_(float("inf"))
        return self.fc(x)


def nan_eval(backbone, info):
    return NanInEval(backbone.num_features, info["num_outputs"])


def inf_weights(backbone, info):
    return InfWeights(backbone.num_features, info["num_outputs"])


def crashing(backbone, info):
    return {}["a bug in the plugin"]


@hookimpl
def register_heads(register):
    register(HeadSpec("nan-eval", nan_eval, output="logits/class", description="diverges in validation"))
    register(HeadSpec("inf-weights", inf_weights, output="logits/class", description="non-finite weights"))
    register(HeadSpec("crashing", crashing, output="logits/class", description="raises KeyError"))


@hookimpl
def register_commands(cli):
    @cli.command("explode")
    def explode():
        raise ValueError("the plugin's own command failed")
"""


@pytest.fixture
def heads(site):
    install_plugin(site, "heads", HEADS)
    return site


@pytest.mark.parametrize("head,problem", [("nan-eval", "val_loss"), ("inf-weights", "non-finite")])
def test_divergence_is_one_line_and_never_saved_as_best(heads, tmp_path, folder, head, problem):
    out = tmp_path / "run"
    line = cli_error("train", "classify", "--data", folder, *TINY, "--epochs", "2", "--head", head, "--out", out)
    assert "diverged" in line and problem in line and "--lr" in line
    assert not (out / "best.safetensors").exists()
    assert config_of(out)["status"] == "diverged"
    assert torch.load(out / "last.state.pt", weights_only=True)["epoch"] == 0


def test_an_unexpected_exception_is_one_line_with_a_log(heads, tmp_path, folder, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    result = cli("train", "classify", "--data", folder, *TINY, "--head", "crashing", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: unexpected KeyError") and "ZOO_DEBUG=1" in lines[0], result.stderr
    log = re.search(r"traceback in (\S+\.log)", lines[0]).group(1)
    assert "Traceback" in open(log).read() and "crashing" in open(log).read()


def test_zoo_debug_shows_the_traceback(heads, tmp_path, folder, monkeypatch):
    monkeypatch.setenv("ZOO_DEBUG", "1")
    result = cli("train", "classify", "--data", folder, *TINY, "--head", "crashing", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "Traceback" in result.stderr and "KeyError" in result.stderr


def test_a_plugin_command_failing_is_one_line_with_a_log(heads, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    result = cli("explode")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "unexpected ValueError" in lines[0], result.stderr


BROKEN_AT_IMPORT = {
    "RuntimeError": 'raise RuntimeError("cannot find its data")',
    "ImportError": "import a_module_that_is_not_installed",
    "SystemExit by argparse": "import argparse\nargparse.ArgumentParser().parse_args(['--nope'])",
    "sys.exit": "import sys\nsys.exit('bye')",
    "SyntaxError": "def broken(:\n    pass",
}


@pytest.mark.parametrize("case", list(BROKEN_AT_IMPORT))
def test_a_plugin_raising_at_import_takes_nothing_down(site, in_tmp, folder, case):
    install_plugin(site, "broken", BROKEN_AT_IMPORT[case])
    listing = cli("list", "--json")
    assert listing.exit_code == 0, listing.stderr
    plugins = {p["name"]: p for p in json.loads(listing.stdout)["plugins"]}
    assert plugins["broken"]["status"] == "broken" and plugins["classify"]["status"] == "ok"
    assert "\n" not in plugins["broken"]["error"]
    assert cli("list").exit_code == 0
    assert "nosuchtask" in cli_error("train", "nosuchtask")


HALF_WAY = """
from torch import nn
from zoo_core import HeadSpec, hookimpl


def head(backbone, info):
    return nn.Linear(backbone.num_features, info["num_outputs"])


@hookimpl
def register_heads(register):
    register(HeadSpec("half-a", head, output="logits/class", description="registered before the failure"))
    raise ValueError("failed half-way")
"""

COMMANDS_FAIL = """
from torch import nn
from zoo_core import HeadSpec, hookimpl


def head(backbone, info):
    return nn.Linear(backbone.num_features, info["num_outputs"])


@hookimpl
def register_heads(register):
    register(HeadSpec("half-b", head, output="logits/class", description="its plugin fails later"))


@hookimpl
def register_commands(cli):
    raise SystemExit("parses sys.argv")
"""


@pytest.mark.parametrize("source,name", [(HALF_WAY, "half-a"), (COMMANDS_FAIL, "half-b")], ids=["in-hook", "later-hook"])
def test_a_plugin_failing_half_way_offers_none_of_its_components(site, in_tmp, folder, source, name):
    install_plugin(site, "half", source)
    listing = json.loads(cli("list", "--json").stdout)
    plugins = {p["name"]: p for p in listing["plugins"]}
    assert plugins["half"]["status"] == "broken"
    assert name not in [h["name"] for h in listing["components"]["heads"]]
    assert name in cli_error("train", "classify", "--data", folder, *TINY, "--head", name)


def test_a_broken_plugin_does_not_stop_training(site, tmp_path, folder):
    install_plugin(site, "broken", BROKEN_AT_IMPORT["SystemExit by argparse"])
    result = cli("train", "classify", "--data", folder, *TINY, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "run" / "best.safetensors").exists()


SECRET = "hf_zooFaultSuiteSecretToken0123456789"


@pytest.mark.parametrize("args", [["push", "{run}", "someone/model"], ["pull", "someone/model"],
                                  ["predict", "hf-hub:someone/model", "x.png"]], ids=["push", "pull", "predict"])
def test_a_token_is_never_printed(trained, in_tmp, monkeypatch, args):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    before = snapshot(trained)
    result = cli(*[a.format(run=trained) for a in args])
    assert result.exit_code != 0
    assert SECRET not in result.stderr and SECRET not in result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert snapshot(trained) == before
    for log in (in_tmp.glob("**/*.log")):
        assert SECRET not in log.read_text()
