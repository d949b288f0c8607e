"""Class 1 and 2: numbers out of range and component options, from flags, --set and TOML alike, are one
line naming the flag or option, before any data is read or any run directory is made."""

from __future__ import annotations

import pytest

from .faultkit import TINY, cli, cli_error

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

OUT_OF_RANGE = [
    ("--epochs", "0"), ("--epochs", "-1"), ("--batch-size", "0"), ("--batch-size", "-8"),
    ("--accum-steps", "0"), ("--accum-steps", "-2"), ("--step-size", "0"), ("--step-size", "-3"),
    ("--lr", "0"), ("--lr", "-0.1"), ("--lr", "nan"), ("--lr", "inf"), ("--lr", "1e9"),
    ("--weight-decay", "-0.01"), ("--weight-decay", "nan"), ("--warmup-epochs", "-1"), ("--warmup-epochs", "inf"),
    ("--seed", "-1"), ("--seed", str(2**64)), ("--image-size", "0"), ("--image-size", "-16"), ("--image-size", "100000"),
    ("--val-fraction", "0"), ("--val-fraction", "1"), ("--val-fraction", "1.5"), ("--val-fraction", "-0.5"),
    ("--val-fraction", "nan"), ("--patience", "-1"), ("--freeze-epochs", "-1"), ("--momentum", "1.5"),
    ("--gamma", "0"), ("--gamma", "2"), ("--clip-grad", "-1"), ("--workers", "-2"), ("--backbone-lr-mult", "-1"),
]


@pytest.mark.parametrize("flag,value", OUT_OF_RANGE, ids=[f"{f}={v}" for f, v in OUT_OF_RANGE])
def test_a_number_out_of_range_is_one_line_naming_the_flag(in_tmp, folder, flag, value):
    line = cli_error("train", "classify", "--data", folder, *TINY, flag, value)
    assert flag in line, line
    assert not (in_tmp / "runs").exists(), "a rejected run left a directory"


NOT_A_NUMBER = [("--epochs", "two"), ("--batch-size", "2.5"), ("--lr", "fast"), ("--mode", "sideways"),
                ("--optimizer", "adam2"), ("--seed", "0x")]


@pytest.mark.parametrize("flag,value", NOT_A_NUMBER, ids=[f"{f}={v}" for f, v in NOT_A_NUMBER])
def test_a_value_of_the_wrong_type_is_a_usage_error(in_tmp, folder, flag, value):
    line = cli_error("train", "classify", "--data", folder, *TINY, flag, value, code=2)
    assert flag in line


SETS = [("epochs=0", "epochs"), ("lr=-1", "lr"), ("val_fraction=1", "val_fraction"), ("batch_size='x'", "batch_size"),
        ("seed=-5", "seed"), ("epoch=3", "epoch"), ("warmup_epochs=nan", "warmup_epochs"), ("freeze_epochs=-2", "freeze_epochs"),
        ("cache_limit_gb=0", "cache_limit_gb"), ("head.nope=1", "nope"), ("backbone.nope=1", "nope"),
        ("dataset.nope=1", "nope"), ("loss.nope=1", "nope"), ("model.x=1", "model"), ("=3", "key=value")]


@pytest.mark.parametrize("item,named", SETS, ids=[s for s, _ in SETS])
def test_set_is_checked_like_the_flags(in_tmp, folder, item, named):
    line = cli_error("train", "classify", "--data", folder, *TINY, "--set", item)
    assert named in line


TOMLS = [
    ("epochs = 0", "epochs"), ('lr = "fast"', "lr"), ("val_fraction = 2.0", "val_fraction"), ("batch_size = 1.5", "batch_size"),
    ("nonsense = 1", "nonsense"), ('[head]\nname = "mlp"\nhidden = "big"', "hidden"), ("head_options = 3", "head_options"),
    ("[head]\ndropout = [1, 2]", "dropout"), ("epochs = [", "not valid TOML"), ('seed = 1e30', "seed"),
]


@pytest.mark.parametrize("text,named", TOMLS, ids=[t.splitlines()[-1] for t, _ in TOMLS])
def test_a_toml_key_is_checked_like_the_flags(in_tmp, folder, text, named):
    (in_tmp / "run.toml").write_text(text + "\n")
    line = cli_error("train", "classify", "--data", folder, *TINY, "--config", in_tmp / "run.toml")
    assert named in line
    if not text.startswith("["):  # a component option is checked against the component, after layering
        assert "run.toml" in line


COMPONENT_OPTIONS = [
    (["--head", "mlp", "--set", "head.hidden=-5"], "hidden"),
    (["--head", "mlp", "--set", "head.hidden=0.5"], "hidden"),
    (["--head", "mlp", "--set", "head.dropout=1.5"], "dropout"),
    (["--head", "mlp", "--set", "head.dropout=-0.5"], "dropout"),
    (["--head", "mlp", "--set", "head.dropout=abc"], "dropout"),
    (["--set", "loss.label_smoothing=abc"], "label_smoothing"),
    (["--set", "loss.label_smoothing=2.0"], "label_smoothing"),
    (["--backbone", "resnet18", "--set", "backbone.nope=1"], "nope"),
    (["--backbone", "resnet18", "--set", "backbone.checkpoint_path='/etc/hosts'"], "checkpoint_path"),
    (["--backbone", "resnet18", "--set", "backbone.pretrained_cfg_overlay={file='/etc/hosts'}"], "pretrained_cfg_overlay"),
    (["--backbone", "resnet18", "--set", "backbone.drop_rate='abc'"], "drop_rate"),
    (["--set", "dataset.label_column=nosuch"], "label_column"),
    (["--head", "linear", "--set", "head.dropout=1e400"], "dropout"),
]


@pytest.mark.parametrize("args,named", COMPONENT_OPTIONS, ids=[" ".join(a[-1:]) for a, _ in COMPONENT_OPTIONS])
def test_a_component_option_is_one_line_naming_it(in_tmp, folder, args, named):
    line = cli_error("train", "classify", "--data", folder, *TINY, *args)
    assert named in line, line
    assert not any((in_tmp / "runs").glob("*/best.safetensors")) if (in_tmp / "runs").exists() else True


def test_predict_k_zero_is_one_line(trained, folder):
    image = next(folder.rglob("*.png"))
    for value in ("0", "-1", "x"):
        assert "-k" in cli_error("predict", trained, image, "-k", value)


def test_an_unknown_backbone_and_task_are_one_line(in_tmp, folder):
    assert "resnet1888" in cli_error("train", "classify", "--data", folder, *TINY[2:], "--backbone", "resnet1888")
    assert "clasify" in cli_error("train", "clasify")


def test_missing_task_is_one_line(in_tmp):
    assert "task" in cli_error("train")
