"""Caches that outlive a run: backbone features on disk, decoded images in memory or on disk, and the
recipe that makes `zoo train TASK --data DIR` fast on a CPU by using them.

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

Decoded-image cache. Image files are decoded (and, only when much larger than the model's input,
reduced) once to uint8 and kept in memory while `image_cache_gb` allows, else on disk, so later
epochs touch no JPEG. What is kept is the image *before* any random augmentation, in the model's
channel mode: for images up to twice the input size that is the decoded image itself, so a run with
the cache is bit-for-bit the run without it; a larger image is kept with its shorter side at twice the
input size, which changes pixels slightly (a resize before the transform's own) and saves memory —
unless its target lives in its pixels (boxes, points, masks), which keeps it whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..base.artifacts import TMP_SUFFIX, atomic_write, cache_dir, kill_point
from ..base.distributed import SINGLE, Dist
from ..base.errors import ZooError
from ..data.transforms import has_geometry

FEATURES = "features"  # $ZOO_CACHE/features/<key>/{about.json, <shard>.safetensors}
IMAGES = "images"  # $ZOO_CACHE/images/<digest>.npy
FORMAT = 1  # bumped when what a cached feature means changes; part of every key
STALE_TEMP_SECONDS = 3600  # a temp file this old belongs to a process that died mid-write
# On a CPU the backbone runs over about this many input pixels at a time (8 images of 224 px): _features_in_chunks.
CPU_CHUNK_PIXELS = 8 * 224 * 224


def _hash(*chunks: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    for c in chunks:
        h.update(c)
    return h.hexdigest()


# ------------------------------------------------------------------------------------ fingerprints

_FILE_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) -> content digest, within one process


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
    for sub, pattern in ((FEATURES, "*/*.safetensors"), (IMAGES, "*.npy")):
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
        self.dir = cache_root() / FEATURES / key
        self.used: set[Path] = set()

    def _shards(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.safetensors") if not p.name.startswith(".")) if self.dir.is_dir() else []

    def lookup(self, digests: list[str]) -> dict[str, Any]:
        """Features of the digests found: a tensor, or a tuple of tensors (one per pyramid level)."""
        from safetensors import safe_open

        wanted, found = set(digests), {}
        for shard in self._shards():
            try:
                with safe_open(str(shard), framework="pt") as f:
                    names = [n for n in f.keys() if n.split("/")[0] in wanted and n.split("/")[0] not in found]
                    if not names:
                        continue
                    tensors = {n: f.get_tensor(n) for n in names}
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            except Exception as e:  # damaged on disk (the temp + rename protocol never leaves half a shard)
                self.log(f"cache: {shard} is unreadable ({type(e).__name__}); removing it, its features are recomputed")
                shard.unlink(missing_ok=True)
                continue
            levels: dict[str, dict[int, torch.Tensor]] = {}
            for n, t in tensors.items():
                digest, _, level = n.partition("/")
                levels.setdefault(digest, {})[int(level or 0)] = t
            for digest, by_level in levels.items():
                found[digest] = (by_level[0] if self.about["feature"] != "pyramid"
                                 else tuple(by_level[i] for i in sorted(by_level)))
            self.used.add(shard)
            try:
                os.utime(shard)  # its mtime is its last use: least recently used shards are evicted first
            except OSError:
                pass
        return found

    def add(self, features: dict[str, Any]) -> None:
        """Write newly computed features as one shard (crash-safe), then keep the cache within its bound."""
        if not features:
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
                save_file(tensors, str(p), metadata={"format": str(FORMAT), "feature": self.about["feature"]})
                kill_point("feature-shard-written")  # the fault test kills here: a temp file, never a shard

            atomic_write(shard, write)
            self.used.add(shard)
            enforce_limit(self.limit_gb, keep=self.used, log=self.log)
        except OSError as e:  # a full or read-only disk costs the reuse, not the run
            self.log(f"cache: features not saved to {self.dir} ({e.strerror or e}); they stay in memory for this run")


# ------------------------------------------------------------------------------ cached features

class FeatureCollate:
    """Batches of cached samples: the task collates targets and geometry as usual, the inputs are the
    stacked features (a tensor, or one tensor per pyramid level)."""

    def __init__(self, task):
        self.task = task

    def __call__(self, samples: list[dict[str, Any]]):
        features = [s["image"] for s in samples]
        batch = self.task.collate([{**s, "image": torch.empty(0)} for s in samples])
        batch.inputs = (torch.stack(features) if isinstance(features[0], torch.Tensor)
                        else [torch.stack(level) for level in zip(*features)])
        return batch


@dataclass
class FeatureCounts:
    """How many images' features came from the disk cache and how many were computed (tests read it)."""

    reused: int = 0
    computed: int = 0


LAST_COUNTS = FeatureCounts()


@torch.no_grad()
def precompute_features(model, task, dataset, cfg: dict[str, Any], machine, data, limit_gb: float,
                        total_images: int, store: FeatureStore | None = None,
                        log: Callable[[str], None] = lambda m: None, dist: Dist = SINGLE) -> list[dict[str, Any]]:
    """What the head consumes (pooled features or the pyramid), once per image: a frozen backbone gives
    the same features every epoch, so the epochs after that cost only the head (the textbook's
    "features + linear"). `dataset` is a SampleDataset holding the eval transform. Features found in
    `store` are not computed again; new ones are added to it (by rank 0). Several processes each compute
    a share of the missing images and swap them, so every process holds all features for the price of
    1/N of the forward passes. Refuses, before filling memory, when the features would not fit `limit_gb`."""
    from tqdm import tqdm

    from .loaders import data_loader  # the one place loaders are configured

    raw_samples = [dict(dataset.raw[i]) for i in range(len(dataset))]
    digests = [image_digest(s["image"]) for s in raw_samples] if store is not None else []
    found = store.lookup(digests) if store is not None else {}
    per_image: list[Any] = [found.get(d) for d in digests] if store is not None else [None] * len(raw_samples)
    others: list[dict[str, Any] | None] = [None] * len(raw_samples)  # target, geometry, id of each sample

    def check_fits(f: Any) -> None:
        size = sum(t.numel() for t in (f if isinstance(f, tuple) else [f])) * 4
        needed = size * total_images / 2**30
        if needed > limit_gb:
            raise ZooError(f"--cache-features would hold {needed:.1f} GiB of features ({size / 2**20:.2f} MiB per image, "
                           f"{total_images} images), over cache_limit_gb={limit_gb:g}; use a smaller --image-size, "
                           "raise it with --set cache_limit_gb=N, or train without --cache-features")

    for i, f in enumerate(per_image):  # reused: the sample's other fields without running the backbone
        if f is None:
            continue
        if has_geometry(raw_samples[i].get("target")):
            others[i] = {k: v for k, v in dataset[i].items() if k != "image"}
        else:
            s = raw_samples[i]
            others[i] = {"target": s.get("target"), "id": s.get("id", str(s["image"]) if isinstance(s["image"], (str, Path)) else ""),
                         "geometry": None, **{k: v for k, v in s.items() if k not in ("image", "target", "id")}}
    if found:
        check_fits(next(iter(found.values())))
    missing = [i for i, f in enumerate(per_image) if f is None]
    mine = missing[dist.rank::dist.world]  # this process's share (all of them when alone)
    computed: dict[int, tuple[Any, dict[str, Any]]] = {}  # image index: (features, the sample's other fields)
    if mine:
        model.eval()
        subset = torch.utils.data.Subset(dataset, mine)
        loader = data_loader(subset, cfg, machine, data, lambda s: (s, task.collate(s)), shuffle=False)
        position = iter(mine)
        for raw, batch in tqdm(loader, desc="computing backbone features", unit="batch", disable=None, leave=False):
            inputs = batch.inputs.to(machine.device, non_blocking=True)
            if inputs.dim() == 4:  # channels_last: the convolutions' fast path on CPUs too (measured 1.4-2x on
                inputs = inputs.contiguous(memory_format=torch.channels_last)  # resnet18, efficientnet_lite0)
            with machine.autocast():
                features = _features_in_chunks(model, inputs, machine)
            batch_features = (list(features.float().cpu()) if isinstance(features, torch.Tensor)
                              else list(zip(*(level.float().cpu() for level in features))))
            if not computed and not found:
                check_fits(batch_features[0])
            for s, f in zip(raw, batch_features):
                computed[next(position)] = (f, {k: v for k, v in s.items() if k != "image"})
    if dist.active and missing:  # every process trains on all of them: swap the shares
        computed = {i: c for share in dist.all_gather(computed) for i, c in share.items()}
        if not found:  # a process whose share was empty checks too, so all refuse alike
            check_fits(computed[missing[0]][0])
    for i, (f, rest) in computed.items():
        per_image[i], others[i] = f, rest
    LAST_COUNTS.reused += len(per_image) - len(missing)
    LAST_COUNTS.computed += len(missing)
    if store is not None and dist.main:  # one writer; the shard holds every process's share
        store.add({digests[i]: per_image[i] for i in missing})
    return [{**o, "image": f} for o, f in zip(others, per_image)]


def _features_in_chunks(model, inputs: torch.Tensor, machine):
    """model.features of a batch; on a CPU in chunks of about 8 images of 224 px, whose activations stay
    in the processor's caches: on the 2-core VM, inference in chunks of 8 against one batch of 32 was
    2.6x faster for efficientnet_lite0 (190 against 73 img/s), 1.5x for resnet50 and 1.6x for
    mobilenetv3_large_100 (channels_last, 224 px). Eval mode: a chunk's features are the batch's."""
    chunk = max(1, CPU_CHUNK_PIXELS // (inputs.shape[-2] * inputs.shape[-1])) if inputs.dim() == 4 else len(inputs)
    if machine.device.type != "cpu" or chunk >= len(inputs):
        return model.features(inputs)
    parts = [model.features(part) for part in inputs.split(chunk)]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return [torch.cat(levels) for levels in zip(*parts)]


def cache_features(model, task, data, cfg: dict[str, Any], machine, log: Callable[[str], None], dist: Dist = SINGLE):
    """(train features, val features, the DataSplits over them) for a run with --cache-features: both
    splits through the eval transform (features are computed once, so without random augmentation),
    reusing and filling the disk cache unless cache_disk_gb is 0."""
    from ..contract.components import DataSplits
    from ..data.transforms import SampleDataset

    eval_transform = data.val.transform
    store = None
    if cfg["cache_disk_gb"] > 0:
        key, about = feature_key(model, task, eval_transform, cfg, machine)
        store = FeatureStore(key, about, cfg["cache_disk_gb"], log)
        if dist.main:
            remove_stale_temp(cache_root())
    before = FeatureCounts(LAST_COUNTS.reused, LAST_COUNTS.computed)
    total = len(data.train) + len(data.val)
    splits = [precompute_features(model, task, SampleDataset(d.raw, eval_transform, d.channels, d.images), cfg, machine,
                                  data, cfg["cache_limit_gb"], total, store, log, dist)
              for d in (data.train, data.val)]
    reused, computed = LAST_COUNTS.reused - before.reused, LAST_COUNTS.computed - before.computed
    where = f" (cache {store.dir})" if store is not None else " (in memory only: cache_disk_gb=0)"
    shared = f" by {dist.world} processes, a share each" if dist.active and computed else ""
    log(f"features: {reused} reused, {computed} computed{shared}{where}")
    model.inputs_are_features = True
    features = DataSplits(splits[0], splits[1], data.info, data.skipped, data.description + ", backbone features cached",
                          in_memory=True, batch_sampler=data.batch_sampler)
    return splits[0], splits[1], features


# ---------------------------------------------------------------------------- decoded images

def _jpeg_plain(path: Path, channels: int) -> bool:
    """A JPEG torchvision decodes exactly as PIL does (tests/test_cache.py checks it): a colour JPEG read
    in colour or a grayscale one in grayscale, upright. Colour to gray (PIL's own weights), CMYK,
    EXIF-rotated and other files keep PIL's decoding."""
    from PIL import Image

    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return False
    try:
        with Image.open(path) as img:  # reads the header only
            return (img.format == "JPEG" and img.mode == ("L" if channels == 1 else "RGB")
                    and img.getexif().get(0x0112, 1) == 1)
    except Exception:
        return False


def decode(path: str | Path, channels: int) -> np.ndarray:
    """An image file as uint8 (H, W) or (H, W, 3) in the model's channel mode: torchvision's libjpeg-turbo
    decoder for plain JPEGs (faster than PIL, the same pixels), PIL (zoo's load_image: EXIF, 16-bit,
    transparency, CMYK) for everything else."""
    from ..data.images import open_image

    path = Path(path)
    if _jpeg_plain(path, channels):
        try:
            import warnings

            from torchvision.io import ImageReadMode, decode_jpeg, read_file

            with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec; PIL takes over if it goes
                warnings.simplefilter("ignore", DeprecationWarning)
                t = decode_jpeg(read_file(str(path)), mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
            return t[0].numpy() if channels == 1 else t.permute(1, 2, 0).contiguous().numpy()
        except Exception:  # whatever libjpeg refuses, PIL gets a chance at
            pass
    return np.asarray(open_image(path, channels))


class DecodedImages:
    """Image files decoded once to uint8 and reused every epoch: in memory up to `memory_gb`, then (mode
    auto or disk) as .npy files under $ZOO_CACHE/images keyed by (path, size, mtime) — the disk tier is a
    speed cache for files read every epoch, where a stat is enough and a content hash would read each file
    anyway. Hands out PIL images, so every transform sees what it would without the cache."""

    def __init__(self, channels: int, max_side: int | None, mode: str = "auto", memory_gb: float = 2.0,
                 disk_gb: float = 10.0):
        self.channels, self.max_side, self.mode = channels, max_side, mode
        self.memory_limit, self.disk_gb = memory_gb * 2**30, disk_gb
        self.memory: dict[str, np.ndarray] = {}
        self.held = 0
        self.memory_full = False
        self.decoded = 0  # files decoded (tests and the bench read it)

    @classmethod
    def for_run(cls, cfg: dict[str, Any], data_config) -> "DecodedImages | None":
        if cfg["image_cache"] == "off":
            return None
        _, h, w = data_config.input_size
        return cls(data_config.channels, 2 * max(h, w), cfg["image_cache"], cfg["image_cache_gb"], cfg["cache_disk_gb"])

    def _disk_path(self, path: Path, exact: bool) -> Path:
        st = path.stat()
        side = None if exact else self.max_side
        key = _hash(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.channels}|{side}|{FORMAT}".encode())
        return cache_dir(IMAGES) / f"{key}.npy"

    def _reduce(self, arr: np.ndarray, exact: bool) -> np.ndarray:
        """Only images larger than twice the input size are reduced (see the module's docstring), and
        never where the target is in the image's pixels (boxes, points, masks: `exact`)."""
        h, w = arr.shape[:2]
        if exact or self.max_side is None or min(h, w) <= self.max_side:
            return arr
        from PIL import Image

        r = self.max_side / min(h, w)
        return np.asarray(Image.fromarray(arr).resize((max(1, round(w * r)), max(1, round(h * r))), Image.BILINEAR,
                                                      reducing_gap=None))

    def load(self, path: str | Path, exact: bool = False):
        """The image at `path` as PIL; `exact`: at its own size whatever it is (its target is in its pixels)."""
        from PIL import Image

        key = f"{path}|{exact}"
        arr = self.memory.get(key)
        if arr is None:
            arr = self._fetch(Path(path), exact, key)
        return Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")

    def _fetch(self, path: Path, exact: bool, key: str) -> np.ndarray:
        memory_ok = self.mode in ("auto", "memory") and not self.memory_full
        disk_ok = self.mode in ("auto", "disk") and self.disk_gb > 0
        if disk_ok and not memory_ok:
            try:
                cached = self._disk_path(path, exact)
                arr = np.load(cached, allow_pickle=False)
                os.utime(cached)  # its last use, for eviction
                return arr
            except (OSError, ValueError):  # not there yet (or damaged): decode it
                pass
        arr = self._reduce(decode(path, self.channels), exact)
        self.decoded += 1
        if memory_ok and self.held + arr.nbytes <= self.memory_limit:
            self._keep(key, arr)
            return arr
        self.memory_full = memory_ok or self.memory_full
        if disk_ok:
            def write(p: Path) -> None:
                with open(p, "wb") as f:
                    np.save(f, arr, allow_pickle=False)

            try:
                atomic_write(self._disk_path(path, exact), write)
            except OSError:  # a full disk costs the speed-up, not the run
                pass
        return arr

    def _keep(self, key: str, arr: np.ndarray) -> None:
        self.memory[key] = arr
        self.held += arr.nbytes


# --------------------------------------------------------------------------- the CPU default

def apply_cpu_recipe(cfg: dict[str, Any], chosen: set[str], log: Callable[[str], None] | None) -> None:
    """On a CPU, your own data (--data) with a pretrained backbone trains frozen on cached features unless
    you, a run file or the dataset's recipe chose the mode or the cache (`chosen`): full fine-tuning of
    a 224 px backbone takes minutes on a laptop where the head on cached features takes seconds.
    On a GPU the task's own (stronger, staged) recipe stays. The values are settings.CPU_RECIPE."""
    from ..base.device import pick_device
    from ..base.settings import CPU_RECIPE
    from ..model.backbones import SMALL_NETS

    if not cfg["cpu_recipe"] or cfg["data"] is None:
        return
    if not cfg["weights"] and (not cfg["pretrained"] or cfg["backbone"] in SMALL_NETS):
        return  # frozen random filters are worth nothing: from scratch, the task's recipe trains everything
    if chosen & {"mode", "cache_features"} or cfg["mode"] == "frozen" and cfg["cache_features"]:
        return
    try:
        if pick_device(cfg["device"]).type != "cpu":
            return
    except ZooError:
        return  # the device error is reported where the machine is set up
    cfg.update(CPU_RECIPE)
    if log:
        log(f"CPU: frozen backbone with cached features, {cfg['epochs']} epochs; pass --mode staged for full "
            "fine-tuning (or --no-cpu-recipe for the task's own recipe)")


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
    images = [p for p in (root / IMAGES).glob("*.npy")] if (root / IMAGES).is_dir() else []
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
