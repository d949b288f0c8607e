"""--compile: the model is compiled in place (torch.compile), so checkpoints, resume and the weights files
are those of the plain model. The fast test compiles with TorchDynamo's eager backend (the graph capture
zoo relies on, without generating C++); the real inductor run on a CPU takes about a minute: marked slow."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from zoo_core import load_run, train

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

TINY = dict(backbone="cnn2", pretrained=False, image_size=16, batch_size=8, workers=0, quiet=True, device="cpu")


def test_a_compiled_run_trains_saves_plain_weights_and_resumes(tmp_path, image_folder, monkeypatch):
    real = torch.nn.Module.compile
    compiled = []

    def eager_compile(self, *args, **kwargs):
        compiled.append(type(self).__name__)
        return real(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", eager_compile)
    out = tmp_path / "run"
    train("classify", data=str(image_folder()), out=str(out), compile=True, epochs=1, **TINY)
    assert compiled == ["ZooModel"]
    assert not any("_orig_mod" in k for k in load_file(str(out / "last.safetensors")))
    assert "compiled" in (out / "train.log").read_text()
    assert train("", resume=str(out), epochs=2, quiet=True).status == "completed"
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert load_run(out, device="cpu").model is not None


@pytest.mark.slow
def test_inductor_compiles_one_tiny_epoch_on_the_cpu(tmp_path, image_folder):
    result = train("classify", data=str(image_folder()), out=str(tmp_path / "run"), compile=True, **TINY)
    assert result.status == "completed"
