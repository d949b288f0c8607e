"""Models on the Hugging Face Hub: `zoo push` uploads a trained run of any task in one commit, `zoo pull`
and `hf-hub:ID[@REV]` bring one back into the Hugging Face cache, where it loads as a run does.

What a pushed repo holds: `model.safetensors` (the weights, never a pickle), `config.json` (the run's
config with the model section that rebuilds the network, plus what it needs: task, plugin and version
range, zoo-core version, format), `README.md` (a model card the Hub understands, with a model-index of
the validation metrics), the metrics files, the curves and the task's report images, and with
`--with onnx` the exported model. A model timm can load as it is (a timm backbone and one linear layer
with one output per class) is pushed in timm's format too, so `timm.create_model("hf-hub:ID",
pretrained=True)` loads it (timm_hub.py); and a checkpoint pushed by timm is a backbone and a pretrained
model here. Everything goes through huggingface_hub, so HF_TOKEN, the stored
login (`hf auth login`), HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE work as users know them. Only the
files zoo reads are ever downloaded, and only safetensors weights are ever loaded.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..base.errors import ZooError

PREFIX = "hf-hub:"
MODEL_FORMAT = "zoo-model/1"  # config.json of a pushed model; a newer major version is refused
# What `zoo pull` downloads: never a pickle (.bin, .pt, .pth, .ckpt), whatever else the repo holds.
DOWNLOADED = ["config.json", "model.safetensors", "loss.safetensors", "README.md", "metrics.jsonl", "metrics.csv", "*.png", "*.onnx"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_ref(text: str, registry: str | Path | None = None) -> HubRef:
    """`namespace/name[@revision]`, with or without `hf-hub:`, or the name of a registry model with a repo."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    text = text[len(PREFIX):] if text.startswith(PREFIX) else text
    name, _, revision = text.partition("@")
    if "/" not in name:
        from ..registry.registry_file import find_model

        model = find_model(name, registry)
        if model is None or not model.get("repo"):
            raise ZooError(f"'{name}' is neither a Hub repo id (namespace/name) nor a model with a repo in the registry; "
                           "zoo list shows the registry")
        name, revision = model["repo"], revision or model.get("revision")
    try:
        validate_repo_id(name)
    except HFValidationError as e:
        raise ZooError(f"'{name}': not a valid Hub repo id ({str(e).splitlines()[0]})") from None
    return HubRef(name, revision or None)


@contextmanager
def hub_errors(what: str, ref: HubRef | None = None) -> Iterator[None]:
    """huggingface_hub's and the network's exceptions as one line that says what to do. The token is
    never part of a message."""
    from huggingface_hub import errors

    from ..model.network import hf_endpoint

    try:
        yield
    except ZooError:
        raise
    except errors.RevisionNotFoundError:
        raise ZooError(f"{what}: revision '{ref.revision if ref else '?'}' of {ref.repo_id if ref else 'the repo'} "
                       "does not exist (a branch, a tag or a commit id)") from None
    except errors.RepositoryNotFoundError:
        raise ZooError(f"{what}: repository {ref.repo_id if ref else ''} not found, or private and the token may not "
                       "read it; log in with `hf auth login` or set HF_TOKEN") from None
    except errors.LocalEntryNotFoundError as e:  # (a subclass of EntryNotFoundError: first)
        cause = e.__cause__ or e.__context__
        if isinstance(cause, errors.HfHubHTTPError):  # the Hub answered, with an error: say which
            with hub_errors(what, ref):
                raise cause from None
        raise ZooError(f"{what}: {ref or 'the model'} is not in the local cache and the Hub cannot be asked "
                       "(HF_HUB_OFFLINE is set, or it is unreachable); run this again where the Hub can be reached "
                       "(once pulled, a model works offline)") from None
    except errors.EntryNotFoundError as e:
        raise ZooError(f"{what}: a file is missing from {ref or 'the repo'} ({str(e).splitlines()[0][:120]})") from None
    except errors.HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status == 401:
            raise ZooError(f"{what}: the Hub refused the token (HTTP 401): it is missing or invalid; "
                           "log in with `hf auth login` or set HF_TOKEN") from None
        if status == 403:
            raise ZooError(f"{what}: forbidden (HTTP 403): the token may not do this to {ref or 'the repo'}; "
                           "use a token with write access to that namespace") from None
        if status is not None and status >= 500:
            raise ZooError(f"{what}: the Hub at {hf_endpoint()} failed (HTTP {status}); try again later") from None
        raise ZooError(f"{what}: the Hub answered HTTP {status} ({str(e).splitlines()[0][:160]})") from None
    except (OSError, TimeoutError) as e:  # connection refused, reset, DNS
        raise ZooError(f"{what}: cannot reach the Hub at {hf_endpoint()} ({type(e).__name__}); check the network or "
                       "HF_ENDPOINT, or use a cached model with HF_HUB_OFFLINE=1") from None
    except Exception as e:
        if type(e).__module__.startswith(("httpx", "httpcore")):  # the client's own timeouts and network errors
            raise ZooError(f"{what}: cannot reach the Hub at {hf_endpoint()} ({type(e).__name__}); check the network "
                           "or HF_ENDPOINT, or use a cached model with HF_HUB_OFFLINE=1") from None
        raise


# -------------------------------------------------------------------------------------------------- push

def _plugin_of(task_name: str) -> dict[str, str]:
    """The distribution that brings a task, with the version range a pushed model needs."""
    from ..registry.plugins import get_zoo

    zoo = get_zoo()
    plugin = zoo.tasks.get(task_name).plugin
    info = next(p for p in zoo.plugins if p.name == plugin)
    major_minor = ".".join(info.version.split(".")[:2])
    return {"distribution": info.source, "version": info.version, "requires": f"{info.source}>={major_minor}"}


def hub_config(saved: dict[str, Any]) -> dict[str, Any]:
    """config.json of a pushed model: the run's config (the model section rebuilds the network) plus
    what a user needs to run it elsewhere."""
    from ..registry.plugins import _core_version

    return {**saved, "format": MODEL_FORMAT, "run_format": saved.get("format"), "zoo_version": _core_version(),
            "plugin": _plugin_of(saved["model"]["task"])}


def push(run_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
         message: str | None = None, with_formats: tuple[str, ...] = (), registry: str | Path | None = None,
         license: str | None = None, export: Callable[[Path, str, Path], Path] | None = None) -> dict[str, Any]:
    """Upload a run in one commit; returns {"url", "commit", "files"}. `with_formats` are exported beside
    the weights by `export(run_dir, fmt, path) -> written file` (the API's: the Hub sits below prediction)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from ..training.rundir import LOSS_WEIGHTS, read_config, read_metrics
    from .modelcard import model_card

    run_dir = Path(run_dir)
    saved = read_config(run_dir)
    ref = parse_ref(repo_id)
    if ref.revision:
        raise ZooError(f"{repo_id}: name the branch with --revision, not @")
    weights = run_dir / "best.safetensors"
    if not weights.is_file():
        raise ZooError(f"{run_dir}: no best.safetensors to push (did training finish an epoch?)")
    config = hub_config(saved)
    files: dict[str, bytes | Path] = {"model.safetensors": weights}
    layout = _timm_layout(run_dir, weights, saved)
    if layout is not None:  # one weights file in timm's names, which zoo reads back through the renaming
        timm_weights, timm_fields, config["weights_layout"] = layout
        config = {**timm_fields, **config}
        files["model.safetensors"] = timm_weights
    files["config.json"] = json.dumps(config, indent=2).encode()
    if (run_dir / LOSS_WEIGHTS["best"]).is_file():  # the loss's trained parameters, for zoo eval
        files[LOSS_WEIGHTS["model"]] = run_dir / LOSS_WEIGHTS["best"]
    for name in ("metrics.jsonl", "metrics.csv"):
        if (run_dir / name).is_file():
            files[name] = run_dir / name
    for png in sorted(run_dir.glob("*.png")):
        files[png.name] = png
    for fmt in with_formats:
        path = export(run_dir, fmt, run_dir / f".push-model.{fmt}")
        files[f"model{path.suffix if path.suffix else '.' + fmt}"] = path.read_bytes()
        path.unlink()
    files["README.md"] = model_card(config, read_metrics(run_dir), ref.repo_id, sorted(files), license).encode()
    from ..model.network import hf_endpoint, require_reachable

    api = HfApi()
    require_reachable(hf_endpoint(), f"zoo push {ref.repo_id}", hint="check the network or HF_ENDPOINT")
    with hub_errors("zoo push", ref):
        url = api.create_repo(ref.repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(ref.repo_id, branch=revision, exist_ok=True)
        info = api.create_commit(
            ref.repo_id, operations=[CommitOperationAdd(path_in_repo=n, path_or_fileobj=f if isinstance(f, bytes) else str(f))
                                     for n, f in files.items()],
            commit_message=message or f"zoo push: {saved['model']['task']} run {run_dir.name}", revision=revision)
    result = {"url": str(url), "commit": info.oid, "files": sorted(files), "revision": revision or "main"}
    if registry:
        from ..registry.registry_file import upsert_model

        upsert_model(registry, ref.repo_id.split("/")[-1], {
            "task": saved["model"]["task"], "plugin": config["plugin"]["distribution"],
            "backbone": saved["model"]["backbone"], "repo": ref.repo_id, "revision": info.oid,
            "metrics": {k: v for k, v in saved.get("best", {}).items()}, "license": license or "unknown"})
    return result


def _timm_layout(run_dir: Path, weights: Path, saved: dict[str, Any]) -> tuple[bytes, dict, dict] | None:
    """The run's weights in timm's names and timm's config fields, when timm can load the model as it is."""
    from safetensors.torch import save

    from ..training.rundir import rebuild, weights_metadata
    from .timm_hub import timm_layout

    model, _, _ = rebuild(run_dir)
    layout = timm_layout(model, saved["model"])
    if isinstance(layout, str):
        return None
    state, fields, renaming = layout
    data = save({k: v.detach().clone().contiguous() for k, v in state.items()}, metadata=weights_metadata(weights))
    return data, fields, renaming


# -------------------------------------------------------------------------------------------------- pull

def pull(target: str, registry: str | Path | None = None) -> tuple[Path, HubRef]:
    """Download a pushed model (only the files zoo reads) into the Hugging Face cache; its snapshot folder.
    Works from the cache alone with HF_HUB_OFFLINE=1."""
    from huggingface_hub import snapshot_download

    from ..model.network import hf_endpoint, hf_offline, reachable

    ref = parse_ref(target, registry)
    # An unreachable Hub costs huggingface_hub a minute of retries; a cached copy is used at once instead.
    local_only = hf_offline() or not reachable(hf_endpoint())
    with hub_errors("zoo pull", ref), _progress_bars(sys.stderr.isatty()):
        folder = Path(snapshot_download(ref.repo_id, revision=ref.revision, allow_patterns=DOWNLOADED,
                                        local_files_only=local_only))
    if not (folder / "model.safetensors").is_file():
        raise ZooError(f"{ref}: no model.safetensors in the repo{_pickle_note(ref)}; zoo loads safetensors only and "
                       "never unpickles a file from the Hub")
    check_compatible(folder, ref)
    return folder, ref


def is_timm_folder(folder: Path) -> bool:
    """A pulled checkpoint written by timm (push_to_hf_hub), not by zoo."""
    from .timm_hub import is_timm_config

    try:
        return is_timm_config(json.loads((folder / "config.json").read_text()))
    except (OSError, ValueError):
        return False


@contextmanager
def _progress_bars(shown: bool) -> Iterator[None]:
    """huggingface_hub's download bars in a terminal; none in logs and pipes, where they are noise."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if not shown:
        disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _pickle_note(ref: HubRef) -> str:
    from huggingface_hub import HfApi

    try:
        names = HfApi().list_repo_files(ref.repo_id, revision=ref.revision)
    except Exception:
        return ""
    pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES)]
    return f" (it offers only pickled weights: {', '.join(pickles[:3])})" if pickles else ""


def check_compatible(folder: Path, ref: HubRef) -> dict[str, Any]:
    """The pushed config, if this zoo can run it: a known format and an installed task plugin, or a timm
    checkpoint (a backbone, and with a classifier a pretrained model)."""
    from ..registry.plugins import get_zoo
    from .timm_hub import is_timm_config

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ZooError(f"{ref}: no readable config.json; not a model pushed with zoo push or timm") from None
    if not isinstance(config, dict):
        raise ZooError(f"{ref}: config.json is not a JSON object; not a model pushed with zoo push or timm")
    if is_timm_config(config):
        return config
    fmt = str(config.get("format", ""))
    m = re.fullmatch(r"zoo-model/(\d+)", fmt)
    if not m:
        raise ZooError(f"{ref}: config.json is neither a zoo model (format {fmt!r}) nor a timm model (no "
                       "'architecture'); zoo reads models pushed with zoo push or timm's push_to_hf_hub")
    if int(m.group(1)) > int(MODEL_FORMAT.split("/")[1]):
        raise ZooError(f"{ref}: pushed by a newer zoo ({config.get('zoo_version', '?')}, format {fmt}); "
                       "upgrade: pip install -U zoo-core")
    task = config.get("model", {}).get("task")
    if task not in get_zoo().tasks:
        plugin = config.get("plugin", {})
        hint = f": pip install '{plugin['requires']}'" if plugin.get("requires") else ""
        raise ZooError(f"{ref}: needs the task '{task}', which no installed plugin brings{hint}")
    return config


def hub_backbone(name: str, *, pretrained: bool = True, in_chans: int | None = None, image_size: int | None = None):
    """`--backbone hf-hub:ID[@REV]`: the backbone of a pushed model, with its trained weights, to start
    a new training from (in_chans and image_size are the pushed model's own); or a timm checkpoint's
    network, its classifier kept aside as the pretrained head."""
    from ..base.artifacts import load_weights
    from ..model.model import build_model
    from ..registry.plugins import get_zoo
    from ..training.rundir import read_config

    folder, ref = pull(name)
    if is_timm_folder(folder):
        from .timm_hub import timm_backbone

        return timm_backbone(folder, f"hf-hub:{ref.repo_id}@{folder.name}", pretrained=pretrained,
                             in_chans=in_chans, image_size=image_size)
    saved = read_config(folder)
    model = build_model(get_zoo(), saved["model"])
    if pretrained:
        load_weights(model, folder / "model.safetensors", rename=(saved.get("weights_layout") or {}).get("rename"))
    backbone = model.backbone
    backbone.pretrained_source = f"hf-hub:{ref.repo_id}@{folder.name}" if pretrained else "none"
    return backbone
