"""timm and zoo through the Hub, both ways, against the local Hub server with the real clients:
- zoo push of a timm classifier -> timm.create_model("hf-hub:ID", pretrained=True) gives zoo's predictions;
- timm's push_to_hf_hub -> zoo predict hf-hub:ID, zoo pull, and zoo train --backbone hf-hub:ID;
- the model card's model-index uses the Hub's metric ids and leaves the loss out."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from zoo_core.cli import main
from zoo_core import get_zoo
from zoo_core.testing import tiny_train

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.zoo_plugins("classify")  # trains and reads classifiers: skipped without


def zoo(*args: str):
    get_zoo.cache_clear()
    return CliRunner().invoke(main, list(args))


def photos(tmp_path, n=4):
    out = []
    for i in range(n):
        path = tmp_path / f"photo{i}.png"
        g = torch.Generator().manual_seed(i)
        Image.fromarray((torch.rand(36 + 4 * i, 40, 3, generator=g) * 255).byte().numpy()).save(path)
        out.append(path)
    return out


def zoo_inputs(predictor, files) -> torch.Tensor:
    """The tensors zoo's preprocessing feeds the network for `files`."""
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            seen.append(x)
            return self.inner(x)

    inner = predictor.model
    predictor.model = Spy(inner)
    try:
        predictor.predict(files)
    finally:
        predictor.model = inner
    return torch.cat(seen)


@pytest.fixture
def timm_run(tmp_path):
    """classify on the embedded digits with timm's 0.1M-parameter test EfficientNet and a linear head."""
    return tiny_train("classify", tmp_path / "run", backbone="test_efficientnet", image_size=32, epochs=1)


def test_a_zoo_push_of_a_timm_classifier_loads_in_timm_and_agrees_with_zoo_predict(hub, tmp_path, timm_run):
    res = zoo("push", str(timm_run.dir), "tester/digits-timm")
    assert res.exit_code == 0, res.output
    config = json.loads(hub.repos[("model", "tester/digits-timm")].resolve("main").tree["config.json"])
    assert config["architecture"] == "test_efficientnet" and config["num_classes"] == 10
    assert config["label_names"] == timm_run.info["classes"]
    assert config["pretrained_cfg"]["input_size"] == list(timm_run.data_config.input_size)
    assert config["pretrained_cfg"]["mean"] == list(timm_run.data_config.mean)
    assert config["format"].startswith("zoo-model/")  # zoo's own keys stay beside timm's

    model = timm.create_model("hf-hub:tester/digits-timm", pretrained=True).eval()
    x = torch.randn(3, *timm_run.data_config.input_size)
    with torch.no_grad():
        assert torch.allclose(model(x), timm_run.model.eval()(x), atol=1e-5)
    files = photos(tmp_path)
    zoo_says = [p.to_json()["label"] for p in timm_run.predict(files)]
    pulled = zoo("predict", "hf-hub:tester/digits-timm", *map(str, files), "--json")
    assert pulled.exit_code == 0, pulled.output  # zoo reads the timm-named weights back
    assert [p["label"] for p in json.loads(pulled.stdout)] == zoo_says
    labels = model.pretrained_cfg["label_names"]
    with torch.no_grad():  # timm, on zoo's preprocessing, says what zoo says
        timm_says = [labels[i] for i in model(zoo_inputs(timm_run, files)).argmax(-1).tolist()]
    assert timm_says == zoo_says

    card = hub.repos[("model", "tester/digits-timm")].resolve("main").tree["README.md"].decode()
    assert 'timm.create_model("hf-hub:tester/digits-timm", pretrained=True)' in card
    assert "- timm" in card
    # the Hub's metric ids: accuracy, f1 with its config; no loss in the model-index
    index = card.split("model-index:")[1].split("---")[0]
    assert "type: accuracy" in index and "type: f1" in index and "config: macro" in index
    assert "loss" not in index.replace("validation loss", "")


def test_a_model_timm_cannot_load_is_pushed_in_zoo_layout_only(hub, tmp_path):
    run = tiny_train("classify", tmp_path / "run", image_size=16, epochs=1)  # cnn2: not a timm model
    assert zoo("push", str(run.dir), "tester/cnn2").exit_code == 0
    config = json.loads(hub.repos[("model", "tester/cnn2")].resolve("main").tree["config.json"])
    assert "architecture" not in config and "weights_layout" not in config


@pytest.fixture
def timm_pushed(hub, tmp_path):
    """A 3-class test_efficientnet pushed by timm itself, with label names, safetensors and a pickle."""
    from timm.models import push_to_hf_hub

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=3).eval()
    push_to_hf_hub(model, "someone/timm-shapes", model_config={"label_names": ["circle", "square", "triangle"]},
                   safe_serialization="both")
    return model


def test_a_timm_checkpoint_predicts_pulls_and_trains_in_zoo(hub, tmp_path, timm_pushed, image_folder):
    files = photos(tmp_path)
    res = zoo("predict", "hf-hub:someone/timm-shapes", *map(str, files), "--json")
    assert res.exit_code == 0, res.output
    said = json.loads(res.stdout)
    assert {p["label"] for p in said} <= {"circle", "square", "triangle"}
    # zoo's answer is timm's model on zoo's preprocessing of timm's pretrained_cfg
    from zoo_core import load_pretrained

    pretrained = load_pretrained("hf-hub:someone/timm-shapes", device="cpu")
    assert pretrained.data_config.input_size == (3, 160, 160)  # timm's pretrained_cfg, as pushed
    with torch.no_grad():
        expected = [["circle", "square", "triangle"][i]
                    for i in timm_pushed(zoo_inputs(pretrained, files)).argmax(-1).tolist()]
    assert [p["label"] for p in said] == expected

    pulled = zoo("pull", "someone/timm-shapes")
    assert pulled.exit_code == 0, pulled.output
    assert "timm test_efficientnet checkpoint" in pulled.stdout
    tree = hub.repos[("model", "someone/timm-shapes")].resolve("main").tree
    assert "pytorch_model.bin" in tree  # there, and never downloaded nor unpickled

    data = image_folder()
    out = tmp_path / "from-timm"
    res = zoo("train", "classify", "--data", str(data), "--backbone", "hf-hub:someone/timm-shapes", "--image-size", "32",
              "--epochs", "1", "--batch-size", "8", "--workers", "0", "--out", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["pretrained_source"].startswith("hf-hub:someone/timm-shapes@")
    assert zoo("predict", str(out), str(files[0])).exit_code == 0


def test_a_timm_repo_with_only_a_pickle_is_refused(hub, tmp_path):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("someone/pickled")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "test_efficientnet", "num_classes": 3,
                                                      "pretrained_cfg": {}}))
    torch.save({}, tmp_path / "pytorch_model.bin")
    api.upload_folder(repo_id="someone/pickled", folder_path=str(tmp_path), allow_patterns=["*.json", "*.bin"])
    res = zoo("predict", "hf-hub:someone/pickled", str(photos(tmp_path, 1)[0]))
    assert res.exit_code == 1
    assert "safetensors" in res.stderr and "pytorch_model.bin" in res.stderr
