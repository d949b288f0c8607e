"""A run directory: its name, its log, its config, its checkpoints and metrics, and rebuilding the
trained model from it. Every file is written atomically (temp file + rename)."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..base import artifacts
from ..base.errors import ZooError

RUN_FORMAT = "zoo-run/2"


def next_run_dir(task: str, root: Path = Path("runs")) -> Path:
    """runs/<task>-001, -002, ...: short to type, sorted by age."""
    existing = root.iterdir() if root.is_dir() else []
    taken = [int(m.group(1)) for p in existing if (m := re.fullmatch(rf"{re.escape(task)}-(\d+)", p.name))]
    return root / f"{task}-{max(taken, default=0) + 1:03d}"


class RunLog:
    """Lines to stderr (above the progress bar) and to the run's train.log."""

    def __init__(self, path: Path | None = None, quiet: bool = False):
        self.path, self.quiet = path, quiet
        self._buffer: list[str] = []

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            from tqdm import tqdm
            tqdm.write(msg, file=sys.stderr)
        if self.path is None:
            self._buffer.append(msg)
        else:
            with open(self.path, "a") as f:
                f.write(msg + "\n")

    def attach(self, path: Path) -> None:
        self.path = path
        with open(path, "a") as f:
            f.writelines(m + "\n" for m in self._buffer)
        self._buffer = []


def read_config(run_dir: str | Path, what: str = "") -> dict[str, Any]:
    """A run's config.json, checked enough that a damaged one is a one-line error, not a KeyError later."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    prefix = f"{what} {run_dir}" if what else str(run_dir)
    if not path.is_file():
        raise ZooError(f"{prefix}: not a zoo run directory (no config.json)")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: unreadable run config ({e})") from None
    if isinstance(saved, dict) and "model" not in saved and "architecture" in saved:
        raise ZooError(f"{path}: a timm checkpoint, not a zoo run; predict with it as a pretrained model "
                       "(zoo predict hf-hub:ID, load_pretrained('hf-hub:ID')) or train on it (--backbone hf-hub:ID)")
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict) or not isinstance(saved.get("train"), dict):
        raise ZooError(f"{path}: not a zoo run config (no 'model' and 'train' sections)")
    missing = [k for k in ("task", "backbone", "head", "info", "data_config") if k not in saved["model"]]
    if missing:
        raise ZooError(f"{path}: the 'model' section lacks {', '.join(missing)}")
    return saved


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    artifacts.write_json(run_dir / "config.json", {"format": RUN_FORMAT, **config})


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """metrics.jsonl (one line per epoch) and metrics.csv, both rewritten whole and atomically from the
    rows the checkpoint holds: a kill can never leave a row missing, doubled or half-written."""
    artifacts.write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    artifacts.write_text(run_dir / "metrics.csv", buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: unreadable metrics ({e})") from None


def plot_curves(run_dir: Path) -> None:
    rows = read_metrics(run_dir)
    if rows:
        from ..pictures.plots import plot_curves as plot
        plot(rows, run_dir / "curves.png")


def shape_mismatch(model, weights: Path) -> str | None:
    """'<tensor> is <shape> in the file but <shape> in the network' for the first such tensor; None if none
    (or the file cannot be read at all)."""
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception:
        return None
    for name, tensor in model.state_dict().items():
        if name in shapes and shapes[name] != tuple(tensor.shape):
            return f"{name} is {list(shapes[name])} in the file but {list(tensor.shape)} in the network"
    return None


def rebuild(run_dir: str | Path, which: str = "best"):
    """(model, saved config, task) of a run, from its config.json and weights alone."""
    from ..model.model import build_model
    from ..registry.plugins import get_zoo

    run_dir = Path(run_dir)
    saved = read_config(run_dir)
    weights = run_dir / f"{which}.safetensors"
    if not weights.is_file() and (run_dir / "model.safetensors").is_file():  # a model pulled from the Hub
        weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise ZooError(f"{run_dir}: no {which}.safetensors (did training finish an epoch?)")
    recorded = (weights_metadata(weights) or {}).get("model_digest")
    if recorded and recorded != model_digest(saved["model"]):
        raise ZooError(f"{run_dir / 'config.json'}: its 'model' section was changed after training and no longer "
                       f"describes {weights.name}; restore the original config.json")
    zoo = get_zoo()
    task = zoo.tasks.create(saved["model"]["task"])
    try:
        model = build_model(zoo, saved["model"])
    except ZooError as e:
        raise ZooError(f"{run_dir / 'config.json'}: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RuntimeError) as e:
        raise ZooError(f"{run_dir / 'config.json'}: its 'model' section does not build a network "
                       f"({type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}); the file is damaged") from None
    try:
        artifacts.load_weights(model, weights, rename=(saved.get("weights_layout") or {}).get("rename"))
    except ZooError:
        raise
    except Exception as e:
        mismatch = shape_mismatch(model, weights)
        if mismatch:  # readable, but shaped otherwise: a head or backbone default changed since training
            mc = saved["model"]
            raise ZooError(f"{weights}: {mismatch}; the network config.json describes (head '{mc['head']}' "
                           f"{mc.get('head_options', {})}) is not the one trained: set the options it was trained with "
                           "in config.json's model section, or install the plugin version that trained it") from None
        raise ZooError(f"{weights}: unreadable weights ({type(e).__name__}); the file is damaged") from None
    return model.eval(), saved, task


# ------------------------------------------------------------------------------------ checkpoints
#
# One checkpoint is one file, last.state.pt, written atomically: the epoch, the model's weights, the
# optimizer, schedule, scaler and loss state, the best epoch and every metrics row so far. Everything
# else in the run directory (last.safetensors, best.safetensors, metrics.jsonl/.csv, config.json) is
# published from it afterwards, so a kill at any instant leaves either the previous checkpoint or the new
# one, and --resume republishes whatever the kill left stale. best.safetensors cannot be rebuilt from a
# later checkpoint, so it carries its epoch in its metadata and --resume checks it.

STATE_FILE = "last.state.pt"
CHECKPOINT_FORMAT = "zoo-checkpoint/1"
# Files a run writes: a directory holding only these (and no checkpoint) is a run that never finished an
# epoch, safe to start again in.
# A loss's trained parameters (CosFace's class weights) beside the weights of the same epoch: `zoo eval`
# measures the loss with them; "loss.safetensors" is the name a pushed model carries (the best epoch's).
LOSS_WEIGHTS = {"best": "best.loss.safetensors", "last": "last.loss.safetensors", "model": "loss.safetensors"}
RUN_FILES = {"config.json", "train.log", "skipped.txt", "last.safetensors", "best.safetensors", "metrics.jsonl",
             "metrics.csv", "curves.png", STATE_FILE, LOSS_WEIGHTS["best"], LOSS_WEIGHTS["last"]}


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Temporary files a killed writer left behind (.NAME.PID.tmp); nothing reads them."""
    removed = []
    for p in run_dir.glob(f".*{artifacts.TMP_SUFFIX}") if run_dir.is_dir() else []:
        if re.fullmatch(rf"\..+\.\d+{re.escape(artifacts.TMP_SUFFIX)}", p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def started_but_never_checkpointed(run_dir: Path) -> bool:
    """A run directory a kill left before its first checkpoint: only run files, none of them a checkpoint."""
    names = {p.name for p in run_dir.iterdir() if not re.fullmatch(r"\..+\.\d+\.tmp", p.name)}
    return not (run_dir / STATE_FILE).exists() and names <= RUN_FILES


def read_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The run's checkpoint, checked; None when it has none. A damaged one is a one-line error."""
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    damaged = (f"--resume {run_dir}: {STATE_FILE} is damaged or not zoo's ({{}}); the run cannot continue from it: "
               f"start a new run with --out NEW_DIR (its best.safetensors still works for predict and export)")
    try:
        state = artifacts.load_state(path)
    except Exception as e:  # truncated, tampered, or a pickle weights_only refuses: never unpickled
        raise ZooError(damaged.format(f"{type(e).__name__}")) from None
    if not isinstance(state, dict):
        raise ZooError(damaged.format(f"a {type(state).__name__}, not a checkpoint"))
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ZooError(damaged.format(f"format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r}: made by "
                                      "another zoo version or not a checkpoint"))
    try:
        epoch = state["epoch"]
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch {epoch!r}")
        state["best"] = json.loads(state["best"])
        state["metrics"] = json.loads(state["metrics"])
        if not isinstance(state["best"], dict) or not isinstance(state["metrics"], list):
            raise ValueError("best or metrics of the wrong type")
        if [r.get("epoch") for r in state["metrics"]] != list(range(1, epoch + 1)):
            raise ValueError(f"metrics rows for epochs {[r.get('epoch') for r in state['metrics']]}, checkpoint of epoch {epoch}")
        if state["best"] and not 1 <= state["best"].get("epoch", 0) <= epoch:
            raise ValueError(f"best epoch {state['best'].get('epoch')} after the checkpoint's epoch {epoch}")
        for key in ("model", "optimizers", "schedules", "scaler", "bad_epochs"):
            state[key]
        if not all(isinstance(v, torch_tensor_type()) for v in state["model"].values()):
            raise ValueError("model weights that are not tensors")
    except (KeyError, TypeError, ValueError, AttributeError, json.JSONDecodeError) as e:
        raise ZooError(damaged.format(f"{type(e).__name__}: {str(e)[:120]}")) from None
    return state


def torch_tensor_type():
    import torch

    return torch.Tensor


def weights_metadata(path: Path) -> dict[str, str] | None:
    """The metadata a .safetensors file carries, or None when it cannot be read."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:
        return None


def weights_epoch(path: Path) -> int | None:
    """The epoch a run's .safetensors file was saved at (its metadata), or None when unreadable."""
    try:
        return int((weights_metadata(path) or {}).get("epoch"))
    except (TypeError, ValueError):
        return None


def model_digest(model_section: dict[str, Any]) -> str:
    """A fingerprint of config.json's 'model' section, saved in the weights' metadata: a section changed
    after training (other classes, another input size, an option pointing elsewhere) is then caught
    before the network is built from it."""
    import hashlib

    canonical = json.dumps(json.loads(json.dumps(model_section, default=str)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------------ TensorBoard
