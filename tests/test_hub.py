"""zoo push / zoo pull / hf-hub: against a local Hub-compatible server (zoo_core/testing/hubserver.py), with the real
huggingface_hub client: round trips for classify and localize, pinned revisions, offline use, errors,
pickles refused, the model card, and no token anywhere."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from zoo_core.cli import main
from zoo_core.registry.plugins import get_zoo
from zoo_core.testing import one_line_error, tiny_train
from zoo_core.testing.hubserver import go_offline

pytestmark = pytest.mark.zoo_plugins("classify", "localize")  # trains them: skipped without

TOKEN = "hf_test"


def zoo(*args: str):
    get_zoo.cache_clear()
    return CliRunner().invoke(main, list(args))


def images(tmp_path: Path) -> list[Path]:
    out = []
    for i, size in enumerate([(40, 24), (24, 40), (33, 33)]):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", size, (60 * i, 200 - 50 * i, 90)).save(path)
        out.append(path)
    return out


def predictions(target: str, files: list[Path]) -> list[dict]:
    res = zoo("predict", target, *map(str, files), "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    return [{k: v for k, v in p.items() if k != "image"} for p in json.loads(res.stdout)]


@pytest.fixture
def classify_run(tmp_path):
    return tiny_train("classify", tmp_path / "c", epochs=2, image_size=16).dir


def empty_cache():
    from huggingface_hub import constants

    shutil.rmtree(constants.HF_HUB_CACHE, ignore_errors=True)


@pytest.mark.parametrize("task", ["classify", "localize"])
def test_push_pull_round_trip_gives_the_same_predictions(hub, tmp_path, task):  # noqa: F811
    run = tiny_train(task, tmp_path / "r", epochs=1, image_size=32).dir
    files = images(tmp_path)
    local = predictions(str(run), files)
    res = zoo("push", str(run), f"tester/{task}-tiny", "--with", "onnx")
    assert res.exit_code == 0, res.output
    assert f"/tester/{task}-tiny" in res.stdout and "commit" in res.stdout
    tree = hub.repos[("model", f"tester/{task}-tiny")].resolve("main").tree
    assert {"model.safetensors", "config.json", "README.md", "metrics.csv", "curves.png", "model.onnx"} <= set(tree)
    assert not [n for n in tree if n.endswith((".pt", ".pth", ".bin", ".pkl"))]
    empty_cache()
    pulled = zoo("pull", f"tester/{task}-tiny")
    assert pulled.exit_code == 0, pulled.output
    assert predictions(f"hf-hub:tester/{task}-tiny", files) == local
    ev = zoo("eval", f"hf-hub:tester/{task}-tiny", "--json")
    assert ev.exit_code == 0, ev.output


def test_pinned_revision_survives_a_second_push_and_works_offline(hub, tmp_path, monkeypatch):  # noqa: F811
    files = images(tmp_path)
    first = tiny_train("classify", tmp_path / "a", epochs=1, image_size=16).dir
    second = tiny_train("classify", tmp_path / "b", epochs=2, image_size=16, seed=7, lr=0.01).dir
    out = zoo("push", str(first), "tester/digits")
    commit = out.stdout.strip().rsplit("commit ", 1)[1]
    assert zoo("push", str(second), "tester/digits").exit_code == 0
    assert predictions(f"hf-hub:tester/digits@{commit}", files) == predictions(str(first), files)
    assert predictions("hf-hub:tester/digits", files) == predictions(str(second), files)
    go_offline(monkeypatch)
    hub.stop()
    assert predictions(f"hf-hub:tester/digits@{commit}", files) == predictions(str(first), files)
    assert zoo("pull", "tester/digits").exit_code == 0
    line = one_line_error(zoo("pull", "tester/never-pulled"))
    assert "not in the local cache" in line


def test_push_to_a_branch_and_registry_entry(hub, tmp_path, classify_run):  # noqa: F811
    registry = tmp_path / "my-registry.toml"
    res = zoo("push", str(classify_run), "tester/digits", "--revision", "v2", "--registry", str(registry))
    assert res.exit_code == 0, res.output
    import tomllib

    entry = tomllib.loads(registry.read_text())["model"][0]
    assert entry["repo"] == "tester/digits" and len(entry["revision"]) == 40 and entry["task"] == "classify"
    empty_cache()
    by_name = zoo("pull", "digits", "--registry", str(registry))
    assert by_name.exit_code == 0, by_name.output
    listed = zoo("list", "--registry", str(registry))
    assert "digits" in listed.stdout and "hf-hub:tester/digits" in listed.stdout


def test_model_card_parses_and_carries_the_metrics(hub, tmp_path, classify_run):  # noqa: F811
    from huggingface_hub import ModelCard, hf_hub_download

    assert zoo("push", str(classify_run), "tester/card", "--license", "apache-2.0").exit_code == 0
    card = ModelCard.load(hf_hub_download("tester/card", "README.md"))
    data = card.data.to_dict()
    assert data["library_name"] == "zoo" and data["pipeline_tag"] == "image-classification"
    assert data["license"] == "apache-2.0" and "zoo-classify" in data["tags"]
    results = card.data.eval_results
    saved = json.loads((classify_run / "config.json").read_text())["best"]
    accuracy = next(r for r in results if r.metric_type == "accuracy")
    assert accuracy.metric_value == pytest.approx(saved["val_accuracy"], abs=1e-6)
    assert "zoo predict hf-hub:tester/card" in card.text and "curves.png" in card.text


def test_no_token_in_any_output_file_or_card(hub, tmp_path, classify_run):  # noqa: F811
    res = zoo("push", str(classify_run), "tester/secret", "--private")
    pulled = zoo("pull", "tester/secret")
    assert TOKEN not in res.output + pulled.output
    from huggingface_hub import constants

    for f in Path(constants.HF_HUB_CACHE).rglob("*"):
        if f.is_file():
            assert TOKEN.encode() not in f.read_bytes(), f
    for name, blob in hub.repos[("model", "tester/secret")].resolve("main").tree.items():
        assert TOKEN.encode() not in blob, name


def test_errors_are_one_line(hub, tmp_path, classify_run, monkeypatch):  # noqa: F811
    assert zoo("push", str(classify_run), "tester/m").exit_code == 0
    assert "not found" in one_line_error(zoo("pull", "tester/nothing-here"))
    assert "revision 'nope'" in one_line_error(zoo("pull", "tester/m@nope"))
    assert "not a valid Hub repo id" in one_line_error(zoo("pull", "bad//id"))
    assert "neither a Hub repo id" in one_line_error(zoo("pull", "no-such-model"))
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    line = one_line_error(zoo("push", str(classify_run), "tester/m2"))
    assert "401" in line and "hf_wrong" not in line
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # a private repo without a token
    assert zoo("push", str(classify_run), "tester/private", "--private").exit_code == 0
    monkeypatch.delenv("HF_TOKEN")
    empty_cache()
    assert "HF_TOKEN" in one_line_error(zoo("pull", "tester/private"))


def test_unreachable_hub_is_a_fast_one_line_error(tmp_path, classify_run, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    assert "cannot reach 127.0.0.1:9" in one_line_error(zoo("push", str(classify_run), "tester/m"))
    assert "not in the local cache" in one_line_error(zoo("pull", "tester/m"))


def test_a_pickle_only_repo_is_refused_and_never_unpickled(hub, tmp_path):  # noqa: F811
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    hub.commit("tester/pickled", {"pytorch_model.bin": pickle.dumps(Payload()),
                                  "config.json": json.dumps({"format": "zoo-model/1"}).encode()})
    line = one_line_error(zoo("pull", "tester/pickled"))
    assert "safetensors" in line and "pytorch_model.bin" in line
    one_line_error(zoo("predict", "hf-hub:tester/pickled", str(images(tmp_path)[0])))
    assert not marker.exists()
    from huggingface_hub import constants

    assert not list(Path(constants.HF_HUB_CACHE).rglob("pytorch_model.bin"))


def test_incompatible_configs_say_what_to_do(hub, tmp_path, classify_run):  # noqa: F811
    weights = (classify_run / "best.safetensors").read_bytes()
    config = json.loads((classify_run / "config.json").read_text())
    newer = {**config, "format": "zoo-model/99", "zoo_version": "9.0"}
    hub.commit("tester/newer", {"model.safetensors": weights, "config.json": json.dumps(newer).encode()})
    assert "newer zoo" in one_line_error(zoo("pull", "tester/newer"))
    other = {**config, "format": "zoo-model/1", "model": {**config["model"], "task": "deblur"},
             "plugin": {"distribution": "zoo-deblur", "requires": "zoo-deblur>=0.1"}}
    hub.commit("tester/other", {"model.safetensors": weights, "config.json": json.dumps(other).encode()})
    assert "pip install 'zoo-deblur>=0.1'" in one_line_error(zoo("pull", "tester/other"))


def test_train_from_a_pushed_backbone(hub, tmp_path, classify_run, image_folder):  # noqa: F811
    assert zoo("push", str(classify_run), "tester/base").exit_code == 0
    res = zoo("train", "classify", "--data", str(image_folder()), "--backbone", "hf-hub:tester/base", "--epochs", "1",
              "--batch-size", "8", "--workers", "0", "--out", str(tmp_path / "from-hub"))
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "from-hub" / "config.json").read_text())
    assert saved["model"]["pretrained_source"].startswith("hf-hub:tester/base@")


@pytest.mark.parametrize("status, words", [(403, "forbidden (HTTP 403)"), (503, "failed (HTTP 503)")])
def test_refusals_and_server_errors_are_one_line(hub, tmp_path, classify_run, status, words):  # noqa: F811
    assert zoo("push", str(classify_run), "tester/m").exit_code == 0
    empty_cache()
    hub.faults["/api/models/tester/m"] = status
    assert words in one_line_error(zoo("pull", "tester/m"))
