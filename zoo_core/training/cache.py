"""Caches that outlive a run: backbone features on disk (their keys, their store, its limit), and what
`zoo cache list|clear` shows and removes of them and of the decoded images.

Feature cache. A frozen backbone maps an image to the same features every time, so they are computed
once and kept under `$ZOO_CACHE/features/<key>/` (the root export's ONNX cache uses: artifacts.cache_dir).
The key is a digest of everything that changes a feature: the backbone's name, options and weights (a
digest of its state dict, so a --weights file, a pretrained source or a seeded random init each get their
own), the task and its eval transform (class, fit), the data config (input size, mean, std,
interpolation, crop), the feature kind the head consumes (pooled or pyramid), the precision it ran in,
and the torch/timm versions. Inside an entry, each image's features are stored under the digest of its
content: the file's bytes (blake2b), not (path, size, mtime), because copies and checkouts keep or
reset mtimes at will and a feature cache lives for weeks, while hashing a few hundred JPEGs takes
milliseconds next to a backbone forward of ~30 ms each on a CPU. Keyed by content, the same images are
found again after a re-split (--seed, --val-fraction), a renamed folder or a copied dataset.

An entry is a folder of safetensors shards (one per computation: the features it had to compute),
written crash-safely (temp file + rename, artifacts.atomic_write): a reader only ever opens renamed
shards, and a shard that fails to open is treated as missing and removed. The whole cache is bounded
by `cache_disk_gb`: beyond it the least recently used shards are evicted (a shard's mtime is its last
use), and a run whose own features exceed it keeps them in memory only, saying so.

The decoded-image cache is data/decoded.py; computing and serving the cached features, and the CPU
default that uses them, are features.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..base.artifacts import TMP_SUFFIX, atomic_write, cache_dir, kill_point
from ..base.errors import ZooError
from ..data.decoded import FORMAT, IMAGES, _hash

FEATURES = "features"  # $ZOO_CACHE/features/<key>/{about.json, <shard>.safetensors}
STALE_TEMP_SECONDS = 3600  # a temp file this old belongs to a process that died mid-write


# ------------------------------------------------------------------------------------ fingerprints

_FILE_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) -> content digest, within one process


def tensor_sum(t: torch.Tensor) -> str:
    """The checksum a cache entry is verified by: shape, dtype and bytes."""
    t = t.detach().cpu().contiguous()
    data = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
    return _hash(str(tuple(t.shape)).encode(), str(t.dtype).encode(), data)


def file_digest(path: str | Path) -> str:
    """The digest of a file's bytes (memoised per process by its stat, so one run reads each file once)."""
    st = os.stat(path)
    stat_key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if stat_key not in _FILE_DIGESTS:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _FILE_DIGESTS[stat_key] = h.hexdigest()
    return _FILE_DIGESTS[stat_key]


def image_digest(image: Any) -> str:
    """What identifies a raw sample's image: a file's content, or the pixels of an in-memory image."""
    if isinstance(image, (str, Path)):
        return file_digest(image)
    if hasattr(image, "tobytes") and hasattr(image, "mode"):  # PIL
        return _hash(f"{image.mode}{image.size}".encode(), image.tobytes())
    arr = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return _hash(f"{arr.dtype}{arr.shape}".encode(), np.ascontiguousarray(arr).tobytes())


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of a module's state dict: names, shapes, dtypes and values."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        if t.numel():  # the raw bytes, whatever the dtype (bfloat16 has no numpy type)
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def describe_transform(transform: Any) -> dict[str, Any]:
    """What a feature depends on in the eval transform: its class and, for zoo's Preprocess, the fit."""
    return {"class": f"{type(transform).__module__}.{type(transform).__qualname__}",
            "fit": getattr(transform, "fit", None)}


def feature_key(model, task, eval_transform, cfg: dict[str, Any], machine) -> tuple[str, dict[str, Any]]:
    """(key, about): the digest naming a feature-cache entry and the facts it was made from (shown by
    `zoo cache list`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        timm_version = version("timm")  # the installed one: whether this process imported it yet must not matter
    except PackageNotFoundError:
        timm_version = None
    about = {
        "format": FORMAT,
        "task": task.name,
        "backbone": cfg["backbone"],
        "backbone_options": cfg["backbone_options"],
        "weights": weights_digest(model.backbone),
        "pretrained_source": getattr(model.backbone, "pretrained_source", ""),
        "data_config": model.backbone.data_config.to_dict(),
        "transform": describe_transform(eval_transform),
        "feature": model.head_input,
        "precision": str(machine.dtype).split(".")[-1] + (" autocast" if machine.amp else ""),
        "dtype": "float32",  # stored as float32 whatever the precision they were computed in
        "versions": {"torch": torch.__version__, "timm": timm_version},
    }
    digestible = {k: v for k, v in about.items() if k != "pretrained_source"}  # the weights digest decides
    return _hash(json.dumps(digestible, sort_keys=True, default=str).encode())[:24], about


# ------------------------------------------------------------------------------ the cache on disk

def cache_root() -> Path:
    return cache_dir()


def _files(root: Path) -> list[Path]:
    """Every committed cache file (shards and decoded images), not temp files."""
    out = []
    for sub, pattern in ((FEATURES, "*/*.safetensors"), (IMAGES, "*.npz")):
        base = root / sub
        if base.is_dir():
            out += [p for p in base.glob(pattern) if not p.name.startswith(".")]
    return out


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def remove_stale_temp(root: Path, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Temp files of writers that died mid-write (never read: readers open renamed files only)."""
    now = time.time()
    for p in list(root.glob(f"{FEATURES}/*/.*{TMP_SUFFIX}")) + list(root.glob(f"{IMAGES}/.*{TMP_SUFFIX}")):
        try:
            if now - p.stat().st_mtime > older_than:
                p.unlink()
        except OSError:
            pass


def enforce_limit(limit_gb: float, keep: set[Path] = frozenset(), log: Callable[[str], None] | None = None) -> int:
    """Evict least recently used cache files until the cache holds at most `limit_gb`; files in `keep`
    (what the running job uses) go last. Returns the bytes freed."""
    root = cache_root()
    files = [(p, p.stat()) for p in _files(root) if p.exists()]
    total = sum(st.st_size for _, st in files)
    limit = limit_gb * 2**30
    freed, evicted = 0, 0
    for p, st in sorted(files, key=lambda f: (f[0] in keep, f[1].st_mtime)):
        if total - freed <= limit:
            break
        try:
            p.unlink()
            freed += st.st_size
            evicted += 1
        except OSError:
            pass
    for entry in (root / FEATURES).glob("*") if (root / FEATURES).is_dir() else []:
        if entry.is_dir() and not any(entry.glob("*.safetensors")):
            shutil.rmtree(entry, ignore_errors=True)
    if evicted and log:
        log(f"cache: evicted {evicted} least recently used file(s), {freed / 2**20:.1f} MiB, to stay within "
            f"cache_disk_gb={limit_gb:g} (raise it with --set cache_disk_gb=N)")
    return freed


class FeatureStore:
    """One feature-cache entry: per-image features by image digest, in safetensors shards."""

    def __init__(self, key: str, about: dict[str, Any], limit_gb: float, log: Callable[[str], None]):
        self.key, self.about, self.limit_gb, self.log = key, about, limit_gb, log
        try:
            self.dir = cache_root() / FEATURES / key
        except OSError as e:  # $ZOO_CACHE unusable (a file, read-only): the run goes on without the reuse
            log(f"cache: {os.environ.get('ZOO_CACHE') or 'the cache folder'} is unusable ({e.strerror or e}); "
                "features are computed, not saved")
            self.dir = None
        self.used: set[Path] = set()

    def _shards(self) -> list[Path]:
        if self.dir is None or not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*.safetensors") if not p.name.startswith("."))

    def lookup(self, digests: list[str]) -> dict[str, Any]:
        """Features of the digests found: a tensor, or a tuple of tensors (one per pyramid level)."""
        from safetensors import safe_open

        wanted, found = set(digests), {}
        shapes: set[tuple] = set()  # every image's features have one shape in an entry
        for shard in self._shards():
            try:
                with safe_open(str(shard), framework="pt") as f:
                    names = [n for n in f.keys() if n.split("/")[0] in wanted and n.split("/")[0] not in found]
                    if not names:
                        continue
                    tensors = {n: f.get_tensor(n) for n in names}
                    sums = json.loads((f.metadata() or {}).get("sums", "null") or "null")
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            except Exception as e:  # damaged on disk (the temp + rename protocol never leaves half a shard)
                self.log(f"cache: {shard} is unreadable ({type(e).__name__}); removing it, its features are recomputed")
                shard.unlink(missing_ok=True)
                continue
            # Every entry verified before it is trained on: scrambled bytes or a tensor swapped for another
            # shape or dtype fail their checksum (a shard without checksums is from before them).
            bad = next((n for n, t in tensors.items() if not isinstance(sums, dict) or t.dtype != torch.float32
                        or sums.get(n) != tensor_sum(t)), None)
            if bad is not None:
                self.log(f"cache: {shard} failed its check ({bad}); removing it, its features are recomputed")
                shard.unlink(missing_ok=True)
                continue
            levels: dict[str, dict[int, torch.Tensor]] = {}
            for n, t in tensors.items():
                digest, _, level = n.partition("/")
                levels.setdefault(digest, {})[int(level or 0)] = t
            for digest, by_level in levels.items():
                found[digest] = (by_level[0] if self.about["feature"] != "pyramid"
                                 else tuple(by_level[i] for i in sorted(by_level)))
                shapes.add(tuple(tuple(t.shape) for t in (found[digest] if isinstance(found[digest], tuple)
                                                          else (found[digest],))))
            self.used.add(shard)
            try:
                os.utime(shard)  # its mtime is its last use: least recently used shards are evicted first
            except OSError:
                pass
        if len(shapes) > 1:  # entries that disagree: none is trusted, all are recomputed (and re-saved)
            self.log(f"cache: {self.dir} holds features of {len(shapes)} different shapes; recomputing them")
            return {}
        return found

    def add(self, features: dict[str, Any]) -> None:
        """Write newly computed features as one shard (crash-safe), then keep the cache within its bound."""
        if not features or self.dir is None:
            return
        from safetensors.torch import save_file

        tensors = {}
        for digest, f in features.items():
            if isinstance(f, torch.Tensor):
                tensors[digest] = f.contiguous()
            else:
                tensors.update({f"{digest}/{i}": level.contiguous() for i, level in enumerate(f)})
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        if size > self.limit_gb * 2**30:
            self.log(f"cache: {size / 2**20:.1f} MiB of features not saved to disk: over cache_disk_gb={self.limit_gb:g} "
                     "(raise it with --set cache_disk_gb=N); they stay in memory for this run")
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            about = self.dir / "about.json"
            if not about.exists():
                atomic_write(about, lambda p: p.write_text(json.dumps({**self.about, "created": time.time()}, indent=2,
                                                                      default=str) + "\n"))
            shard = self.dir / f"{_hash(*sorted(d.encode() for d in features))[:16]}.safetensors"

            def write(p: Path) -> None:
                save_file(tensors, str(p), metadata={"format": str(FORMAT), "feature": self.about["feature"],
                                                     "sums": json.dumps({n: tensor_sum(t) for n, t in tensors.items()})})
                kill_point("feature-shard-written")  # the fault test kills here: a temp file, never a shard

            atomic_write(shard, write)
            self.used.add(shard)
            enforce_limit(self.limit_gb, keep=self.used, log=self.log)
        except OSError as e:  # a full or read-only disk costs the reuse, not the run
            self.log(f"cache: features not saved to {self.dir} ({e.strerror or e}); they stay in memory for this run")


# ------------------------------------------------------------------------------ zoo cache list|clear

def entries() -> list[dict[str, Any]]:
    """What the cache holds: one row per feature entry, and one for all decoded images."""
    root = cache_root()
    rows = []
    base = root / FEATURES
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        if not entry.is_dir():
            continue
        shards = [p for p in entry.glob("*.safetensors") if not p.name.startswith(".")]
        try:
            about = json.loads((entry / "about.json").read_text())
        except (OSError, ValueError):
            about = {}
        images = 0
        for s in shards:
            try:
                from safetensors import safe_open

                with safe_open(str(s), framework="pt") as f:
                    images += len({k.split("/")[0] for k in f.keys()})
            except Exception:
                pass
        dc = about.get("data_config", {})
        size = "x".join(str(v) for v in dc.get("input_size", [])[1:]) or "?"
        source = about.get("pretrained_source")
        weights = source if source not in (None, "", "none") else f"random init {str(about.get('weights', '?'))[:8]}"
        rows.append({"key": entry.name, "kind": "features", "images": images,
                     "bytes": sum(_size(p) for p in entry.iterdir()),
                     "last_used": max((p.stat().st_mtime for p in shards), default=entry.stat().st_mtime),
                     "what": f"{about.get('task', '?')}: {about.get('backbone', '?')} ({weights}), {size} px, "
                             f"{about.get('feature', '?')} features, {about.get('precision', '?')}"})
    images = [p for p in (root / IMAGES).glob("*.npz")] if (root / IMAGES).is_dir() else []
    if images:
        rows.append({"key": IMAGES, "kind": "decoded images", "images": len(images),
                     "bytes": sum(_size(p) for p in images), "last_used": max(p.stat().st_mtime for p in images),
                     "what": "decoded uint8 images (image-folder epochs without JPEG decoding)"})
    return rows


def clear(key: str | None = None, older_than_days: float | None = None) -> tuple[int, int]:
    """Remove cache files: all, one entry (a key prefix, or 'images'), or those unused for N days.
    Returns (files removed, bytes freed)."""
    root = cache_root()
    if key is not None:
        matches = [e["key"] for e in entries() if e["key"].startswith(key)]
        if not matches:
            raise ZooError(f"zoo cache clear {key}: no cache entry starts with that key (zoo cache list shows them)")
        if len(matches) > 1:
            raise ZooError(f"zoo cache clear {key}: {len(matches)} entries start with it; give more of the key")
        files = [p for p in _files(root) if p.parent.name == matches[0]]
    else:
        files = _files(root)
    if older_than_days is not None:
        cutoff = time.time() - older_than_days * 86400
        files = [p for p in files if p.stat().st_mtime < cutoff]
    freed = 0
    for p in files:
        freed += _size(p)
        p.unlink(missing_ok=True)
    remove_stale_temp(root, older_than=0 if key is None and older_than_days is None else STALE_TEMP_SECONDS)
    enforce_limit(float("inf"))  # removes the folders of emptied entries
    return len(files), freed
