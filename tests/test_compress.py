"""zoo compress --prune channels: whole channels removed (a smaller network, not zeros), fine-tuned by the
normal trainer, and the saved run rebuilds the pruned network everywhere a run is read (load_run, zoo
eval, every exporter). Magnitude pruning is tested in tests/test_export.py."""

from __future__ import annotations

import json

import pytest

from zoo_core import load_exported, load_run
from zoo_core.model.pruning import parameter_count
from zoo_core.prediction.export import export
from zoo_core.testing import cli, tiny_train

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

pytest.importorskip("torch_pruning")

DIGITS = {"epochs": 2, "image_size": 16, "batch_size": 64, "augment": "none"}  # cnn2 on digits, 1,438 + 359 images


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tiny_train("classify", tmp_path_factory.mktemp("classify"), **DIGITS)


@pytest.fixture(scope="module")
def pruned(source, tmp_path_factory):
    """Half the channels of every backbone layer removed, one epoch of fine-tuning, through the CLI."""
    out = tmp_path_factory.mktemp("pruned") / "run"
    res = cli("compress", str(source.dir), "--sparsity", "0.5", "--prune", "channels", "--epochs", "1", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "parameters of" in res.stdout and "pruned 50% of channels" in res.stdout
    return out, json.loads((out / "compress.json").read_text())


def test_channels_are_removed_not_zeroed(source, pruned):
    out, facts = pruned
    run = load_run(out, device="cpu")
    assert parameter_count(run.model) == facts["parameters"]["pruned"] < 0.6 * parameter_count(source.model)
    assert facts["parameters"]["original"] == parameter_count(source.model)
    changed = json.loads((out / "config.json").read_text())["model"]["pruned"]
    convs = [c for c in changed.values() if "out_channels" in c["attributes"]]
    assert convs and all(c["tensors"]["weight"][0] == c["attributes"]["out_channels"] for c in convs)
    assert (out / "metrics.jsonl").is_file()  # fine-tuned by the normal trainer


def test_a_channel_pruned_run_evaluates_and_exports_as_any_run(pruned, tmp_path):
    out, facts = pruned
    run = load_run(out, device="cpu")
    scores, _ = run.evaluate(workers=0)
    assert scores["accuracy"] == pytest.approx(facts["scores"]["fine_tuned"]["accuracy"])
    res = cli("eval", str(out), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["accuracy"] == pytest.approx(scores["accuracy"]), res.output
    for fmt in ("onnx", "torchscript", "safetensors"):  # safetensors: rebuilt from the file's metadata alone
        path, info = export(run, fmt, tmp_path / f"m.{fmt}")
        assert info["max_abs_diff_vs_pytorch"] <= 1e-4, fmt
    exported, _ = load_exported(tmp_path / "m.onnx").evaluate(workers=0)
    assert exported["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-6)


def test_pruning_twice_keeps_the_recorded_shapes(pruned, tmp_path):
    """Magnitude pruning of a channel-pruned run: the new run still records (and rebuilds) the channels."""
    out, _ = pruned
    res = cli("compress", str(out), "--sparsity", "0.5", "--epochs", "0", "-o", str(tmp_path / "again"))
    assert res.exit_code == 0, res.output
    assert parameter_count(load_run(tmp_path / "again", device="cpu").model) == parameter_count(load_run(out, device="cpu").model)


def test_missing_torch_pruning_is_one_line(source, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    res = cli("compress", str(source.dir), "--sparsity", "0.5", "--prune", "channels", "-o", str(tmp_path / "x"))
    assert res.exit_code == 1 and res.stderr.strip().startswith("Error: --prune channels needs Torch-Pruning"), res.output
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_channel_pruned_fine_tuning_resumes_as_any_run(pruned, tmp_path):
    """The trainer records the pruned shapes from the first checkpoint on, so zoo train --resume rebuilds them."""
    import shutil

    out, facts = pruned
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    res = cli("train", "--resume", str(copy), "--epochs", "2")
    assert res.exit_code == 0, res.output
    config = json.loads((copy / "config.json").read_text())
    assert config["epochs_done"] == 2 and config["model"]["pruned"]
    assert parameter_count(load_run(copy, device="cpu").model) == facts["parameters"]["pruned"]
