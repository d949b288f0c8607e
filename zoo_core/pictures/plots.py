"""Pictures people would rather look at than read: training curves, confusion matrices,
predictions drawn on images. Written atomically, with the non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..base.artifacts import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


MAX_CURVE_PANELS = 12
CURVE_COLUMNS = 4


def plot_curves(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Loss and each metric per epoch, train against val; the unfreeze epoch marked. A loss's named
    parts (loss_<part>) share the loss panel, and a metric's baseline (baseline_<metric>) is drawn as a
    line on that metric's panel, so a run with several heads shows each head's loss and metric."""
    plt = _pyplot()
    both = [k[4:] for k in rows[0] if k.startswith("val_") and isinstance(rows[0][k], (int, float))
            and f"train_{k[4:]}" in rows[0]]
    parts = [m for m in both if m.startswith("loss_")]
    metrics = ["loss"] + [m for m in both if m != "loss" and m not in parts
                          and not m.startswith("baseline_")][:MAX_CURVE_PANELS - 1]
    columns = min(CURVE_COLUMNS, len(metrics))
    n_rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(4.2 * columns, 3.4 * n_rows), squeeze=False)
    epochs = [r["epoch"] for r in rows]
    unfreeze = next((r["epoch"] for a, r in zip(rows, rows[1:]) if a.get("backbone_frozen") and not r.get("backbone_frozen")), None)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for ax, m in zip(axes.flat, metrics):
        for split, style in (("train", "o-"), ("val", "s-")):
            values = [r.get(f"{split}_{m}") for r in rows]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, ms=3, label=split)
        for i, part in enumerate(parts if m == "loss" else []):
            for split, style in (("train", ":"), ("val", "-")):
                ax.plot(epochs, [r.get(f"{split}_{part}") for r in rows], style, color=f"C{i + 2}", lw=1.2,
                        label=f"{split} {part[5:]}")
        baseline = [r.get(f"val_baseline_{m}") for r in rows]
        if any(v is not None for v in baseline):
            ax.plot(epochs, baseline, "--", color="grey", lw=1, label="val baseline")
        if unfreeze:
            ax.axvline(unfreeze - 0.5, color="grey", ls=":", lw=1, label="backbone unfrozen")
        ax.set_title(m.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if m == "loss" and parts else 8)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str = "") -> Path:
    """Rows are true classes, columns predictions; each cell shows the count, colour the row share."""
    import numpy as np

    plt = _pyplot()
    cm = np.asarray(matrix, dtype=float)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = min(14, max(4, 0.55 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title or f"confusion matrix (accuracy {np.trace(cm) / max(cm.sum(), 1):.3f})")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


def draw_predictions(images: Sequence[Any], captions: Sequence[str], path: Path,
                     correct: Sequence[bool | None] | None = None, columns: int = 6) -> Path:
    """A grid of images with their predicted labels (green when right, red when wrong)."""
    plt = _pyplot()
    n = len(images)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (ax, img, cap) in enumerate(zip(axes.flat, images, captions)):
        ax.imshow(img, cmap="gray" if getattr(img, "mode", "") == "L" else None)
        ok = correct[k] if correct is not None else None
        ax.set_title(cap, fontsize=8, color={True: "green", False: "red"}.get(ok, "black"))
    fig.tight_layout()
    return _save(fig, path)


def plot_feature_maps(image: Any, maps: dict[str, Any], path: Path, channels: int = 16, columns: int = 8) -> Path:
    """The input image as the model sees it (resized, cropped), then for each layer its `channels` most
    active channels (highest mean activation), `columns` to a row: the textbook's "visualising
    intermediate activations". `maps` holds one (C, H, W) tensor per layer name, shallow to deep."""
    import math

    plt = _pyplot()
    blocks = []
    for name, fmap in maps.items():
        fmap = fmap.detach().float().cpu()
        top = fmap.mean(dim=(1, 2)).argsort(descending=True)[:channels].tolist()
        blocks.append((name, tuple(fmap.shape), [(i, fmap[i].numpy()) for i in top]))
    cell = 1.3
    heights = [2.4] + [math.ceil(len(chs) / columns) * cell + 0.4 for _, _, chs in blocks]
    fig = plt.figure(figsize=(columns * cell, sum(heights)))
    subfigs = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    ax = subfigs[0].subplots()
    ax.imshow(image, cmap="gray" if getattr(image, "ndim", 3) == 2 or getattr(image, "mode", "") == "L" else None)
    ax.set_title("input", fontsize=9)
    ax.axis("off")
    for sub, (name, shape, chs) in zip(subfigs[1:], blocks):
        sub.suptitle(f"{name}  {'x'.join(map(str, shape))} (C x H x W), {len(chs)} most active channels",
                     fontsize=9, x=0.01, ha="left")
        axes = sub.subplots(math.ceil(len(chs) / columns), columns, squeeze=False)
        for a in axes.flat:
            a.axis("off")
        for a, (i, arr) in zip(axes.flat, chs):
            a.imshow(arr, cmap="viridis")
            a.set_title(f"ch {i}", fontsize=7)
    return _save(fig, path)
