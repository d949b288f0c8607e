"""Class 5, exports and compress: unknown formats, absurd opsets, unwritable outputs, a full disk or a
SIGKILL during the write (never a partial file under the final name; the next export is fine); onnx-int8
never calibrates silently on noise when the run's training images are gone; compress of a run whose
weights are NaN makes no new run directory."""

from __future__ import annotations

import json
import resource

import pytest
import torch

from .faultkit import cli_error, one_line_error, snapshot, zoo_process

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without


def data_gone(run):
    config = json.loads((run / "config.json").read_text())
    config["train"]["data"] = config["data"]["source"] = str(run.parent / "moved-away")
    (run / "config.json").write_text(json.dumps(config))


def test_onnx_int8_of_a_run_whose_images_are_gone_refuses_instead_of_calibrating_on_noise(run_copy):
    data_gone(run_copy)
    line = cli_error("export", run_copy, "--format", "onnx-int8", "-o", run_copy / "m.onnx")
    assert "training images" in line and "mode=dynamic" in line, line
    assert not (run_copy / "m.onnx").exists()


@pytest.mark.parametrize("value", ["0", "-5", "2.5", "true"])
def test_calibration_images_that_are_not_a_positive_count_are_one_line(run_copy, value):
    line = cli_error("export", run_copy, "--format", "onnx-int8", "--set", f"calibration_images={value}",
                     "-o", run_copy / "m.onnx")
    assert "calibration_images" in line, line
    assert not (run_copy / "m.onnx").exists()


def test_compress_of_a_run_with_nan_weights_is_one_line_and_makes_no_run(run_copy, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from zoo_core.training.rundir import weights_metadata

    weights = run_copy / "best.safetensors"
    tensors = load_file(weights)
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, weights, metadata=weights_metadata(weights))
    monkeypatch.chdir(tmp_path)
    line = cli_error("compress", run_copy, "--sparsity", "0.5", "--epochs", "1")
    assert "not finite" in line and name in line, line
    assert not (tmp_path / "runs").exists() and [p.parent for p in tmp_path.glob("*/config.json")] == [run_copy]
    out = tmp_path / "compressed"
    cli_error("compress", run_copy, "--sparsity", "0.5", "--epochs", "1", "-o", out)
    assert not out.exists()


@pytest.mark.parametrize("args,words,code", [(["--format", "gif"], "gif", 1),
                                             (["--format", "onnx", "--opset", "999"], "opset", 1),
                                             (["--format", "onnx", "--opset", "1"], "opset", 2)],
                         ids=["unknown-format", "opset-999", "opset-1"])
def test_unknown_formats_and_absurd_opsets_are_one_line(run_copy, args, words, code):
    before = snapshot(run_copy)
    assert words in cli_error("export", run_copy, *args, "-o", run_copy / "m.onnx", code=code)
    assert snapshot(run_copy) == before


def test_an_unwritable_output_is_one_line(run_copy):
    (run_copy / "afile").write_text("x")
    line = cli_error("export", run_copy, "--format", "onnx", "-o", run_copy / "afile" / "m.onnx")
    assert "afile" in line
    assert (run_copy / "afile").read_text() == "x"


@pytest.mark.parametrize("fmt,name", [("onnx", "model.onnx"), ("safetensors", "model.safetensors")])
def test_a_sigkill_during_an_export_leaves_no_file_under_the_final_name(run_copy, fmt, name):
    killed = zoo_process("export", run_copy, "--format", fmt, "-o", run_copy / name,
                         env={"ZOO_TEST_KILL_AT": f"rename:{name}"})
    assert killed.returncode == -9, killed.stderr
    assert not (run_copy / name).exists()
    again = zoo_process("export", run_copy, "--format", fmt, "-o", run_copy / name)
    assert again.returncode == 0, again.stderr
    assert (run_copy / name).stat().st_size > 0


def test_a_full_disk_during_an_export_is_one_line_and_no_partial_file(run_copy):
    limit = 20_000  # bytes: far less than the ONNX file

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = zoo_process("export", run_copy, "--format", "onnx", "-o", run_copy / "model.onnx", preexec_fn=small_files)
    line = one_line_error(proc.returncode, proc.stderr)
    assert "model.onnx" in line or "File too large" in line, line
    assert not (run_copy / "model.onnx").exists()
    assert not [p.name for p in run_copy.glob(".model.onnx*")]
