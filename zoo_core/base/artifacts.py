"""Writing run artifacts atomically (temp file + rename), so a crash or Ctrl-C never leaves a
half-written checkpoint or config where a good one was."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # torch is imported where weights are read or written: the rest serves `zoo list` too
    from torch import nn


TMP_SUFFIX = ".tmp"


_KILL_POINTS_PASSED: dict[str, int] = {}


def kill_point(name: str) -> None:
    """A test hook: SIGKILL this process at the named instant when ZOO_TEST_KILL_AT names it ("NAME", or
    "NAME#N" for its N-th time), so the fault tests can kill a run between any two writes. No effect otherwise."""
    wanted = os.environ.get("ZOO_TEST_KILL_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition("#")
    if point == name:
        _KILL_POINTS_PASSED[name] = _KILL_POINTS_PASSED.get(name, 0) + 1
        if _KILL_POINTS_PASSED[name] == int(nth or 1):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        try:
            write(tmp)
        except OSError:
            raise
        except Exception as e:  # a writer in Rust or C++ (safetensors) reports a full disk in its own words
            code = re.search(r"os error (\d+)", str(e))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
        kill_point(f"rename:{path.name}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def cache_dir(*parts: str) -> Path:
    """A folder for files derived once and reused (e.g. weights converted to safetensors):
    $ZOO_CACHE, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo. Created on first use."""
    root = os.environ.get("ZOO_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo"
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=str) + "\n"))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Model weights as safetensors (shared tensors de-duplicated by safetensors itself)."""
    from safetensors.torch import save_model

    return atomic_write(path, lambda p: save_model(model, str(p), metadata=metadata))


def load_weights(model: nn.Module, path: str | Path, rename: list[list[str]] | None = None) -> None:
    """Load a .safetensors file into `model`, every weight accounted for. `rename`: [from, to] key prefixes,
    the first that matches wins, for a file written in another library's names (a timm-layout Hub push)."""
    from safetensors.torch import load_file, load_model

    from .errors import ZooError

    if rename:
        def renamed(key: str) -> str:
            old, new = next(((o, n) for o, n in rename if key.startswith(o)), ("", ""))
            return new + key[len(old):]

        state = {renamed(k): v for k, v in load_file(str(path)).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
    else:
        missing, unexpected = load_model(model, str(path), strict=False)
    if missing or unexpected:
        raise ZooError(f"{path}: weights do not fit the model (missing {sorted(missing)[:5]}, "
                           f"unexpected {sorted(unexpected)[:5]})")


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Optimizer/scheduler/scaler state for --resume: tensors and plain Python values only, so it
    loads back with torch.load(weights_only=True)."""
    import torch

    def write(p: Path) -> None:
        buffer = io.BytesIO()  # serialised in memory, so a full disk is Python's OSError, not torch's RuntimeError
        torch.save(state, buffer)
        p.write_bytes(buffer.getbuffer())

    return atomic_write(path, write)


def load_state(path: str | Path) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
