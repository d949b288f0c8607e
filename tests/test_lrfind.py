"""zoo lr-find: the range test runs the trainer's own set-up and the task's step, for any task (classify
and the geometric localize here), plots loss against lr, and prints the zoo train command to use."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner
from PIL import Image

from zoo_core.cli import main
from zoo_core.training.lrfind import lr_find, smooth, steepest

pytestmark = pytest.mark.zoo_plugins("classify", "localize")  # trains them: skipped without

TINY = dict(backbone="cnn2", pretrained=False, image_size=16, batch_size=8, workers=0, device="cpu")


@pytest.mark.parametrize("task,extra", [("classify", {}), ("localize", {"dataset_options": {"count": 48}})])
def test_the_range_test_sweeps_plots_and_suggests(tmp_path, task, extra):
    plot = tmp_path / "lr.png"
    result = lr_find(task, start_lr=1e-5, end_lr=10.0, steps=24, plot=plot, quiet=True, **TINY, **extra)
    assert 3 <= len(result.lrs) <= 24 and len(result.losses) == len(result.lrs) == len(result.smoothed)
    assert result.lrs == sorted(result.lrs) and math.isclose(result.lrs[0], 1e-5)
    assert all(math.isfinite(v) for v in result.losses)
    assert 1e-5 <= result.suggestion <= 10.0 and result.suggestion in result.lrs
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 300


def test_the_command_prints_the_train_command_with_the_suggestion(tmp_path, image_folder):
    data = str(image_folder())
    args = ["lr-find", "classify", "--data", data, "--backbone", "cnn2", "--no-pretrained", "--image-size", "16",
            "--batch-size", "8", "--workers", "0", "--steps", "12", "--plot", str(tmp_path / "lr.png"), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    suggested, command = result.stdout.strip().splitlines()[-2:]
    assert suggested.startswith("suggested lr ")
    # the CliRunner's argv is pytest's, so only the task and the --lr are certain here
    assert command.startswith("zoo train classify") and " --lr " in command
    assert (tmp_path / "lr.png").is_file()


def test_bad_ranges_are_one_line():
    result = CliRunner().invoke(main, ["lr-find", "classify", "--start-lr", "1", "--end-lr", "0.1"])
    assert result.exit_code == 1 and result.stderr.strip() == (
        "Error: --start-lr must be > 0 and below --end-lr, got 1 and 0.1")


def test_the_suggestion_is_the_steepest_fall_before_the_minimum():
    lrs = [10 ** (-6 + i * 0.25) for i in range(25)]
    # flat, then falling fastest around lr 1e-3, a minimum near 1e-1, then rising
    losses = [2.0 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 3)) for lr in lrs]
    losses[-4:] = [losses[-5] + 0.3 * k for k in range(1, 5)]
    found = steepest(lrs, smooth(losses, beta=0.0))
    assert 10 ** -3.5 <= found <= 10 ** -2.5
