"""Bad input: every problem a user can make is one line starting with 'Error: ', a non-zero exit and no
traceback; close names are suggested; and a failing command touches nothing already saved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zoo_core.cli import main

pytestmark = pytest.mark.zoo_plugins("classify", "keypoints", "multitask")  # trains them: skipped without

TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "16", "--epochs", "1", "--batch-size", "8",
        "--workers", "0", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Nothing here may reach the network: the small nets are built from scratch."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def make_folder(root: Path, classes=("a", "b"), per_class: int = 6) -> Path:
    """root/<class>/*.png, 16x16, a different mean colour per class."""
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(k)
        for i in range(per_class):
            arr = np.clip(rng.normal(60 + 120 * (k % 2), 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{c}{i}.png")
    return root


def write_csv(path: Path, folder: Path, header: str = "path,label") -> Path:
    """A CSV listing the images of `folder` (relative to the CSV's directory)."""
    rows = [f"{p.relative_to(path.parent)},{p.parent.name}" for p in sorted(folder.rglob("*.png"))]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def zoo_command() -> list[str]:
    script = Path(sys.executable).with_name("zoo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "zoo_core.cli"]


def run_zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real `zoo` console script, in its own process: the real exit code and stderr."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*zoo_command(), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(exit_code: int, stderr: str, exception: BaseException | None = None) -> str:
    """Asserts the user-error contract and returns the line: exit != 0, stderr is exactly one line,
    'Error: ...', and no traceback. CliRunner swallows exceptions rather than print them, so an escaped
    exception is checked for directly."""
    assert exception is None or isinstance(exception, SystemExit), f"an exception escaped: {exception!r}"
    assert exit_code != 0, f"exit code 0; stderr: {stderr}"
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def cli_error(*args: str) -> str:
    result = cli(*args)
    return one_line_error(result.exit_code, result.stderr, result.exception)


def no_run_created(cwd: Path) -> None:
    """A failing train leaves no run directory (runs/ itself may exist, empty)."""
    runs = cwd / "runs"
    assert not runs.exists() or not any(runs.iterdir()), sorted(p.name for p in runs.iterdir())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny trained run on classes a and b, shared read-only (tests that check it stays untouched copy it)."""
    root = tmp_path_factory.mktemp("tiny")
    data, out = make_folder(root / "data"), root / "run"
    result = cli("train", "classify", "--data", str(data), *TINY, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["model"]["info"]["classes"] == ["a", "b"]
    return out


# --------------------------------------------------------------------------------------- data folders


def test_empty_data_folder(in_tmp):
    """In a real process: the exit code the shell sees."""
    (in_tmp / "empty").mkdir()
    proc = run_zoo("train", "classify", "--data", "empty", *TINY, cwd=in_tmp)
    line = one_line_error(proc.returncode, proc.stderr)
    assert proc.returncode == 1
    assert "empty" in line and "no class folders" in line
    no_run_created(in_tmp)


def test_folder_with_a_single_class(in_tmp):
    make_folder(in_tmp / "data", classes=("cat",))
    line = cli_error("train", "classify", "--data", "data", *TINY)
    assert "only one class" in line and "'cat'" in line and "at least two" in line
    no_run_created(in_tmp)


def test_folder_with_no_class_subfolders(in_tmp):
    make_folder(in_tmp / "data")
    for f in list((in_tmp / "data").rglob("*.png")):  # the images straight in data/, no class folders
        f.rename(in_tmp / "data" / f.name)
    for d in ("a", "b"):
        (in_tmp / "data" / d).rmdir()
    line = cli_error("train", "classify", "--data", "data", *TINY)
    assert "data" in line and "no class folders" in line and "DIR/<class>/" in line
    no_run_created(in_tmp)


def test_nonexistent_data_path(in_tmp):
    proc = run_zoo("train", "classify", "--data", "no/such/folder", *TINY, cwd=in_tmp)
    line = one_line_error(proc.returncode, proc.stderr)
    assert proc.returncode == 1
    assert "no/such/folder" in line and "no such file or directory" in line
    no_run_created(in_tmp)


# ------------------------------------------------------------------------------------- unknown names


def test_unknown_task_suggests_the_close_one(in_tmp):
    proc = run_zoo("train", "clasify", *TINY, cwd=in_tmp)
    line = one_line_error(proc.returncode, proc.stderr)
    assert proc.returncode == 1
    assert "clasify" in line and "did you mean: classify" in line
    no_run_created(in_tmp)


@pytest.mark.parametrize("flag,wrong,suggested", [
    ("--backbone", "cnn3", "cnn2"),
    ("--head", "mlq", "mlp"),
    ("--loss", "cross-entropi", "cross-entropy"),
    ("--dataset", "image-foldr", "image-folder"),
])
def test_unknown_component_suggests_the_close_one(in_tmp, flag, wrong, suggested):
    make_folder(in_tmp / "data")
    line = cli_error("train", "classify", "--data", "data", *TINY, flag, wrong)
    assert f"'{wrong}'" in line
    assert "did you mean" in line and suggested in line.split("did you mean")[1]
    no_run_created(in_tmp)


# -------------------------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("what,content", [
    ("binary garbage", bytes(range(256)) * 8),
    ("a PNG renamed .csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)),
    ("UTF-16, as Excel saves it", "\ufeffpath,label\nx.png,a\n".encode("utf-16-le")),
    ("Latin-1", "path,label\ncaf\xe9.png,caf\xe9\n".encode("latin-1")),
])
def test_unreadable_csv(in_tmp, what, content):
    (in_tmp / "labels.csv").write_bytes(content)
    line = cli_error("train", "classify", "--data", "labels.csv", *TINY)
    assert "labels.csv" in line and "UTF-8" in line, f"{what}: {line}"
    no_run_created(in_tmp)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_csv(in_tmp, content):
    (in_tmp / "labels.csv").write_text(content)
    line = cli_error("train", "classify", "--data", "labels.csv", *TINY)
    assert "labels.csv" in line and "empty" in line
    no_run_created(in_tmp)


def test_csv_with_a_header_and_no_rows(in_tmp):
    (in_tmp / "labels.csv").write_text("path,label\n")
    line = cli_error("train", "classify", "--data", "labels.csv", *TINY)
    assert "labels.csv" in line and "no rows" in line
    no_run_created(in_tmp)


@pytest.mark.parametrize("header,missing,found", [
    ("picture,label", "path", "picture, label"),  # file_name is a path column now (COCO uses it)
    ("path,species", "label", "path, species"),
])
def test_csv_missing_a_column_names_the_file_and_the_columns_found(in_tmp, header, missing, found):
    write_csv(in_tmp / "labels.csv", make_folder(in_tmp / "data"), header=header)
    line = cli_error("train", "classify", "--data", "labels.csv", *TINY)
    assert "labels.csv" in line and f"missing the {missing} column" in line and f"(columns: {found})" in line
    no_run_created(in_tmp)


def test_csv_whose_images_are_all_missing(in_tmp):
    """The usual CSV mistake: paths relative to somewhere else than the CSV's folder."""
    make_folder(in_tmp / "data")
    (in_tmp / "meta").mkdir()
    rows = [f"{p.relative_to(in_tmp)},{p.parent.name}" for p in sorted((in_tmp / "data").rglob("*.png"))]
    (in_tmp / "meta" / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    line = cli_error("train", "classify", "--data", "meta/labels.csv", *TINY)
    assert "labels.csv" in line and "none of the 12" in line and "file not found" in line
    no_run_created(in_tmp)


# ------------------------------------------------------------------------------------ config, --set


@pytest.mark.parametrize("text,expected", [
    ("epochs = = 3\n", "not valid TOML"),
    ("[head\nname = 'mlp'\n", "not valid TOML"),
    ("epoch = 3\n", "unknown setting 'epoch' (did you mean: epochs"),
    ("[head]\nname = 'mlp'\n[trainer]\nlr = 0.1\n", "unknown setting 'trainer'"),
    ("epochs = 'many'\n", "'epochs' must be an integer"),
])
def test_bad_config_toml(in_tmp, text, expected):
    make_folder(in_tmp / "data")
    (in_tmp / "run.toml").write_text(text)
    line = cli_error("train", "classify", "--data", "data", *TINY, "--config", "run.toml")
    assert "run.toml" in line and expected in line
    no_run_created(in_tmp)


def test_missing_config_file(in_tmp):
    line = cli_error("train", "classify", *TINY, "--config", "nope.toml")
    assert "nope.toml" in line and "not found" in line
    no_run_created(in_tmp)


@pytest.mark.parametrize("item,expected", [
    ("epochs", "expected key=value"),
    ("=3", "expected key=value"),
    ("optimiser.lr=0.1", "'optimiser' is not one of"),
    ("epochs=abc", "'epochs' must be an integer"),
    ("epoch=3", "did you mean: epochs"),
])
def test_bad_set(in_tmp, item, expected):
    make_folder(in_tmp / "data")
    line = cli_error("train", "classify", "--data", "data", *TINY, "--set", item)
    assert "--set" in line and expected in line
    no_run_created(in_tmp)


# -------------------------------------------------------------------------------------- predict, eval


def test_predict_on_a_directory_that_is_not_a_run(in_tmp):
    data = make_folder(in_tmp / "data")
    line = cli_error("predict", str(data), str(data / "a" / "a0.png"), "--device", "cpu")
    assert str(data) in line and "not a zoo run directory" in line


def test_eval_on_a_directory_that_is_not_a_run(in_tmp):
    data = make_folder(in_tmp / "data")
    line = cli_error("eval", str(data), "--data", str(data), "--device", "cpu")
    assert "not a zoo run directory" in line


def test_eval_with_classes_the_model_does_not_know(tiny_run, tmp_path):
    data = make_folder(tmp_path / "other", classes=("a", "zebra"))
    line = cli_error("eval", str(tiny_run), "--data", str(data), "--device", "cpu")
    assert "zebra" in line and "not classes of this model" in line and "a, b" in line


# ------------------------------------------------------------------------ nothing saved is touched


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failing_commands_leave_an_existing_run_untouched(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)  # copy2: bytes and mtimes kept
    before = snapshot(run)
    assert "best.safetensors" in before and "config.json" in before
    data = make_folder(tmp_path / "data")
    make_folder(tmp_path / "one", classes=("cat",))
    (tmp_path / "bad.csv").write_bytes(bytes(range(256)))
    (tmp_path / "other").mkdir()
    make_folder(tmp_path / "other", classes=("a", "zebra"))

    # a train that would succeed, pointed at the run: refused, not overwritten or merged into
    line = cli_error("train", "classify", "--data", str(data), *TINY, "--out", str(run))
    assert str(run) in line and "not an empty directory" in line and "--resume" in line
    # in a real process too
    proc = run_zoo("train", "classify", "--data", str(data), *TINY, "--out", str(run), cwd=tmp_path)
    assert "not an empty directory" in one_line_error(proc.returncode, proc.stderr)
    # trains that fail for other reasons, with --out at the run
    for args in (["--data", str(tmp_path / "one")], ["--data", str(tmp_path / "bad.csv")],
                 ["--data", str(data), "--backbone", "cnn3"], ["--data", str(data), "--set", "epochs"],
                 ["--data", str(tmp_path / "nowhere")]):
        cli_error("train", "classify", *TINY, *args, "--out", str(run))
    # eval and predict that fail, on the run
    cli_error("eval", str(run), "--data", str(tmp_path / "other"), "--device", "cpu")
    cli_error("predict", str(run), str(tmp_path / "no-such.jpg"), "--device", "cpu")

    assert snapshot(run) == before, "a failing command changed the saved run"
    no_run_created(tmp_path)


def test_failing_trains_create_no_run_directory(in_tmp):
    """runs/ under the working directory: a failing train must not leave a half-written classify-NNN there."""
    make_folder(in_tmp / "data")
    make_folder(in_tmp / "one", classes=("cat",))
    (in_tmp / "empty").mkdir()
    for args in (["--data", "empty"], ["--data", "one"], ["--data", "data", "--head", "mlq"],
                 ["--data", "data", "--loss", "cross-entropi"], ["--data", "data", "--backbone", "cnn3"],
                 ["--data", "data", "--set", "dataset.path_column=x"]):
        cli_error("train", "classify", *TINY, *args)
        no_run_created(in_tmp)
    # and the next good run is numbered as if nothing had happened
    result = cli("train", "classify", "--data", "data", *TINY)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (in_tmp / "runs").iterdir()) == ["classify-001"]


@pytest.mark.parametrize("command", [["predict", "{t}", "x.png"], ["eval", "{t}"], ["export", "{t}"], ["inspect", "{t}"],
                                     ["compress", "{t}", "--sparsity", "0.5"]])
def test_a_mistyped_run_directory_is_said_so_not_taken_for_a_hub_id(in_tmp, tiny_run, command):
    """runs/classify-009 has the shape of a Hub id (NAMESPACE/NAME); its folder exists, so it is a run path."""
    (in_tmp / "runs").mkdir()
    shutil.copytree(tiny_run, in_tmp / "runs" / "classify-001")
    line = cli_error(*[c.format(t="runs/classify-009") for c in command])
    assert "runs/classify-009: no such run directory (did you mean: classify-001?)" in line
    assert "no such run directory" in cli_error(*[c.format(t=str(in_tmp / "gone" / "run")) for c in command])


@pytest.mark.parametrize("task,header,row", [
    ("classify", "path,label,split", "{img},{label},{split}"),
    ("multilabel", "path,labels,split", "{img},{label},{split}"),
    ("multitask", "path,age,split", "{img},3,{split}"),
    ("keypoints", "image,x0,y0,split", "{img},3,4,{split}"),
])
def test_a_split_column_takes_train_and_val_only(in_tmp, task, header, row):
    """Any other value ('test', 'validation', a blank among filled rows) would silently fall back to a
    random split that puts those rows in training: it is the line's error instead."""
    folder = make_folder(in_tmp / "imgs", per_class=3)
    files = sorted(folder.rglob("*.png"))

    def write(splits):
        lines = [row.format(img=f.relative_to(in_tmp), label=f.parent.name, split=s) for f, s in zip(files, splits)]
        (in_tmp / "d.csv").write_text("\n".join([header, *lines]) + "\n")
        return str(in_tmp / "d.csv")

    line = cli_error("train", task, "--data", write(["train", "val", "test", "train", "val", "train"]), *TINY)
    assert line.startswith(f"Error: {in_tmp / 'd.csv'}:4: split 'test' is neither train nor val")
    line = cli_error("train", task, "--data", write(["train", "val", "", "train", "val", "train"]), *TINY)
    assert ":4: split is empty" in line
    no_run_created(in_tmp)
    result = cli("train", task, "--data", write(["Train", "val", "train", "train", "VAL", "train"]), *TINY,
                 "--out", str(in_tmp / "run"))
    assert result.exit_code == 0, result.output
    assert "its split column" in (in_tmp / "run" / "train.log").read_text()


def test_predict_on_nothing_readable_names_what_it_was_given(in_tmp, tiny_run):
    (in_tmp / "empty").mkdir()
    assert cli_error("predict", str(tiny_run), "empty") == "Error: empty: no image files there"
    (in_tmp / "notes.txt").write_text("not an image")
    result = cli("predict", str(tiny_run), "notes.txt")  # each unreadable file is said, then the outcome
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["skipped notes.txt: cannot read image (UnidentifiedImageError)",
                                                  "Error: notes.txt: none of the 1 file(s) is a readable image"]
