"""zoo train multilabel: label-list CSVs and label folders, thresholds tuned on validation and used by
predict, eval, the exported file and pushed models; seeded cached captchas decoded per position;
bad label lists refused in one line naming file:line. Tiny images, a few seconds each."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo_core import ZooError
from zoo_core.testing import cli, one_line_error, tiny_train

PLUGIN = Path(__file__).resolve().parents[1] / "zoo_classify"
COLOURS = {"red": (0, 220), "green": (1, 200), "blue": (2, 220)}  # label -> (channel, value) of its stripe
TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "16", "--epochs", "1", "--batch-size", "8",
        "--workers", "0", "--device", "cpu"]
CAPTCHAS = {"dataset_options": {"count": 48}}


@pytest.fixture(autouse=True)
def _offline_and_own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo-cache"))


def striped(path: Path, labels: list[str], seed: int) -> Path:
    """A 20 px image with one vertical stripe per label (red left, green middle, blue right) on noise."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(20, 60, (20, 20, 3)).astype(np.uint8)
    for name in labels:
        channel, value = COLOURS[name]
        cols = slice(7 * list(COLOURS).index(name), 7 * list(COLOURS).index(name) + 6)
        arr[:, cols, channel] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


LABEL_SETS = [["red"], ["green"], ["blue"], ["red", "green"], ["green", "blue"], ["red", "blue"], ["red", "green", "blue"]]


def label_csv(tmp_path: Path, n: int = 28) -> Path:
    lines = ["path,labels"]
    for i in range(n):
        labels = LABEL_SETS[i % len(LABEL_SETS)]
        striped(tmp_path / "img" / f"{i}.png", labels, i)
        lines.append(f"img/{i}.png,{';'.join(labels)}")
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


# ----------------------------------------------------------------------------------------- the rule

def test_decisions_threshold_free_labels_and_pick_one_per_group():
    from zoo_classify.multilabel import decide, probabilities

    logits = torch.tensor([[3.0, -3.0, 0.1, 0.2, 2.0, 2.5]])
    groups = [torch.tensor([3, 4, 5])]
    probs = probabilities(logits, groups)
    assert torch.allclose(probs[0, 3:].sum(), torch.tensor(1.0))  # a group is one softmax
    thresholds = torch.tensor([0.5, 0.5, 0.5, 0.01, 0.01, 0.99])  # thresholds never decide a group
    assert decide(probs, thresholds, groups).tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]]


def test_thresholds_are_tuned_per_label():
    from zoo_classify.multilabel import tune_thresholds

    probs = torch.tensor([[0.9, 0.3], [0.8, 0.25], [0.2, 0.1], [0.1, 0.05]])
    truth = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    low, high = tune_thresholds(probs, truth).tolist()
    assert 0.2 < low <= 0.8 and 0.1 < high <= 0.25


# -------------------------------------------------------------------------------------------- CSV

def test_csv_label_lists_train_predict_draw_eval_and_export(tmp_path):
    csv = label_csv(tmp_path)
    run = tiny_train("multilabel", tmp_path, data=str(csv), epochs=3, image_size=16, lr=1e-2)
    info = run.config["model"]["info"]
    assert info["classes"] == ["blue", "green", "red"] and len(info["thresholds"]) == 3
    assert all(0 < t < 1 for t in info["thresholds"])

    both = striped(tmp_path / "new.png", ["red", "blue"], 99)
    res = cli("predict", str(run.dir), str(both), "--json", "--draw", str(tmp_path / "drawn.png"), "--device", "cpu")
    assert res.exit_code == 0, res.output
    (pred,) = json.loads(res.stdout)
    assert set(pred) == {"image", "labels"} and all(set(p) == {"label", "probability"} for p in pred["labels"])
    assert Image.open(tmp_path / "drawn.png").size[0] > 20
    everything = cli("predict", str(run.dir), str(both), "--json", "--threshold", "0", "--device", "cpu")
    assert len(json.loads(everything.stdout)[0]["labels"]) == 3  # one threshold for all, overriding the tuned ones

    ev = cli("eval", str(run.dir), "--data", str(csv), "--json")
    assert ev.exit_code == 0, ev.output
    scores = json.loads(ev.stdout)
    assert {"map", "micro_f1", "macro_f1", "exact_match"} <= set(scores["metrics"] if "metrics" in scores else scores)

    res = cli("export", str(run.dir), "--format", "onnx", "--out", str(tmp_path / "m.onnx"))
    assert res.exit_code == 0, res.output
    assert "probabilities" in res.output and "labels" in res.output
    import onnx
    import onnxruntime as ort

    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["zoo.info"])["thresholds"] == info["thresholds"]
    from zoo_core import open_image

    x = run.transform({"image": open_image(both, run.data_config.channels)})["image"].unsqueeze(0)
    probs, decided = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": x.numpy()})
    assert np.allclose(probs[0], [pred_p(run, both)[c] for c in info["classes"]], atol=1e-4)
    assert sorted(c for c, d in zip(info["classes"], decided[0]) if d) == sorted(p["label"] for p in pred["labels"])


def pred_p(run, image: Path) -> dict[str, float]:
    (p,) = run.predict([image], threshold=0.0)
    return {t["label"]: t["probability"] for t in p.labels}


@pytest.mark.parametrize("row, words", [
    ("img/0.png,", "labels.csv:3: empty label list"),
    ("img/0.png,red;;blue", "labels.csv:3: empty label in 'red;;blue'"),
    ("img/0.png,red;", "labels.csv:3: empty label in 'red;'"),
    ('img/0.png,"red,blue"', "labels.csv:3: label 'red,blue' contains ','"),
    ("img/0.png,red|blue", "labels.csv:3: label 'red|blue' contains '|'"),
    ("img/0.png,purple", "labels.csv:3: label 'purple' is not in the class list"),
])
def test_bad_label_lists_are_one_line_errors_naming_file_and_line(tmp_path, row, words):
    striped(tmp_path / "img" / "0.png", ["red"], 0)
    striped(tmp_path / "img" / "1.png", ["blue"], 1)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"path,labels\nimg/1.png,red;blue\n{row}\nimg/1.png,blue\n")
    err = one_line_error(cli("train", "multilabel", "--data", str(csv), "--set", "dataset.classes=red;green;blue", *TINY))
    assert words in err and str(tmp_path) in err


def test_a_label_the_model_does_not_know_is_refused_at_eval(tmp_path):
    run = tiny_train("multilabel", tmp_path, data=str(label_csv(tmp_path, 14)), image_size=16)
    other = tmp_path / "other.csv"
    other.write_text("path,labels\nimg/0.png,red\nimg/1.png,red;yellow\n")
    err = one_line_error(cli("eval", str(run.dir), "--data", str(other)))
    assert "other.csv:3: label 'yellow' is not in this model's labels" in err


def test_resume_keeps_the_thresholds_of_the_best_epoch(tmp_path):
    from zoo_core import train

    out = tmp_path / "run"
    train("multilabel", data=str(label_csv(tmp_path, 14)), out=str(out), backbone="cnn2", pretrained=False,
          image_size=16, epochs=1, batch_size=8, workers=0, quiet=True, device="cpu")
    first = json.loads((out / "config.json").read_text())["model"]["info"]["thresholds"]
    train("multilabel", resume=str(out), epochs=2, quiet=True)
    saved = json.loads((out / "config.json").read_text())
    assert len(saved["model"]["info"]["thresholds"]) == 3
    if saved["best"]["epoch"] == 1:  # not improved after resuming: the first epoch's thresholds still hold
        assert saved["model"]["info"]["thresholds"] == first


# ----------------------------------------------------------------------------------------- folders

def test_label_folders_same_name_in_several_folders_means_several_labels(tmp_path):
    from zoo_classify.multilabel_data import folder_dataset
    from zoo_core import DataConfig

    root = tmp_path / "photos"
    for i, labels in enumerate(LABEL_SETS * 2):
        for label in labels:
            striped(root / label / f"p{i}.png", labels, i)
    data = folder_dataset(str(root), data_config=DataConfig(), seed=0, val_fraction=0.25)
    assert data.info["classes"] == ["blue", "green", "red"]
    targets = {Path(s["image"]).name: s["target"].tolist() for s in [*data.train, *data.val]}
    assert len(targets) == 14 and targets["p6.png"] == [1.0, 1.0, 1.0] and targets["p3.png"] == [0.0, 1.0, 1.0]
    run = tiny_train("multilabel", tmp_path, data=str(root), image_size=16)
    assert run.config["data"]["dataset"] == "multilabel-folder"
    assert isinstance(run.predict([root / "red" / "p0.png"])[0].labels, list)


# ----------------------------------------------------------------------------------------- captcha

def test_captchas_are_seeded_and_cached(tmp_path, monkeypatch):
    from zoo_classify.multilabel_data import SYMBOLS, captcha_images

    images, texts = captcha_images(12, seed=3)
    assert images.shape == (12, 40, 100) and all(len(t) == 4 and set(t) <= set(SYMBOLS) for t in texts)
    cached = list((tmp_path / "zoo-cache" / "captcha").glob("*.npz"))
    assert len(cached) == 1
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "elsewhere"))
    again, texts_again = captcha_images(12, seed=3)  # drawn again, elsewhere: the same pictures
    assert texts_again == texts and np.array_equal(again, images)
    assert captcha_images(12, seed=4)[1] != texts


def test_captcha_without_the_package_says_what_to_install(monkeypatch):
    from zoo_classify.multilabel_data import captcha_images

    monkeypatch.setitem(sys.modules, "captcha", None)
    with pytest.raises(ZooError, match="pip install captcha"):
        captcha_images(8, seed=0)


def test_captcha_trains_decodes_per_position_and_evaluates(tmp_path):
    run = tiny_train("multilabel", tmp_path, image_size=None, backbone="text-cnn", **CAPTCHAS)
    info = run.config["model"]["info"]
    assert len(info["classes"]) == 144 and len(info["groups"]) == 4
    assert run.config["train"]["loss"] == "group-cross-entropy"
    (p,) = run.predict([Image.new("L", (100, 40), 255)])
    assert len(p.text) == 4 and len(p.labels) == 4  # exactly one symbol per position, whatever the thresholds
    assert [t["label"].split(":")[0] for t in sorted(p.labels, key=lambda t: t["label"])] == ["1", "2", "3", "4"]
    scores, _ = run.evaluate(workers=0)
    assert {"group_accuracy", "exact_match", "map"} <= set(scores)


def test_wrong_mixes_are_one_line_errors(tmp_path):
    err = one_line_error(cli("train", "multilabel", "--loss", "cross-entropy", *TINY))
    assert "loss 'cross-entropy' accepts 'logits/class'" in err and "group-cross-entropy" in err
    err = one_line_error(cli("train", "classify", "--loss", "group-cross-entropy", *TINY))
    assert "accepts 'logits/multilabel'" in err
    err = one_line_error(cli("train", "multilabel", "--data", str(label_csv(tmp_path, 7)), "--loss",
                             "group-cross-entropy", *TINY))
    assert "needs labels in groups" in err


# ------------------------------------------------------------------------------------------- hub

def test_push_pull_round_trip_keeps_thresholds_and_predictions(hub, tmp_path):  # noqa: F811
    csv = label_csv(tmp_path, 14)
    run = tiny_train("multilabel", tmp_path, data=str(csv), image_size=16, epochs=2)
    files = [str(tmp_path / "img" / f"{i}.png") for i in range(3)]
    local = cli("predict", str(run.dir), *files, "--json", "--device", "cpu")
    res = cli("push", str(run.dir), "tester/multilabel-tiny", "--with", "onnx")
    assert res.exit_code == 0, res.output
    pulled = cli("pull", "tester/multilabel-tiny")
    assert pulled.exit_code == 0, pulled.output
    remote = cli("predict", "hf-hub:tester/multilabel-tiny", *files, "--json", "--device", "cpu")
    strip = lambda out: [{k: v for k, v in p.items() if k != "image"} for p in json.loads(out.stdout)]  # noqa: E731
    assert strip(remote) == strip(local)
    from zoo_core import load_run

    assert load_run("hf-hub:tester/multilabel-tiny").info["thresholds"] == run.info["thresholds"]
    ev = cli("eval", "hf-hub:tester/multilabel-tiny", "--json")
    assert ev.exit_code == 0, ev.output


def test_plugin_imports_only_the_public_api():
    for source in PLUGIN.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo_core"):
                assert node.module == "zoo_core", f"{source.name} imports {node.module}"
