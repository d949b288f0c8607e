"""Deployment: every exporter passes its parity check for every installed task with a tiny run; ONNX
Runtime predicts and evaluates like PyTorch; predict streams folders to files; compress prunes.

Every task in the registry is covered; TINY_RUNS only says what makes a task's tiny run quick."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from zoo_core import ZooError, get_zoo, load_exported, load_run
from zoo_core.prediction.export import compare, export
from zoo_core.testing import cli, one_line_error, tiny_train

pytestmark = pytest.mark.zoo_plugins("classify")

# task -> what makes its tiny run quick, on top of zoo_core.testing.TINY (cnn2, 32 px, one epoch, no
# pretrained weights). Every registered task is tested; one not named here runs on TINY alone, so a new
# task plugin is covered for free (add a line when its default data is slow to make).
TINY_RUNS = {
    "classify": {"epochs": 2, "image_size": 16, "batch_size": 64, "augment": "none"},  # digits: 1,438 + 359 images
    # the captchas' own loss: with bce, a group's per-label sigmoids are not in the file (it holds the softmax)
    "multilabel": {"dataset_options": {"count": 96}, "loss": "group-cross-entropy"},
    "localize": {"dataset_options": {"count": 48}},
    # two convs: the head's weights, shared by every pyramid level, are what ONNX Runtime's int8 quantizer refused
    "detect": {"dataset_options": {"count": 16, "min_size": 64, "max_size": 96},
               "head_options": {"channels": 32, "num_convs": 2}},
    "segment": {"dataset_options": {"count": 20}, "batch_size": 4},
    "keypoints": {"dataset_options": {"count": 40, "min_size": 48, "max_size": 64}},
    "multitask": {"dataset_options": {"count": 40, "canvas": 32}, "image_size": 24},
    # its own text CNN (cnn2 at 32 px leaves too few time steps for a line), 48 drawn lines
    "ocr": {"backbone": "ocr-cnn", "dataset_options": {"captchas": 24, "lines": 24}},
    # RGB in and out (its head refuses one channel); a narrow decoder, 16 training patches, small validation crops
    "restore": {"channels": 3, "head_options": {"channels": 8, "levels": 2},
                "dataset_options": {"patches": 16, "val_patch": 32}},
    "embed": {"dataset_options": {"identities": 24, "per_identity": 6, "size": 32}, "val_fraction": 0.4},
}
INSTALLED = sorted(c.name for c in get_zoo().tasks)
EXPORTERS = ["onnx", "torchscript", "safetensors", "onnx-int8"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))  # runtime="onnx" exports into the cache


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """task -> its tiny run, trained once for the whole module."""
    runs = {}

    def get(task):
        if task not in runs:
            runs[task] = tiny_train(task, tmp_path_factory.mktemp(task), **TINY_RUNS.get(task, {}))
        return runs[task]

    return get


@pytest.fixture(params=INSTALLED)
def tiny_run(request, tiny_runs):
    return tiny_runs(request.param)


@pytest.fixture
def classify_run(tiny_runs):
    return tiny_runs("classify")


@pytest.fixture(scope="module")
def classify_onnx(tiny_runs, tmp_path_factory):
    """The classify run exported once through the CLI (into folders that do not exist yet)."""
    out = tmp_path_factory.mktemp("export") / "a" / "b" / "model.onnx"
    res = cli("export", str(tiny_runs("classify").dir), "--format", "onnx", "-o", str(out), "--opset", "18")
    assert res.exit_code == 0, res.output
    return out, res.stdout


def images(folder, n=5, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


# ------------------------------------------------------------------------------------ parity, per task

@pytest.mark.parametrize("fmt", EXPORTERS)
def test_every_exporter_passes_its_parity_check_on_validation_images(tiny_run, fmt, tmp_path):
    options = {"latency_seconds": 0.1} if fmt == "onnx-int8" else {}  # tiny models: a tenth of a second says enough
    path, facts = export(tiny_run, fmt, tmp_path / f"m.{fmt}", **options)
    assert path.is_file() and facts["bytes"] == path.stat().st_size
    assert facts["checked_on"].endswith("validation images")  # real images, not noise
    if fmt == "onnx-int8":  # 8 bits: compared by the validation metric, not elementwise
        primary = tiny_run.task.primary_metric.removeprefix("val_")
        assert abs(facts["scores"][primary] - facts["fp32_scores"][primary]) <= 0.05
        assert facts["bytes"] < facts["fp32_bytes"]
        # its outputs feed the task's predict as the float file's do (Task.undeploy)
        files = sorted(images(tmp_path / "imgs", n=2).iterdir())
        predictions = load_exported(path).predict(files)
        assert len(predictions) == 2 and all(p.to_json() for p in predictions)
    else:
        assert facts["max_abs_diff_vs_pytorch"] <= 1e-4


def test_onnx_runtime_predicts_and_evaluates_as_pytorch(tiny_run, tmp_path):
    files = sorted(images(tmp_path / "imgs").iterdir())
    torch_preds = [p.to_json() for p in tiny_run.predict(files)]
    onnx_run = load_run(tiny_run.dir, device="cpu", runtime="onnx")
    onnx_preds = [p.to_json() for p in onnx_run.predict(files)]
    for a, b in zip(torch_preds, onnx_preds):
        for key in a:
            np.testing.assert_allclose(np.array(_numbers(a[key])), np.array(_numbers(b[key])), atol=1e-3)

    path, _ = export(tiny_run, "onnx", tmp_path / "m.onnx")
    scores, _ = tiny_run.evaluate(workers=0)
    exported, _ = load_exported(path).evaluate(workers=0)  # the run's own validation split, from the file
    assert exported["images"] == scores["images"]
    for key, value in scores.items():
        if key.startswith("baseline_"):
            continue  # a reference measured beside the model (Metrics' convention), not the model's own figure
        if key.startswith("loss") and np.isnan(exported.get("loss", 0.0)):
            continue  # a task whose file outputs decoded results (detect's boxes) cannot give its loss again
        assert exported[key] == pytest.approx(value, abs=1e-4), key


def _numbers(value):
    """The numbers in a prediction's JSON, flattened (labels must match exactly)."""
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _numbers(value[k])]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    if isinstance(value, str):
        return [hash(value) % 1000]
    return [float(value)]


# --------------------------------------------------------------------------------------------- classify

def test_exported_classifier_gives_the_same_top1_on_the_whole_validation_split(classify_run, classify_onnx):
    path, _ = classify_onnx
    onnx_model = load_exported(path).model
    val = classify_run.eval_splits().val
    torch_top1, onnx_top1 = [], []
    with torch.no_grad():
        for start in range(0, len(val), 64):
            x = classify_run.task.collate([val[i] for i in range(start, min(len(val), start + 64))]).inputs
            torch_top1 += classify_run.model(x).argmax(1).tolist()
            onnx_top1 += onnx_model(x).argmax(1).tolist()
    assert len(torch_top1) == len(val) == 359 and torch_top1 == onnx_top1


def test_zoo_export_creates_folders_and_prints_size_parity_and_path(classify_run, classify_onnx):
    out, stdout = classify_onnx
    assert out.is_file() and f"wrote {out}" in stdout and "MB" in stdout
    assert "max abs diff vs PyTorch" in stdout and "validation images" in stdout
    # zoo eval model.onnx: the run's whole validation split, the same top-1 accuracy as zoo eval RUN
    exported, run = (cli("eval", str(target), "--json") for target in (out, classify_run.dir))
    assert exported.exit_code == 0 and run.exit_code == 0, exported.output + run.output
    exported, run = json.loads(exported.stdout), json.loads(run.stdout)
    assert exported["images"] == run["images"] == 359 and exported["accuracy"] == run["accuracy"]


def test_exporter_options_are_checked(classify_run, tmp_path):
    line = one_line_error(cli("export", str(classify_run.dir), "--format", "onnx-int8", "--set", "mdoe=dynamic",
                              "-o", str(tmp_path / "m.onnx")))
    assert "'mdoe'" in line and "mode" in line
    line = one_line_error(cli("export", str(classify_run.dir), "--format", "onnx-int8", "--set", "mode=fast",
                              "-o", str(tmp_path / "m.onnx")))
    assert "mode 'fast'" in line and not (tmp_path / "m.onnx").exists()


def test_an_opset_torch_onnx_cannot_give_is_one_line_and_no_file(classify_run, tmp_path):
    """torch.onnx logs a failed down-conversion with a traceback and keeps opset 18: zoo checks the file."""
    for opset, advice in ((13, "try a newer one"), (99, "use an older one")):
        line = one_line_error(cli("export", str(classify_run.dir), "--format", "onnx", "--opset", str(opset),
                                  "-o", str(tmp_path / "m.onnx")))
        assert line.startswith(f"Error: --opset {opset}:") and advice in line
        assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_dynamic_int8_needs_no_calibration(classify_run, tmp_path):
    path, facts = export(classify_run, "onnx-int8", tmp_path / "m.onnx", mode="dynamic")
    assert facts["scores"]["accuracy"] >= facts["fp32_scores"]["accuracy"] - 0.05


def test_a_failing_parity_check_fails_the_export(tmp_path):
    same = [np.ones((2, 3), np.float32)]
    assert compare(same, same, tmp_path / "m.onnx", "ONNX Runtime") == 0.0
    with pytest.raises(ZooError, match="differ from PyTorch by up to 1.00e-02"):
        compare(same, [same[0] + 0.01], tmp_path / "m.onnx", "ONNX Runtime")


# ---------------------------------------------------------------------------------------------- predict

def test_predict_streams_a_folder_to_files_and_reports_unreadable_ones(classify_run, tmp_path):
    folder = images(tmp_path / "imgs", n=6)
    (folder / "broken.png").write_bytes(b"not a png")
    outputs = {}
    for runtime in ("torch", "onnx"):
        for suffix in (("jsonl", "csv") if runtime == "torch" else ("jsonl", "json")):
            out = tmp_path / runtime / f"p.{suffix}"
            res = cli("predict", str(classify_run.dir), str(folder), "--runtime", runtime, "--output", str(out),
                      "--workers", "1", "--batch-size", "4")
            assert res.exit_code == 0, res.output
            assert "skipped" in res.stderr and "broken.png" in res.stderr and "wrote 6 prediction(s)" in res.stderr
            outputs[runtime, suffix] = out.read_text()
    rows = [json.loads(line) for line in outputs["torch", "jsonl"].splitlines()]
    onnx_rows = [json.loads(line) for line in outputs["onnx", "jsonl"].splitlines()]
    assert len(rows) == 6 and onnx_rows == json.loads(outputs["onnx", "json"])
    assert outputs["torch", "csv"].splitlines()[0] == "image,label,probability,top"
    assert [r["label"] for r in rows] == [r["label"] for r in onnx_rows]
    assert max(abs(a["probability"] - b["probability"]) for a, b in zip(rows, onnx_rows)) < 1e-4

    res = cli("predict", str(classify_run.dir), str(folder / "*.png"), "-k", "2")  # a quoted glob
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 6, res.output
    assert ".jsonl or .csv" in one_line_error(cli("predict", str(classify_run.dir), str(folder), "-o", str(tmp_path / "p.txt")))


def test_the_onnx_runtime_missing_is_one_line(classify_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    line = one_line_error(cli("predict", str(classify_run.dir), str(images(tmp_path / "i", 1)), "--runtime", "onnx"))
    assert "onnxruntime is not installed" in line and "pip install" in line


# --------------------------------------------------------------------------------------------- compress

def test_compress_prunes_fine_tunes_with_the_trainer_and_keeps_the_zeros(classify_run, tmp_path):
    from zoo_core.tools.compress import compress, sparsity_of

    facts = compress(classify_run.dir, 0.5, tmp_path / "pruned", epochs=1)
    pruned = load_run(tmp_path / "pruned", device="cpu")
    share, zeros, total = sparsity_of(pruned.model)
    assert share >= 0.5 and zeros == facts["zero_weights"]
    assert set(facts["scores"]) == {"original", "pruned", "fine_tuned"}
    assert (tmp_path / "pruned" / "metrics.jsonl").is_file()  # trained by the normal trainer
    path, info = export(pruned, "onnx", tmp_path / "m.onnx")  # a compressed run exports as any run
    assert info["max_abs_diff_vs_pytorch"] <= 1e-4
