"""Plugin discovery goes through entry points; built-ins use the same hooks; failures are contained."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from click.testing import CliRunner

from fast_settings import FAST_FLAGS
from zoo_core.cli import main
from zoo_core.base.errors import ZooError
from zoo_core.registry.registries import Component, Registry
from zoo_core.testing import run_zoo

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

ROOT = Path(__file__).resolve().parents[1]


def test_classify_is_found_through_its_entry_point():
    eps = {ep.name: ep for ep in md.entry_points(group="zoo")}
    assert eps["classify"].value == "zoo_classify"
    assert eps["classify"].dist.name == "zoo-classify"

    from zoo_core.registry.plugins import get_zoo

    plugins = {p.name: p for p in get_zoo().plugins}
    assert plugins["classify"].source == "zoo-classify" and plugins["classify"].error is None
    assert plugins["builtin"].source == "zoo-core"


def test_zoo_core_never_imports_a_plugin():
    for f in (ROOT / "zoo_core").rglob("*.py"):
        assert "zoo_classify" not in f.read_text(), f"{f} mentions a plugin"
    # Importing and using zoo-core's API loads plugins only via get_zoo(), i.e. via entry points.
    code = "import sys, zoo_core.api, zoo_core.cli; assert 'zoo_classify' not in sys.modules; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"



def zoo_cli(*args: str):
    from zoo_core.registry.plugins import get_zoo

    get_zoo.cache_clear()
    return CliRunner().invoke(main, list(args))


def _fake_distribution(site: Path, dist: str, version: str, module: str, source: str, ep_name: str) -> None:
    """A plugin 'installed' the way pip would leave it: a module plus a .dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{ep_name} = {module}\n")


HELLO = """
    import torch
    from torch import nn
    from zoo_core import HeadSpec, LossSpec, hookimpl

    class Negate(nn.Module):
        def forward(self, x):
            return -x

    def hello_head(backbone, info):
        return nn.Linear(backbone.num_features, info["num_outputs"])

    @hookimpl
    def register_heads(register):
        register(HeadSpec("hello-head", hello_head, "logits/class", description="a third-party head"))

    @hookimpl
    def register_losses(register):
        register(LossSpec("hello-loss", lambda info: nn.CrossEntropyLoss(), ("logits/class",)))
"""


def test_a_third_party_plugin_appears_with_no_other_step(tmp_path):
    """In a real separate process, as a user would see it."""
    site = tmp_path / "site"
    site.mkdir()
    _fake_distribution(site, "zoo-hello", "0.2.0", "zoo_hello", HELLO, "hello")
    res = run_zoo("list", "--json", env={"PYTHONPATH": str(site)})
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    hello = next(p for p in data["plugins"] if p["name"] == "hello")
    assert hello["version"] == "0.2.0" and hello["source"] == "zoo-hello" and hello["status"] == "ok"
    assert hello["components"] == {"heads": ["hello-head"], "losses": ["hello-loss"]}
    heads = {c["name"]: c for c in data["components"]["heads"]}
    assert heads["hello-head"]["plugin"] == "hello"


def test_a_third_party_head_trains(tmp_path, site, image_folder):
    _fake_distribution(site, "zoo-hello", "0.2.0", "zoo_hello", HELLO, "hello")
    data = image_folder()
    res = zoo_cli("train", "classify", "--data", str(data), *FAST_FLAGS, "--head", "hello-head",
                  "--loss", "hello-loss", "--out", str(tmp_path / "run"), "-q")
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"]["head"] == "hello-head" and cfg["plugins"]["hello"] == "0.2.0"


def test_a_broken_plugin_is_shown_and_the_rest_works(site):
    _fake_distribution(site, "zoo-broken", "1.0", "zoo_broken", "import not_a_real_module_xyz\n", "broken")
    _fake_distribution(site, "zoo-badhook", "1.0", "zoo_badhook", """
        from zoo_core import hookimpl
        @hookimpl
        def register_heads(register):
            raise RuntimeError("boom")
    """, "badhook")
    res = zoo_cli("list", "--json")
    assert res.exit_code == 0, res.output
    plugins = {p["name"]: p for p in json.loads(res.stdout)["plugins"]}
    assert plugins["broken"]["status"] == "broken" and "not_a_real_module_xyz" in plugins["broken"]["error"]
    assert plugins["badhook"]["status"] == "broken" and "boom" in plugins["badhook"]["error"]
    assert plugins["classify"]["status"] == "ok"
    text = zoo_cli("list")
    assert text.exit_code == 0 and "BROKEN" in text.stdout and "classify" in text.stdout


def test_two_plugins_registering_one_name_disable_the_later_registration(site):
    _fake_distribution(site, "zoo-dupe", "1.0", "zoo_dupe", """
        from torch import nn
        from zoo_core import HeadSpec, hookimpl
        @hookimpl
        def register_heads(register):
            register(HeadSpec("mlp", lambda backbone, info: nn.Identity(), "logits/class"))
    """, "dupe")
    res = zoo_cli("list")
    assert res.exit_code == 0, res.output
    line = res.stderr.strip()  # one warning naming both
    assert len(line.splitlines()) == 1 and line.startswith("Warning: ")
    assert "'mlp'" in line and "'classify'" in line and "'dupe'" in line
    assert "disabled:" in res.stdout and "head 'mlp' (plugin 'classify' has it)" in res.stdout


def test_registry_lookup_families_and_wildcards():
    from zoo_core import BackboneSpec

    reg = Registry("backbone")
    reg.add(Component("backbone", BackboneSpec("cnn2", lambda name, **kw: name), "builtin"))
    reg.add(Component("backbone", BackboneSpec("fam", lambda name, **kw: ("fam", name), family=True,
                                               names=lambda: ["alpha", "beta"]), "builtin"))
    assert reg.create("cnn2") == "cnn2"
    assert reg.create("fam:beta") == ("fam", "beta")
    assert reg.create("alpha") == ("fam", "alpha")  # bare names fall through to families
    assert reg.names("a*") == ["fam:alpha"]
    assert reg.names("fam:*") == ["fam:alpha", "fam:beta"]
    with pytest.raises(ZooError, match="did you mean: cnn2"):
        reg.resolve("cnn3")
    with pytest.raises(ZooError, match="did you mean: beta"):
        reg.resolve("fam:betta")


def test_list_json_shows_every_component():
    res = zoo_cli("list", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["classify"]["components"] == {
        "backbones": ["text-cnn"],
        "datasets": ["digits", "image-folder", "image-csv", "captcha", "multilabel-folder", "multilabel-csv"],
        "heads": ["linear", "mlp"], "losses": ["cross-entropy", "bce", "group-cross-entropy"],
        "tasks": ["classify", "multilabel"]}
    builtin = plugins["builtin"]["components"]
    assert {"cnn2", "lenet", "linear", "mlp", "cnn1", "timm", "torchvision"} <= set(builtin["backbones"])
    assert set(builtin["exporters"]) == {"onnx", "onnx-int8", "torchscript", "safetensors"}
    families = {c["name"]: c for c in data["components"]["backbones"]}
    assert families["timm"]["models"] > 500 and families["torchvision"]["models"] > 20
    assert all("available" in m for m in data["known_models"])


def test_list_backbones_wildcard():
    res = zoo_cli("list", "--backbones", "resnet1*")
    assert res.exit_code == 0
    names = res.stdout.split()
    assert "timm:resnet18" in names and "torchvision:resnet18" in names and "timm:resnet50" not in names


def test_console_script_is_installed():
    zoo = Path(sys.executable).parent / "zoo"
    res = subprocess.run([str(zoo), "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "zoo" in res.stdout
