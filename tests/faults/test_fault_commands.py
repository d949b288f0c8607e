"""Every zoo command: a known failure is one line `Error: ...` (exit 1, or 2 for usage), no traceback,
nothing saved changed. Output paths get their folders created; odd file names stay one line each in
skipped.txt; messages say what to do (class 8 and 9)."""

from __future__ import annotations

import pytest
from PIL import Image

from .faultkit import TINY, cli, cli_error, make_folder, snapshot

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (20, 20), (200, 30, 30)).save(path)
    return path


def _bad_inputs(run, image, tmp):
    (tmp / "afile").write_text("x")
    (tmp / "not-an-image.png").write_text("hello")
    (tmp / "empty").mkdir(exist_ok=True)
    return {
        "predict: no such run": (["predict", tmp / "nope", image], 1),
        "predict: a file as run": (["predict", tmp / "afile", image], 1),
        "predict: no such image": (["predict", run, tmp / "missing.png"], 1),
        "predict: not an image": (["predict", run, tmp / "not-an-image.png"], 1),
        "predict: a folder without images": (["predict", run, tmp / "empty"], 1),
        "predict: unknown option": (["predict", run, image, "--nope"], 1),
        "predict: -k without value": (["predict", run, image, "-k"], 1),
        "predict: unknown backbone": (["predict", "resnet1888", image], 1),
        "eval: no such run": (["eval", tmp / "nope"], 1),
        "eval: no such data": (["eval", run, "--data", tmp / "nope"], 1),
        "eval: data of no known format": (["eval", run, "--data", tmp / "afile"], 1),
        "eval: report into a file": (["eval", run, "--report", tmp / "afile" / "r"], 1),
        "export: unknown format": (["export", run, "--format", "nosuch"], 1),
        "export: no such run": (["export", tmp / "nope"], 1),
        "export: a backbone": (["export", "cnn2"], 1),
        "inspect: unknown backbone": (["inspect", "resnet1888"], 1),
        "inspect: depth 0": (["inspect", "cnn2", "--depth", "0"], 2),
        "inspect: no such image": (["inspect", "cnn2", "--feature-maps", tmp / "missing.png"], 1),
        "inspect: --layers without image": (["inspect", "cnn2", "--layers", "x"], 1),
        "inspect: unknown layer": (["inspect", run, "--feature-maps", image, "--layers", "nosuchlayer"], 1),
        "list: no such registry": (["list", "--registry", tmp / "nope.toml"], 1),
        "list: a broken registry": (["list", "--registry", tmp / "not-an-image.png"], 1),
        "push: no such run": (["push", tmp / "nope", "a/b"], 1),
        "push: bad repo id": (["push", run, "not a repo id"], 1),
        "pull: bad id": (["pull", "a/b/c/d"], 1),
        "plugin new: bad name": (["plugin", "new", "9 bad name!"], 1),
        "plugin new: into a file": (["plugin", "new", "good", "--dir", tmp / "afile"], 2),
        "train: no such data": (["train", "classify", "--data", tmp / "nope"], 1),
        "train: data of no known format": (["train", "classify", "--data", tmp / "afile"], 1),
        "train: no such weights": (["train", "classify", "--weights", tmp / "nope.pth"], 1),
        "train: weights not a state dict": (["train", "classify", "--data", tmp / "empty", "--weights", tmp / "afile"], 1),
        "train: no such config": (["train", "classify", "--config", tmp / "nope.toml"], 1),
        "train: a folder of no images": (["train", "classify", "--data", tmp / "empty"], 1),
        "unknown command": (["nosuchcommand"], 2),
        "unknown flag": (["train", "classify", "--nosuchflag"], 2),
    }


def case_names():
    import tempfile
    from pathlib import Path

    return list(_bad_inputs(Path("RUN"), Path("IMG"), Path(tempfile.mkdtemp())))


@pytest.mark.parametrize("case", case_names())
def test_every_command_fails_in_one_line(trained, image, tmp_path, in_tmp, case):
    args, code = _bad_inputs(trained, image, tmp_path)[case]
    before = snapshot(trained)
    result = cli(*args)
    stderr = result.stderr
    if case == "predict: not an image":  # predict names each unreadable input on its own line first
        notes = [line for line in stderr.splitlines() if line.startswith("skipped ")]
        assert len(notes) == 1
        stderr = "\n".join(line for line in stderr.splitlines() if not line.startswith("skipped "))
    from .faultkit import one_line_error

    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    one_line_error(result.exit_code, stderr, code)
    assert snapshot(trained) == before


def test_inspect_draws_into_a_folder_that_does_not_exist(trained, image, tmp_path):
    out = tmp_path / "new" / "deeper" / "maps.png"
    result = cli("inspect", trained, "--feature-maps", image, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert out.exists()


@pytest.mark.parametrize("command", ["predict --draw", "export -o"])
def test_other_outputs_into_a_missing_folder_work_or_say_so(trained, image, tmp_path, command):
    """Creating the folder belongs to the deployment commands; until they do, it must be one line."""
    out = tmp_path / "new" / "deeper" / ("drawn.png" if "draw" in command else "model.onnx")
    args = ["predict", trained, image, "--device", "cpu", "--draw", out] if "draw" in command else ["export", trained, "-o", out]
    result = cli(*args)
    if result.exit_code != 0:
        cli_error(*args)
    else:
        assert out.exists()


def test_skipped_names_with_newlines_and_tabs_stay_one_line_each(tmp_path):
    data = make_folder(tmp_path / "pets")
    (data / "red" / "bad\nname.png").write_text("not an image")
    (data / "green" / "tab\tname.png").write_text("not an image")
    out = tmp_path / "run"
    result = cli("train", "classify", "--data", data, *TINY, "--out", out)
    assert result.exit_code == 0, result.stderr
    lines = (out / "skipped.txt").read_text().splitlines()
    assert len(lines) == 2 and all(line.count("\t") == 1 for line in lines), lines
    assert any("bad\\nname.png" in line for line in lines) and any("tab\\tname.png" in line for line in lines)


def test_a_semicolon_csv_is_read(tmp_path):
    data = make_folder(tmp_path / "pets")
    rows = [f"{p.relative_to(tmp_path)};{p.parent.name}" for p in sorted(data.rglob("*.png"))]
    (tmp_path / "labels.csv").write_text("\n".join(["path;label", *rows]) + "\n")
    result = cli("train", "classify", "--data", tmp_path / "labels.csv", *TINY, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr


def test_an_empty_split_names_val_fraction(tmp_path):
    data = make_folder(tmp_path / "pets", classes=("red", "green"), per_class=1)
    line = cli_error("train", "classify", "--data", data, *TINY, "--out", tmp_path / "run")
    assert "--val-fraction" in line or "images" in line, line
    assert not (tmp_path / "run").exists() or not (tmp_path / "run" / "best.safetensors").exists()
