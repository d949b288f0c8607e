"""Task.dynamic_size: a task whose inputs vary in height or width (lines of text, image-to-image) gets
files that keep those axes dynamic, from every exporter, checked at a second size, said in the metadata,
and run at any size by the ONNX runtime; a task that declares nothing keeps today's fixed size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from zoo_core import DataConfig, Metrics, Prediction, Predictor, Task, ZooError
from zoo_core.prediction.export import export, onnx_session, run_onnx
from zoo_core.prediction.runtime import OnnxModule, read_onnx_metadata


class _Map(Prediction):
    def to_json(self):
        return {}

    def caption(self):
        return ""


class _Metrics(Metrics):
    def reset(self): ...

    def update(self, outputs, targets): ...

    def compute(self):
        return {}


class DenseTask(Task):
    """A fully convolutional toy task: one score map at half resolution, any input size."""

    name, output, fit = "dense-toy", "regression/map", "stretch"
    dynamic_size = ("height", "width")

    def metrics(self, info):
        return _Metrics()

    def predict(self, outputs, geometry, info, **options):
        return [_Map() for _ in range(len(outputs))]


class FixedTask(DenseTask):
    name = "fixed-toy"
    dynamic_size = ()


def _predictor(task: Task) -> Predictor:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 3, stride=2, padding=1))
    return Predictor(model, task, {}, DataConfig((3, 32, 48)), device="cpu")


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))


def test_onnx_keeps_the_declared_axes_dynamic_and_says_so(tmp_path):
    pred = _predictor(DenseTask())
    example = torch.randn(2, 3, 32, 48)
    path, facts = export(pred, "onnx", tmp_path / "m.onnx", example=example)
    assert facts["max_abs_diff_vs_pytorch"] <= 1e-4
    shape = onnx_session(path).get_inputs()[0].shape
    assert shape[2:] == ["height", "width"] and not isinstance(shape[0], int)
    assert read_onnx_metadata(path)["preprocessing"]["dynamic_size"] == ["height", "width"]
    for size in [(1, 3, 24, 40), (3, 3, 64, 200)]:  # smaller and larger than exported, odd batches
        x = torch.randn(*size)
        with torch.no_grad():
            expected = pred.model(x).numpy()
        got = run_onnx(onnx_session(path), x)[0]
        assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-4)
    # the ONNX runtime path runs it at any size too (Predictor(runtime="onnx") and zoo eval model.onnx use this)
    module = OnnxModule(path, DenseTask(), {})
    assert module(torch.randn(1, 3, 40, 72)).shape == (1, 2, 20, 36)


def test_torchscript_and_int8_keep_them_dynamic_too(tmp_path):
    pred = _predictor(DenseTask())
    example = torch.randn(2, 3, 32, 48)
    path, facts = export(pred, "torchscript", tmp_path / "m.pt", example=example)
    loaded = torch.jit.load(str(path))
    x = torch.randn(1, 3, 56, 24)
    with torch.no_grad():
        assert torch.allclose(loaded(x), pred.model(x), atol=1e-4)
    path, facts = export(pred, "onnx-int8", tmp_path / "m.int8.onnx", example=example, latency_seconds=0.05)
    assert onnx_session(path).get_inputs()[0].shape[2:] == ["height", "width"]
    assert run_onnx(onnx_session(path), x)[0].shape == (1, 2, 28, 12)


def test_a_task_that_declares_nothing_keeps_the_fixed_size_and_a_wrong_size_is_one_line(tmp_path):
    pred = _predictor(FixedTask())
    path, _ = export(pred, "onnx", tmp_path / "m.onnx", example=torch.randn(2, 3, 32, 48))
    assert onnx_session(path).get_inputs()[0].shape[2:] == [32, 48]
    assert read_onnx_metadata(path)["preprocessing"]["dynamic_size"] == []
    with pytest.raises(ZooError, match=r"exported for inputs of width 48, got 64; task 'fixed-toy' gives inputs") as e:
        OnnxModule(path, FixedTask(), {})(torch.randn(1, 3, 32, 64))
    assert "\n" not in str(e.value)


def test_an_unknown_axis_is_one_line(tmp_path):
    class Depth(DenseTask):
        dynamic_size = ("depth",)

    with pytest.raises(ZooError, match="dynamic_size 'depth' is not one of height, width"):
        export(_predictor(Depth()), "onnx", tmp_path / "m.onnx", example=torch.randn(2, 3, 32, 48))
