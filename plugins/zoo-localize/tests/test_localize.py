"""zoo-localize: the plugin is found, trains, predicts in original pixels, evaluates, exports, reads
CSVs (and refuses bad ones in one line), and imports nothing from zoo_core but the public API."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from zoo_core import DataConfig, Preprocess, get_zoo
from zoo_core.testing import cli, one_line_error, tiny_train

PLUGIN = Path(__file__).resolve().parents[1] / "zoo_localize"
SMALL = {"dataset_options": {"count": 48}}  # a tiny embedded set: generated in a fraction of a second
TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
        "--workers", "0", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("offline")  # no test here may reach the network


def nonsquare_image(path: Path, size=(150, 90), box=(90, 20, 135, 70)) -> Path:
    """A grey w x h image with a coloured rectangle at `box`."""
    img = Image.new("RGB", size, (128, 128, 128))
    ImageDraw.Draw(img).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=(200, 60, 30))
    img.save(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tiny_train("localize", tmp_path_factory.mktemp("localize"), **SMALL)
    return run.dir


def box_csv(root: Path, rows: list[str] | None = None, n: int = 10) -> Path:
    """root/boxes.csv listing n non-square images with their rectangles (or the given rows)."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = ["path,xmin,ymin,xmax,ymax"]
    for i in range(n):
        x0, y0 = 5 + 7 * i, 4 + 3 * i
        nonsquare_image(root / "img" / f"{i}.png", (120, 80), (x0, y0, x0 + 40, y0 + 30))
        lines.append(f"img/{i}.png,{x0},{y0},{x0 + 40},{y0 + 30}")
    if rows is not None:
        lines = ["path,xmin,ymin,xmax,ymax", *rows]
    (root / "boxes.csv").write_text("\n".join(lines) + "\n")
    return root / "boxes.csv"


# ------------------------------------------------------------------------------------------- plugin

def test_the_plugin_is_found_through_its_entry_point():
    zoo = get_zoo()
    plugin = next(p for p in zoo.plugins if p.name == "localize")
    assert plugin.error is None
    assert zoo.tasks.get("localize").plugin == "localize"
    for kind, name in (("heads", "box-linear"), ("heads", "box-mlp"), ("losses", "l1-giou"),
                       ("datasets", "pasted-objects"), ("datasets", "box-csv")):
        assert zoo.registries[kind.rstrip("s") if kind != "losses" else "loss"].get(name).plugin == "localize"
    # zoo-core's generic regression losses accept the task's output kind
    assert {"l1", "mse", "smooth-l1", "l1-giou"} <= {c.name for c in zoo.losses.matching("regression/box")}


def test_the_plugin_imports_only_the_public_api():
    for path in PLUGIN.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo_core"):
                assert node.module == "zoo_core" and node.level == 0, f"{path.name}: from {node.module} import ..."
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("zoo_core") for a in node.names), f"{path.name}: import zoo_core..."
    import zoo_core

    public = set(zoo_core.__all__)
    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "zoo_core":
                assert {a.name for a in node.names} <= public, path.name


# ------------------------------------------------------------------------------------ train, predict

def test_a_tiny_train_logs_iou_baseline_and_both_loss_parts(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"val_mean_iou", "val_acc_iou50", "val_baseline_mean_iou", "train_loss_l1", "train_loss_giou"} <= set(rows[-1])
    assert 0 <= rows[-1]["val_mean_iou"] <= 1
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["fit"] == "pad" and cfg["train"]["loss"] == "l1-giou"
    mean_box = cfg["model"]["info"]["mean_box"]
    assert len(mean_box) == 4 and mean_box[0] < mean_box[2] and mean_box[1] < mean_box[3]
    assert (run_dir / "val_boxes.png").is_file() and (run_dir / "localization_report.json").is_file()


def test_predict_on_a_nonsquare_image_gives_a_box_in_original_pixels(run_dir, tmp_path):
    from zoo_core import load_run

    img = nonsquare_image(tmp_path / "wide.png", (150, 90))
    pred = load_run(run_dir, device="cpu").predict([img])[0]
    x0, y0, x1, y1 = pred.box
    assert 0 <= x0 <= x1 <= 150 and 0 <= y0 <= y1 <= 90
    assert pred.box_normalized == pytest.approx([x0 / 150, y0 / 90, x1 / 150, y1 / 90], abs=1e-4)
    assert set(pred.to_json()) == {"box", "box_normalized"} and "box" in pred.caption()
    assert pred.draw(Image.open(img)).size == (150, 90)


def test_zoo_predict_json_and_draw(run_dir, tmp_path):
    img = nonsquare_image(tmp_path / "tall.png", (70, 130), (10, 60, 50, 120))
    res = cli("predict", str(run_dir), str(img), "--json", "--draw", str(tmp_path / "drawn.png"))
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)[0]
    assert record["image"] == str(img)
    x0, y0, x1, y1 = record["box"]
    assert 0 <= x0 <= x1 <= 70 and 0 <= y0 <= y1 <= 130
    assert Image.open(tmp_path / "drawn.png").size[0] > 0


def test_zoo_eval_on_its_own_validation_split(run_dir, tmp_path):
    res = cli("eval", str(run_dir), "--json", "--report", str(tmp_path / "report"))
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert {"mean_iou", "acc_iou50", "baseline_mean_iou", "iou_histogram"} <= set(scores)
    assert scores["images"] == 10  # 20% of 48
    assert (tmp_path / "report" / "eval_val_boxes.png").is_file()
    assert "IoU" in cli("eval", str(run_dir)).stdout


def test_zoo_export_onnx_names_the_output_box(run_dir, tmp_path):
    import onnx

    out = tmp_path / "model.onnx"
    res = cli("export", str(run_dir), "--format", "onnx", "--out", str(out))
    assert res.exit_code == 0, res.output
    proto = onnx.load(str(out))
    assert [o.name for o in proto.graph.output] == ["box"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["zoo.task"] == "localize" and meta["zoo.output"] == "regression/box"


# ------------------------------------------------------------------------------------------------ CSV

def test_the_box_csv_trains_and_evaluates(tmp_path):
    data = box_csv(tmp_path / "data")
    out = tmp_path / "run"
    res = cli("train", "localize", "--data", str(data), *TINY, "--out", str(out))
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["dataset"] == "box-csv" and cfg["data"]["train"] == 8 and cfg["data"]["val"] == 2
    res = cli("eval", str(out), "--data", str(data), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["images"] == 10


@pytest.mark.parametrize("row, expected", [
    ("img/0.png,5,4,abc,34", ":3: xmin, ymin, xmax, ymax must be numbers"),
    ("img/0.png,40,4,5,34", ":3: empty box"),
    ("img/0.png,5,4,300,34", ":3: box [5.0, 4.0, 300.0, 34.0] lies outside its 120x80 image"),
])
def test_a_bad_csv_row_is_a_one_line_error_naming_file_and_line(tmp_path, row, expected):
    data = box_csv(tmp_path / "data")
    data.write_text(data.read_text().splitlines()[0] + "\nimg/1.png,12,7,52,37\n" + row + "\n")
    line = one_line_error(cli("train", "localize", "--data", str(data), *TINY, "--out", str(tmp_path / "run")))
    assert str(data) in line and expected in line, line
    assert not (tmp_path / "run").exists()


def test_a_csv_without_box_columns_is_a_one_line_error(tmp_path):
    data = tmp_path / "labels.csv"
    data.write_text("path,label\na.png,cat\n")
    line = one_line_error(cli("train", "localize", "--data", str(data), *TINY))
    assert "missing the xmin column" in line


@pytest.mark.zoo_plugins("classify")  # classify's component, refused by this task: skipped when it is not installed
def test_a_classification_loss_is_a_one_line_error(tmp_path):
    line = one_line_error(cli("train", "localize", "--loss", "cross-entropy", *TINY, "--out", str(tmp_path / "run")))
    assert "cross-entropy" in line and "regression/box" in line and "l1-giou" in line


# ------------------------------------------------------------------------------------------- geometry

@pytest.mark.parametrize("size, box", [((150, 90), (90.0, 20.0, 135.0, 70.0)), ((60, 140), (5.0, 80.0, 50.0, 133.0))])
def test_a_box_survives_the_eval_transform_and_comes_back_through_geometry(tmp_path, size, box):
    from torchvision import tv_tensors

    from zoo_localize.task import LocalizeTask

    task = LocalizeTask()
    dc = DataConfig((3, 64, 64), (0.5,) * 3, (0.5,) * 3)
    _, eval_tf = task.transforms(dc, "none")
    w, h = size
    target = tv_tensors.BoundingBoxes(torch.tensor([box]), format="XYXY", canvas_size=(h, w))
    image = Image.open(nonsquare_image(tmp_path / "box.png", size, tuple(int(v) for v in box)))
    sample = eval_tf({"image": image, "target": target})
    batch = task.collate([sample])
    assert batch.targets.shape == (1, 4) and 0 <= batch.targets.min() and batch.targets.max() <= 1
    pred = task.predict(batch.targets, batch.geometry, {})[0]  # the true box, as if predicted
    assert pred.box == pytest.approx(list(box), abs=1.5)
    # the same geometry as zoo's own Preprocess records
    assert batch.geometry[0] == Preprocess(dc, "pad")({"image": Image.new("RGB", size)})["geometry"]


def test_augmented_boxes_stay_valid_and_inside_the_input():
    from torchvision import tv_tensors

    from zoo_localize.task import LocalizeTask

    torch.manual_seed(0)
    task = LocalizeTask()
    train_tf, _ = task.transforms(DataConfig((3, 32, 32), (0.5,) * 3, (0.5,) * 3), "standard")
    samples = [train_tf({"image": Image.new("RGB", (100, 60)), "target": tv_tensors.BoundingBoxes(
        torch.tensor([[0.0, 0.0, 30.0, 20.0]]), format="XYXY", canvas_size=(60, 100))}) for _ in range(50)]
    t = task.collate(samples).targets
    assert t.shape == (50, 4) and (t >= 0).all() and (t <= 1).all()
    assert (t[:, 2] >= t[:, 0]).all() and (t[:, 3] >= t[:, 1]).all()


@pytest.mark.parametrize("loss", ["l1", "smooth-l1"])
def test_zoo_core_generic_regression_losses_train_the_task(tmp_path, loss):
    run = tiny_train("localize", tmp_path, loss=loss, head="box-linear", **SMALL)
    assert run.config["train"]["loss"] == loss and run.predict([Image.new("RGB", (40, 30))])[0].box
