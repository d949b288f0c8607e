"""The commands end to end: train on the embedded default, predict, eval, export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fast_settings import FAST_FLAGS
from zoo_core.cli import main
from zoo_core.data.images import stratified_split
from zoo_core.testing import run_zoo

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without


def zoo(*args: str):
    return CliRunner().invoke(main, list(args))


def held_out_digits(tmp_path: Path, per_class: int = 1, seed: int = 0, val_fraction: float = 0.2) -> list[tuple[Path, str]]:
    """PNG files of digits from the validation split a run with this seed held out."""
    from zoo_classify.datasets import digits_images

    images, labels = digits_images()
    _, val_idx = stratified_split(labels.tolist(), val_fraction, seed)
    out, seen = [], {}
    for i in val_idx:
        y = str(labels[i])
        if seen.get(y, 0) < per_class:
            seen[y] = seen.get(y, 0) + 1
            path = tmp_path / f"digit{i}_{y}.png"
            images[i].save(path)
            out.append((path, y))
    return out


@pytest.mark.slow
def test_default_recipe_reaches_97_percent_and_predicts_held_out_digits(tmp_path):
    """The README's first command: `zoo train classify`, in a real process, on the embedded digits."""
    res = run_zoo("train", "classify", cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    final = res.stdout.strip().splitlines()[-1]
    m = re.match(r"val_accuracy (\d\.\d+) \(best, epoch (\d+)\); completed in \d+s; run saved to (\S+)", final)
    assert m, final
    assert float(m.group(1)) >= 0.97
    run = tmp_path / m.group(3)
    for name in ("best.safetensors", "last.safetensors", "metrics.jsonl", "curves.png", "confusion_matrix.png"):
        assert (run / name).is_file()
    digits = held_out_digits(tmp_path, per_class=2)
    pred = run_zoo("predict", str(run), *[str(p) for p, _ in digits], "--json", cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    results = json.loads(pred.stdout)
    correct = sum(r["label"] == y for r, (_, y) in zip(results, digits))
    assert correct >= 19, [(r["label"], y) for r, (_, y) in zip(results, digits)]


def test_predict_names_the_class_of_a_held_out_digit(digits_run, tmp_path):
    digits = held_out_digits(tmp_path, per_class=1)
    res = zoo("predict", str(digits_run), *[str(p) for p, _ in digits], "--json", "-k", "3")
    assert res.exit_code == 0, res.output
    results = json.loads(res.stdout)
    assert [Path(r["image"]).name for r in results] == [p.name for p, _ in digits]
    assert all(len(r["top"]) == 3 and r["top"][0]["probability"] >= r["top"][1]["probability"] for r in results)
    assert sum(r["label"] == y for r, (_, y) in zip(results, digits)) >= 8  # two epochs of training
    text = zoo("predict", str(digits_run), str(digits[0][0]))
    assert text.exit_code == 0 and re.search(r"digit\d+_\d\.png: \d \d\.\d{3}", text.stdout)


def test_predict_on_a_folder_skips_unreadable_files(digits_run, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    held_out_digits(folder, per_class=1)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    res = zoo("predict", str(digits_run), str(folder), "--json")
    assert res.exit_code == 0
    assert len(json.loads(res.stdout)) == 10
    assert "skipped" in res.stderr and "broken.jpg" in res.stderr


def test_train_on_a_folder_then_eval_and_predict(tmp_path, image_folder):
    data = image_folder(presplit=True)
    run = tmp_path / "run"
    res = zoo("train", "classify", "--data", str(data), *FAST_FLAGS, "--epochs", "3", "--lr", "0.01", "--out", str(run))
    assert res.exit_code == 0, res.output
    assert re.search(r"val_accuracy \d\.\d{4} \(best, epoch \d\); completed in \d+s; run saved to ", res.stdout)
    assert "train/ and val/ folders" in res.stderr
    ev = zoo("eval", str(run), "--data", str(data), "--json", "--report", str(tmp_path / "report"))
    assert ev.exit_code == 0, ev.output
    scores = json.loads(ev.stdout)
    assert scores["images"] == 6  # the val/ folder: 2 per class
    assert 0 <= scores["accuracy"] <= 1 and {r["class"] for r in scores["per_class"]} == {"red", "green", "blue"}
    assert (tmp_path / "report" / "eval_confusion_matrix.png").is_file()
    text = zoo("eval", str(run), "--data", str(data))
    assert text.exit_code == 0 and "precision" in text.stdout and "accuracy" in text.stdout


def test_train_from_a_csv(tmp_path, image_folder):
    data = image_folder()
    rows = ["path,label"] + [f"{p.relative_to(tmp_path)},{p.parent.name}" for p in sorted(data.rglob("*.png"))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    res = zoo("train", "classify", "--data", str(tmp_path / "labels.csv"), *FAST_FLAGS, "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train"]["dataset"] == "image-csv" and cfg["data"]["train"] + cfg["data"]["val"] == 24


def test_set_and_config_flags(tmp_path, image_folder):
    res = zoo("train", "classify", "--data", str(image_folder()), *FAST_FLAGS, "--head", "mlp",
              "--set", "head.dropout=0.5", "--set", "loss.label_smoothing=0.1", "--out", str(tmp_path / "run"), "-q")
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train"]["head_options"] == {"dropout": 0.5}
    assert cfg["model"]["head_options"] == {"hidden": 128, "dropout": 0.5}  # as built: the head's defaults too
    assert cfg["train"]["loss_options"] == {"label_smoothing": 0.1}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export(digits_run, tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    res = zoo("export", str(digits_run), "--format", fmt, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.is_file() and out.stat().st_size > 10_000
    if fmt == "onnx":
        import numpy as np
        import onnxruntime as ort
        import torch

        from zoo_core import load_run

        run = load_run(digits_run, device="cpu")
        x = torch.randn(3, *run.data_config.input_size)
        session = ort.InferenceSession(str(out))
        assert [o.name for o in session.get_outputs()] == ["probabilities"]  # the task's deployment output
        got = session.run(None, {"input": x.numpy()})[0]
        expected = torch.softmax(run.model(x), dim=1).detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


def test_a_real_ctrl_c_exits_130_with_a_resumable_run(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "zoo_core.cli", "train", "classify", "--epochs", "100", "--out", str(run)],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in proc.stderr:  # wait until one epoch is done
        lines.append(line)
        if line.startswith("epoch 1/100"):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in rest and f"zoo train --resume {run}" in rest
    assert json.loads((run / "config.json").read_text())["status"] == "interrupted"
    res = zoo("train", "--resume", str(run), "--epochs", "3", "-q")  # continues from the saved epoch
    assert res.exit_code == 0, res.output
    assert json.loads((run / "config.json").read_text())["status"] == "completed"
