"""zoo-multitask: the plugin is found and listed, trains several heads on the embedded shapes, predicts
every head in original units (--json, --draw), evaluates with and without --data, exports one named ONNX
output per head (parity checked), goes through push/pull, reads a FairFace-layout CSV as it is, and
refuses bad declarations and bad cells in one line naming the key or the file, line and column."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo_core import get_zoo
from zoo_core.testing import cli, one_line_error, tiny_train

PLUGIN = Path(__file__).resolve().parents[1] / "zoo_multitask"
SMALL = {"dataset_options": {"count": 40, "canvas": 32}}  # a tiny embedded set, generated in a blink
TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "24", "--epochs", "1", "--batch-size", "8",
        "--workers", "0", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("offline")  # no test here may reach the network


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_train("multitask", tmp_path_factory.mktemp("multitask"), image_size=24, **SMALL).dir


def picture(path: Path, size=(40, 28), colour=(200, 60, 30)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


AGES = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]
RACES = ["White", "Black", "East Asian", "Indian"]


def fairface_csv(root: Path, n: int = 24, bad_cell: tuple[int, str, str] | None = None) -> Path:
    """root/labels.csv in FairFace's layout (file, age, gender, race), age as ranges, tiny images."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True, exist_ok=True)
    lines = ["file,age,gender,race"]
    for i in range(n):
        age, gender, race = AGES[i % len(AGES)], ("Male", "Female")[i % 2], RACES[i % len(RACES)]
        if bad_cell and bad_cell[0] == i:
            age, gender = (bad_cell[2], gender) if bad_cell[1] == "age" else (age, bad_cell[2])
        arr = np.clip(rng.normal(60 + 15 * (i % len(AGES)), 20, (20, 20, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / "train" / f"{i}.jpg")
        lines.append(f"train/{i}.jpg,{age},{gender},{race}")
    path = root / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------- plugin

def test_the_plugin_is_found_and_zoo_list_shows_its_components():
    res = cli("list", "--json")
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    text = json.dumps(listed)
    for name in ("multitask", "shapes", "multitask-csv", "multitask-mlp"):
        assert f'"{name}"' in text
    zoo = get_zoo()
    assert zoo.tasks.get("multitask").plugin == "multitask"
    assert {c.name for c in zoo.losses.matching("multitask/heads")} == {"multitask"}
    assert "multitask" in cli("list").stdout


def test_the_plugin_imports_only_the_public_api():
    import zoo_core

    public = set(zoo_core.__all__)
    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo_core"):
                assert node.module == "zoo_core" and node.level == 0, f"{path.name}: from {node.module} import ..."
                assert {a.name for a in node.names} <= public, path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("zoo_core") for a in node.names), path.name


# ------------------------------------------------------------------------------------ train, predict

def test_a_tiny_train_logs_each_heads_loss_metric_and_baseline(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"val_loss", "val_loss_shape", "val_loss_size", "val_shape_accuracy", "val_baseline_shape_accuracy",
            "val_size_mae", "val_baseline_size_mae", "train_loss_shape"} <= set(rows[-1])
    assert rows[-1]["val_loss"] == pytest.approx(rows[-1]["val_loss_shape"] + rows[-1]["val_loss_size"], rel=1e-4)
    targets = json.loads((run_dir / "config.json").read_text())["model"]["info"]["targets"]
    assert [(t["name"], t["type"]) for t in targets] == [("shape", "multiclass"), ("size", "regression")]
    assert targets[0]["classes"] == ["circle", "square", "star", "triangle"] and targets[1]["unit"] == "px"
    for name in ("curves.png", "multitask_report.json", "shape_confusion_matrix.png", "size_predicted_vs_true.png"):
        assert (run_dir / name).is_file(), name


def test_zoo_predict_json_and_draw_give_every_head_in_original_units(run_dir, tmp_path):
    img = picture(tmp_path / "wide.png")
    res = cli("predict", str(run_dir), str(img), "--json", "--draw", str(tmp_path / "drawn.png"), "--device", "cpu")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)[0]
    assert record["image"] == str(img)
    assert record["shape"]["label"] in {"circle", "square", "star", "triangle"} and 0 < record["shape"]["probability"] <= 1
    assert isinstance(record["size"]["value"], float) and record["size"]["unit"] == "px"
    assert Image.open(tmp_path / "drawn.png").size[0] > 0
    line = cli("predict", str(run_dir), str(img), "--device", "cpu").stdout
    assert "shape " in line and " px" in line


def test_zoo_eval_on_its_own_validation_split(run_dir, tmp_path):
    res = cli("eval", str(run_dir), "--json", "--report", str(tmp_path / "report"), "--device", "cpu")
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert scores["images"] == 8  # 20% of 40
    assert {"shape_accuracy", "baseline_shape_accuracy", "size_mae", "baseline_size_mae", "loss_shape"} <= set(scores)
    assert scores["heads"]["size"]["unit"] == "px"
    assert (tmp_path / "report" / "eval_shape_confusion_matrix.png").is_file()
    table = cli("eval", str(run_dir), "--device", "cpu").stdout
    assert "baseline" in table and "always" in table


def test_zoo_export_onnx_has_one_named_output_per_head_matching_pytorch(run_dir, tmp_path):
    import onnx
    import onnxruntime as ort

    from zoo_core import load_run

    out = tmp_path / "model.onnx"
    res = cli("export", str(run_dir), "--format", "onnx", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "outputs shape, size" in res.stdout and "max abs diff" in res.stdout
    proto = onnx.load(str(out))
    assert [o.name for o in proto.graph.output] == ["shape", "size"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["zoo.task"] == "multitask" and json.loads(meta["zoo.outputs"]) == ["shape", "size"]
    # the file's outputs are what predict reports: class probabilities and the size in pixels
    run = load_run(run_dir, device="cpu")
    img = picture(tmp_path / "a.png", (32, 32), (90, 180, 40))
    sample = run.transform({"image": Image.open(img).convert(run.data_config.channels == 1 and "L" or "RGB")})
    probs, size = ort.InferenceSession(str(out)).run(None, {"input": sample["image"][None].numpy()})
    pred = run.predict([img])[0].to_json()
    classes = json.loads(meta["zoo.info"])["targets"][0]["classes"]
    assert classes[int(probs[0].argmax())] == pred["shape"]["label"]
    assert float(size[0]) == pytest.approx(pred["size"]["value"], abs=1e-3)


# ------------------------------------------------------------------------------------------------ CSV

def test_a_fairface_layout_csv_trains_as_it_is_and_evaluates(tmp_path, in_tmp):
    data = fairface_csv(tmp_path / "faces")
    res = cli("train", "multitask", "--data", str(data), *TINY, "--out", "ff")
    assert res.exit_code == 0, res.output
    targets = {t["name"]: t for t in json.loads(Path("ff/config.json").read_text())["model"]["info"]["targets"]}
    assert targets["gender"]["type"] == "binary" and targets["race"]["type"] == "multiclass"
    assert targets["age"]["type"] == "regression"  # ranges: their midpoints, 20-29 -> 25, 'more than 70' -> 75
    log = Path("ff/train.log").read_text()
    assert "age (regression" in log and "gender (binary" in log
    pred = json.loads(cli("predict", "ff", str(tmp_path / "faces/train/0.jpg"), "--json").stdout)[0]
    assert pred["gender"]["label"] in ("Male", "Female") and isinstance(pred["age"]["value"], float)
    ev = cli("eval", "ff", "--data", str(data), "--json")
    assert ev.exit_code == 0, ev.output
    scores = json.loads(ev.stdout)
    assert scores["images"] == 24 and {"age_mae", "gender_accuracy", "race_accuracy"} <= set(scores)


def test_age_ranges_as_ordered_classes_from_a_toml_declaration(tmp_path, in_tmp):
    data = fairface_csv(tmp_path / "faces")
    (tmp_path / "run.toml").write_text(
        '[dataset.targets.age_group]\ncolumn = "age"\ntype = "multiclass"\n'
        '[dataset.targets.age]\ntype = "regression"\nscale = 80\nunit = "years"\nweight = 2.0\n'
        '[dataset.targets.gender]\ntype = "binary"\npositive = "Female"\n')
    res = cli("train", "multitask", "--data", str(data), "--config", str(tmp_path / "run.toml"), *TINY, "--out", "ff")
    assert res.exit_code == 0, res.output
    targets = {t["name"]: t for t in json.loads(Path("ff/config.json").read_text())["model"]["info"]["targets"]}
    assert targets["age_group"]["classes"] == AGES  # ordered by the ranges, not alphabetically
    assert targets["age_group"]["midpoints"]["20-29"] == 25 and targets["age_group"]["midpoints"]["more than 70"] == 75
    assert targets["age"]["scale"] == 80 and targets["age"]["shift"] == 0 and targets["age"]["weight"] == 2.0
    assert targets["gender"]["classes"] == ["Male", "Female"] and "race" not in targets
    rows = [json.loads(line) for line in Path("ff/metrics.jsonl").read_text().splitlines()]
    assert {"val_age_group_accuracy", "val_age_group_mae", "val_age_mae", "val_gender_accuracy"} <= set(rows[-1])


def test_the_compact_flag_declares_targets(tmp_path, in_tmp):
    data = fairface_csv(tmp_path / "faces")
    res = cli("train", "multitask", "--data", str(data), *TINY, "--out", "ff", "--set", "dataset.targets=gender:binary,age")
    assert res.exit_code == 0, res.output
    targets = json.loads(Path("ff/config.json").read_text())["model"]["info"]["targets"]
    assert [(t["name"], t["type"]) for t in targets] == [("gender", "binary"), ("age", "regression")]


@pytest.mark.parametrize("declaration, bad_cell, words", [
    ("dataset.targets=agee:regression", None, ["dataset.targets.agee", "no column 'agee'", "age, gender, race"]),
    (None, (3, "age", "20-"), ["labels.csv:5", "column 'age'", "'20-'", "range such as 20-29"]),
    (None, (3, "age", "30-20"), ["labels.csv:5", "'30-20'"]),
    ("dataset.targets=gender:regression", None, ["labels.csv:2", "column 'gender'", "dataset.targets.gender",
                                                 "declare the column binary or multiclass"]),
    ("dataset.targets=race:binary", None, ["dataset.targets.race is binary", "4 distinct", "declare it multiclass"]),
    ("dataset.targets=age:ordinal", None, ["dataset.targets.age.type", "binary, multiclass, regression", "'ordinal'"]),
    ("dataset.targets={age={type='regression', wieght=2}}", None, ["dataset.targets.age", "unknown key 'wieght'",
                                                                    "did you mean weight"]),
    ("dataset.targets={age={type='regression', loss='bce'}}", None, ["dataset.targets.age.loss", "l1, mse, smooth-l1"]),
    ("dataset.targets={age={type='regression', scale=-1}}", None, ["dataset.targets.age.scale", "positive number"]),
])
def test_bad_declarations_and_cells_are_one_line_errors(tmp_path, in_tmp, declaration, bad_cell, words):
    data = fairface_csv(tmp_path / "faces", bad_cell=bad_cell)
    extra = ["--set", declaration] if declaration else []
    line = one_line_error(cli("train", "multitask", "--data", str(data), *TINY, *extra))
    for w in words:
        assert w in line, line
    assert not Path("runs").exists()  # nothing was started


def test_eval_data_lacking_a_heads_column_is_a_one_line_error(run_dir, tmp_path):
    (tmp_path / "x.csv").write_text("file,shape\na.png,circle\n")
    picture(tmp_path / "a.png")
    line = one_line_error(cli("eval", str(run_dir), "--data", str(tmp_path / "x.csv"), "--device", "cpu"))
    assert "no column 'size'" in line and "head(s) size" in line


# ------------------------------------------------------------------------------------------- the Hub

def test_push_and_pull_round_trip_gives_the_same_predictions(hub, tmp_path, run_dir):  # noqa: F811
    from huggingface_hub import constants

    import shutil

    files = [picture(tmp_path / "a.png"), picture(tmp_path / "b.png", (24, 40), (30, 30, 200))]

    def predictions(target):
        res = cli("predict", target, *map(str, files), "--json", "--device", "cpu")
        assert res.exit_code == 0, res.output
        return [{k: v for k, v in p.items() if k != "image"} for p in json.loads(res.stdout)]

    local = predictions(str(run_dir))
    res = cli("push", str(run_dir), "tester/shapes-multitask", "--with", "onnx")
    assert res.exit_code == 0, res.output
    tree = hub.repos[("model", "tester/shapes-multitask")].resolve("main").tree
    assert {"model.safetensors", "config.json", "README.md", "curves.png", "model.onnx",
            "shape_confusion_matrix.png"} <= set(tree)
    shutil.rmtree(constants.HF_HUB_CACHE, ignore_errors=True)
    pulled = cli("pull", "tester/shapes-multitask")
    assert pulled.exit_code == 0, pulled.output
    assert "multitask, cnn2 + multitask-mlp" in pulled.stdout
    assert predictions("hf-hub:tester/shapes-multitask") == local
