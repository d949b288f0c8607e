"""Class 4 and 5: a run killed at any instant (SIGKILL between any two writes, through the writer's
ZOO_TEST_KILL_AT hook), stopped by SIGTERM or Ctrl-C, or out of disk, either resumes to exactly the run
an uninterrupted seeded one gives, or says in one line what to do. Nothing saved is lost."""

from __future__ import annotations

import resource
import signal
import subprocess
import time

import pytest
import torch

from .faultkit import (TINY, TINY_SETTINGS, ZOO, cli_error, config_of, make_folder, metrics_of, one_line_error,
                      temp_files, without_time, zoo_process)

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

EPOCHS = 3


@pytest.fixture(scope="session")
def reference(tmp_path_factory, folder):
    """The uninterrupted seeded run every interrupted one must end up identical to."""
    from zoo_core import train

    out = tmp_path_factory.mktemp("reference") / "run"
    train("classify", data=str(folder), out=str(out), **{**TINY_SETTINGS, "epochs": EPOCHS})
    return out


def train_flags(folder, out):
    return ["train", "classify", "--data", folder, *TINY, "--epochs", str(EPOCHS), "--out", out]


def assert_same_run(run, reference):
    assert without_time(metrics_of(run)) == without_time(metrics_of(reference))
    cfg, ref = config_of(run), config_of(reference)
    assert cfg["status"] == "completed" and cfg["best"] == ref["best"]
    for name in ("best.safetensors", "last.safetensors"):
        from safetensors.torch import load_file

        a, b = load_file(run / name), load_file(reference / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{name} differs"
    assert not temp_files(run), temp_files(run)
    assert (run / "metrics.csv").read_text().splitlines()[0] == (reference / "metrics.csv").read_text().splitlines()[0]


# Every instant between two writes of a run: (ZOO_TEST_KILL_AT, what the kill interrupts).
KILL_POINTS = [
    ("rename:last.state.pt#1", "the first checkpoint, written but not yet renamed"),
    ("rename:last.safetensors#1", "the first publication"),
    ("rename:config.json#1", "before the first config.json"),
    ("batch@1", "in the first epoch"),
    ("commit@1", "epoch 1 trained and validated, not checkpointed"),
    ("rename:last.state.pt#2", "epoch 1's checkpoint written, not renamed"),
    ("publish@1", "epoch 1 checkpointed, nothing published"),
    ("published-last@1", "between last weights and best weights"),
    ("published-best@1", "between best weights and metrics"),
    ("rename:metrics.jsonl#2", "epoch 1's metrics row written, not renamed"),
    ("published-metrics@1", "between metrics and config"),
    ("rename:config.json#3", "epoch 1's config written, not renamed"),
    ("batch@2", "in the second epoch (the backbone still frozen)"),
    ("rename:best.safetensors#1", "epoch 1's best weights written, not renamed"),
    ("batch@3", "in the third epoch, after unfreezing"),
    ("publish@3", "the last epoch checkpointed, nothing published"),
    ("published-metrics@3", "the last epoch, before its config"),
]


@pytest.mark.parametrize("point", [p for p, _ in KILL_POINTS], ids=[p for p, _ in KILL_POINTS])
def test_a_kill_at_any_instant_resumes_to_the_uninterrupted_run(tmp_path, folder, reference, point):
    from zoo_core import train

    out = tmp_path / "run"
    killed = zoo_process(*train_flags(folder, out), env={"ZOO_TEST_KILL_AT": point})
    if killed.returncode == 0 and point.startswith("rename:best.safetensors"):
        pytest.skip("the run did not improve in epoch 2, so there was no best file to kill it at")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if not (out / "config.json").exists():
        # Killed before the run said what it is: --resume says how to go on, and the same command starts it again.
        assert "config.json" in cli_error("train", "--resume", out)
        train("classify", data=str(folder), out=str(out), **{**TINY_SETTINGS, "epochs": EPOCHS})
    else:
        result = train("", resume=str(out), quiet=True)
        assert result.status == "completed"
    assert_same_run(out, reference)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_run_in_one_line_resumable(tmp_path, folder, sig, code):
    out = tmp_path / "run"
    flags = ["train", "classify", "--data", folder, *TINY, "--epochs", "500", "--out", out]
    import os

    # SIGINT as a terminal's Ctrl-C sends it: pytest started as a background job of a script (`.ci/run &`)
    # inherits SIGINT ignored (the shell's rule for background jobs), and so would zoo, which keeps an
    # inherited SIG_IGN like every program. That, not a slow machine, made this case hang in CI.
    proc = subprocess.Popen([*ZOO, *map(str, flags)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # The signal comes once an epoch is saved (a behaviour, not a time): generous deadlines only catch a hang.
    deadline = time.time() + 900
    while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip()):
        assert proc.poll() is None, f"the run ended before its first epoch: {proc.communicate()[1]}"
        if time.time() > deadline:
            proc.kill()
            pytest.fail("no epoch finished in 900 s")
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{sig.name} was not acted on: the run still trained 600 s after it")
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "--resume" in lines[0] and ("SIGTERM" in lines[0]) == (sig == signal.SIGTERM), stderr
    assert config_of(out)["status"] == "interrupted"
    done = config_of(out)["epochs_done"]
    assert done >= 1 and [r["epoch"] for r in metrics_of(out)] == list(range(1, done + 1))
    from zoo_core import train

    assert train("", resume=str(out), epochs=done + 1, quiet=True).status == "completed"


def test_a_full_disk_is_one_line_and_keeps_the_checkpoint(tmp_path, folder, reference, trained):
    """ulimit -f: writing past the limit fails (EFBIG) like a full disk. The limit lets the checkpoints of
    the two frozen-backbone epochs through and stops epoch 3's, which holds the backbone's optimizer state too."""
    limit = int((trained / "last.state.pt").stat().st_size * 1.3)
    out = tmp_path / "run"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = zoo_process(*train_flags(folder, out), preexec_fn=small_files)
    line = one_line_error(proc.returncode, proc.stderr)
    assert "File too large" in line and "intact" in line and "--resume" in line
    assert config_of(out)["status"] == "failed"
    assert torch.load(out / "last.state.pt", weights_only=True)["epoch"] == 2 and "epoch 2 is intact" in line
    assert not temp_files(out)
    from zoo_core import train

    assert train("", resume=str(out), quiet=True).status == "completed"
    assert_same_run(out, reference)


def test_a_file_where_the_run_directory_should_be_is_one_line(in_tmp, folder):
    (in_tmp / "afile").write_text("x")
    line = cli_error("train", "classify", "--data", folder, *TINY, "--out", in_tmp / "afile" / "run")
    assert "afile" in line
    assert (in_tmp / "afile").read_text() == "x"
    line = cli_error("train", "classify", "--data", folder, *TINY, "--out", in_tmp / "afile")
    assert "afile" in line


def test_runs_being_a_file_is_one_line(in_tmp, folder):
    (in_tmp / "runs").write_text("x")
    assert "runs" in cli_error("train", "classify", "--data", folder, *TINY)
    assert (in_tmp / "runs").read_text() == "x"


def test_an_unwritable_directory(monkeypatch):
    """--out inside a directory the user may not write to: one line naming it, exit 1, nothing created. Root may
    write anywhere, so as root the run is started as user nobody, or, where nobody cannot run this checkout (a
    Python under /root), the kernel's refusal is played in-process: creating anything in the directory raises
    EACCES, as it would. The files live outside pytest's temporary folder, which only its owner may enter."""
    import errno
    import os
    import shutil
    import tempfile
    from pathlib import Path

    def as_nobody():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    def nobody_runs_zoo() -> bool:
        try:
            return zoo_process("--version", preexec_fn=as_nobody).returncode == 0
        except OSError:  # the interpreter itself is out of nobody's reach
            return False

    root = Path(tempfile.mkdtemp(prefix="zoo-unwritable-"))
    locked = root / "locked"
    try:
        root.chmod(0o755)
        data = make_folder(root / "pets")
        cache = root / "cache"
        cache.mkdir()
        cache.chmod(0o777)
        locked.mkdir()
        locked.chmod(0o555)  # readable, not writable
        flags = ["train", "classify", "--data", data, *TINY, "--out", locked / "run"]
        if os.geteuid() != 0 or nobody_runs_zoo():
            proc = zoo_process(*flags, env={"ZOO_CACHE": str(cache), "HOME": str(cache)},
                               preexec_fn=as_nobody if os.geteuid() == 0 else None)
            line = one_line_error(proc.returncode, proc.stderr)
        else:
            real_mkdir = os.mkdir

            def refused(path, *args, **kwargs):
                if Path(path).parent == locked:
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
                return real_mkdir(path, *args, **kwargs)

            monkeypatch.setattr(os, "mkdir", refused)
            line = cli_error(*flags)
            monkeypatch.undo()
        assert str(locked) in line, line
        assert list(locked.iterdir()) == []
    finally:
        if locked.exists():
            locked.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def test_a_non_empty_directory_that_is_not_a_run_is_never_overwritten(in_tmp, folder):
    (in_tmp / "mine").mkdir()
    (in_tmp / "mine" / "notes.txt").write_text("keep")
    assert "not an empty directory" in cli_error("train", "classify", "--data", folder, *TINY, "--out", in_tmp / "mine")
    assert (in_tmp / "mine" / "notes.txt").read_text() == "keep"


def test_a_finished_run_is_never_overwritten(in_tmp, folder, run_copy):
    assert "not an empty directory" in cli_error("train", "classify", "--data", folder, *TINY, "--out", run_copy)
