"""Class 5 (signals): Ctrl-C or SIGTERM at any instant of a command's start-up, while torch and the
plugins are still being imported, ends it in one line with the signal's exit code: never a traceback,
a circular-import error or a crash (a half-imported torch imported again to report it segfaulted)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from .faultkit import TINY, ZOO

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without


@pytest.mark.parametrize("delay", [0.8, 2.0, 4.0])
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_is_one_line(tmp_path, folder, delay, sig, code):
    flags = ["train", "classify", "--data", folder, *TINY, "--epochs", "500", "--out", tmp_path / "run"]
    proc = subprocess.Popen([*ZOO, *map(str, flags)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)  # Python's own start-up (importing zoo_core.cli) is over well before 0.8 s
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{sig.name} was not acted on: still running 600 s after it")
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if sig == signal.SIGTERM and proc.returncode == -signal.SIGTERM:
        # before the trainer handles SIGTERM its default action ends the process at once, as any program's
        assert not lines, stderr
        return
    assert len(lines) == 1, stderr
    assert proc.returncode == code, stderr
    assert lines[0] == "interrupted" or "--resume" in lines[0], lines[0]
