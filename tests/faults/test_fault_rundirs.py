"""Class 3 and 9: a run directory is not trusted. Truncated, garbage or tampered weights, checkpoint and
config, and --resume with changed settings, are one line for every command reading them, and a malicious
pickle never runs."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from .faultkit import cli, cli_error, config_of, metrics_of, snapshot

pytestmark = pytest.mark.zoo_plugins("classify", "localize")  # trains them: skipped without

MARKER = "/tmp/zoo-fault-pickle-ran"


class Evil:
    """A pickle that runs code when unpickled: it must never be."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_config(run, edit):
    cfg = config_of(run)
    edit(cfg)
    (run / "config.json").write_text(json.dumps(cfg))


def _image(folder):
    return next(folder.rglob("*.png"))


WEIGHT_DAMAGE = {
    "half": lambda p: _truncate(p),
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(4096)),
    "header-only": lambda p: _truncate(p, 0.01),
}


@pytest.mark.parametrize("damage", list(WEIGHT_DAMAGE))
@pytest.mark.parametrize("command", ["predict", "eval", "inspect"])
def test_damaged_best_weights_are_one_line(run_copy, folder, damage, command):
    WEIGHT_DAMAGE[damage](run_copy / "best.safetensors")
    args = {"predict": ["predict", run_copy, _image(folder), "--device", "cpu"], "eval": ["eval", run_copy, "--device", "cpu"],
            "inspect": ["inspect", run_copy]}[command]
    before = snapshot(run_copy)
    assert "best.safetensors" in cli_error(*args)
    assert snapshot(run_copy) == before


CONFIG_DAMAGE = {
    "not json": lambda run: (run / "config.json").write_text("{ not json"),
    "a list": lambda run: (run / "config.json").write_text("[1, 2]"),
    "binary": lambda run: (run / "config.json").write_bytes(b"\xff\xfe\x00"),
    "no model": lambda run: _edit_config(run, lambda c: c.pop("model")),
    "model is a string": lambda run: _edit_config(run, lambda c: c.__setitem__("model", "x")),
    "no head": lambda run: _edit_config(run, lambda c: c["model"].pop("head")),
    "fewer classes": lambda run: _edit_config(run, lambda c: c["model"]["info"].__setitem__("classes", ["a", "b"])),
    "classes a number": lambda run: _edit_config(run, lambda c: c["model"]["info"].__setitem__("classes", 3)),
    "another backbone": lambda run: _edit_config(run, lambda c: c["model"].__setitem__("backbone", "cnn1")),
    "unknown backbone": lambda run: _edit_config(run, lambda c: c["model"].__setitem__("backbone", "nosuchnet")),
    "timm at another file": lambda run: _edit_config(run, lambda c: c["model"].__setitem__(
        "backbone_options", {"checkpoint_path": "/etc/hosts"})),
    "head option of wrong type": lambda run: _edit_config(run, lambda c: c["model"].__setitem__("head_options", {"dropout": "x"})),
    "data_config a list": lambda run: _edit_config(run, lambda c: c["model"].__setitem__("data_config", [1])),
    "image size negative": lambda run: _edit_config(run, lambda c: c["model"]["data_config"].__setitem__("input_size", [3, -4, 16])),
    "missing": lambda run: (run / "config.json").unlink(),
}


@pytest.mark.parametrize("damage", list(CONFIG_DAMAGE))
def test_a_tampered_config_is_one_line_for_predict(run_copy, folder, damage):
    CONFIG_DAMAGE[damage](run_copy)
    before = snapshot(run_copy)
    line = cli_error("predict", run_copy, _image(folder), "--device", "cpu")
    assert str(run_copy) in line or "config" in line, line
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("damage", ["not json", "a list", "no model", "missing"])
def test_an_unreadable_config_is_one_line_for_resume(run_copy, damage):
    CONFIG_DAMAGE[damage](run_copy)
    state = (run_copy / "last.state.pt").read_bytes()
    cli_error("train", "--resume", run_copy, "--epochs", "3", "-q")
    assert (run_copy / "last.state.pt").read_bytes() == state


@pytest.mark.parametrize("damage", ["fewer classes", "timm at another file", "another backbone", "image size negative"])
def test_a_tampered_model_section_is_rewritten_by_resume(run_copy, trained, damage):
    """--resume rebuilds the network from the training settings and the checkpoint, then republishes
    config.json: the tampered section is replaced by the true one."""
    CONFIG_DAMAGE[damage](run_copy)
    result = cli("train", "--resume", run_copy, "--epochs", "3", "-q")
    assert result.exit_code == 0, result.stderr
    assert config_of(run_copy)["model"] == config_of(trained)["model"]


TRAIN_DAMAGE = {
    "timm at another file": ("backbone_options", {"checkpoint_path": "/etc/hosts"}),
    "epochs a string": ("epochs", "many"),
    "lr negative": ("lr", -1),
    "unknown setting": ("nonsense", 1),
    "options not a table": ("head_options", 3),
}


@pytest.mark.parametrize("damage", list(TRAIN_DAMAGE))
def test_a_tampered_train_section_is_one_line_for_resume(run_copy, damage):
    key, value = TRAIN_DAMAGE[damage]
    _edit_config(run_copy, lambda c: c["train"].__setitem__(key, value))
    before = snapshot(run_copy)
    line = cli_error("train", "--resume", run_copy, "--epochs", "3", "-q")
    assert key in line or any(k in line for k in value if isinstance(value, dict)), line
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("damage", ["half", "empty", "garbage"])
def test_a_damaged_checkpoint_is_refused_in_one_line_and_kept(run_copy, damage):
    WEIGHT_DAMAGE[damage](run_copy / "last.state.pt")
    before = snapshot(run_copy)
    line = cli_error("train", "--resume", run_copy, "--epochs", "3", "-q")
    assert "last.state.pt" in line and "--out" in line
    assert snapshot(run_copy) == before


def test_a_malicious_pickle_as_checkpoint_never_runs(run_copy):
    if os.path.exists(MARKER):
        os.unlink(MARKER)
    torch.save({"format": "zoo-checkpoint/1", "epoch": Evil()}, run_copy / "last.state.pt")
    line = cli_error("train", "--resume", run_copy, "--epochs", "3", "-q")
    assert "last.state.pt" in line
    assert not os.path.exists(MARKER)


def test_a_malicious_pickle_as_weights_never_runs_and_the_refusal_gives_no_bad_advice(in_tmp, folder):
    if os.path.exists(MARKER):
        os.unlink(MARKER)
    with open(in_tmp / "evil.pth", "wb") as f:
        pickle.dump({"w": Evil()}, f)
    torch.save({"w": Evil()}, in_tmp / "evil2.pth")
    for name in ("evil.pth", "evil2.pth"):
        line = cli_error("train", "classify", "--data", folder, "--backbone", "cnn2", "--weights", in_tmp / name,
                         "--epochs", "1", "--workers", "0", "-q")
        assert name in line and "weights_only" not in line and "succeed" not in line, line
    assert not os.path.exists(MARKER)


def test_a_checkpoint_of_another_shape_is_refused(run_copy, tmp_path, folder):
    from zoo_core import train

    other = tmp_path / "other"
    train("classify", data=str(folder), out=str(other), backbone="cnn1", pretrained=False, image_size=16, epochs=1,
          batch_size=8, workers=0, device="cpu", quiet=True)
    shutil.copy(other / "last.state.pt", run_copy / "last.state.pt")
    assert "does not fit" in cli_error("train", "--resume", run_copy, "--epochs", "3", "-q")


def test_stale_derived_files_are_repaired_on_resume(run_copy, trained):
    """last.safetensors and the metrics are published from the checkpoint: damage to them is repaired."""
    _truncate(run_copy / "last.safetensors")
    (run_copy / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 1}\n')
    (run_copy / "metrics.csv").unlink()
    (run_copy / ".config.json.12345.tmp").write_text("{")
    result = cli("train", "--resume", run_copy, "--epochs", "3", "-q")
    assert result.exit_code == 0, result.stderr
    rows = metrics_of(run_copy)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[:2] == metrics_of(trained)
    assert (run_copy / "metrics.csv").exists() and not list(run_copy.glob(".*.tmp"))


def test_best_weights_of_another_epoch_are_refused_or_rebuilt(run_copy):
    (run_copy / "best.safetensors").unlink()
    best_epoch = config_of(run_copy)["best"]["epoch"]
    result = cli("train", "--resume", run_copy, "--epochs", "3", "-q")
    if best_epoch == 2:  # the checkpoint's own epoch: rebuilt from it
        assert result.exit_code == 0 and (run_copy / "best.safetensors").exists()
    else:
        assert "best.safetensors" in cli_error("train", "--resume", run_copy, "--epochs", "3", "-q")


RESUME_MISUSE = {
    "another backbone": (["--backbone", "resnet18"], "backbone"),
    "another head": (["--head", "mlp"], "head"),
    "another image size": (["--image-size", "24"], "image_size"),
    "a head option": (["--set", "head.dropout=0.5"], "head_options"),
    "another task": (["localize"], "task"),
    "--out elsewhere": (["--out", "elsewhere"], "--out"),
    "--config": (["--config", "x.toml"], "--config"),
    "no more epochs": ([], "--epochs"),
    "fewer epochs": (["--epochs", "1"], "--epochs"),
}


@pytest.mark.parametrize("case", list(RESUME_MISUSE))
def test_resume_refuses_what_it_would_otherwise_ignore(run_copy, case, in_tmp):
    extra, named = RESUME_MISUSE[case]
    task = [a for a in extra if not a.startswith("-") and "=" not in a and a in ("localize",)]
    flags = [a for a in extra if a not in task]
    before = snapshot(run_copy)
    line = cli_error("train", *task, "--resume", run_copy, *flags, "-q")
    assert named in line, line
    assert snapshot(run_copy) == before


def test_resume_of_what_is_not_a_run_is_one_line(tmp_path):
    assert "no such run directory" in cli_error("train", "--resume", tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    assert "config.json" in cli_error("train", "--resume", tmp_path / "empty")


