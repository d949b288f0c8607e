"""Retrieval and verification metrics over the whole validation set at once.

Open set (the primary figures): the images of identities held out of training; each image with another
of its identity is a query against all the others (leave-one-out). Closed set (closed_*): the held-out
images of training identities, among themselves. Baseline (baseline_*): the same open-set figures on the
backbone's own pooled features, when the backbone is frozen: untrained ImageNet features, no head.

- recall_at_k: a query with at least one image of its identity among its k nearest (cosine);
- map_at_r: mean average precision at R, R = the number of the query's own identity's other images
  (Musgrave et al. 2020: rewards ranking all of them first, unlike recall@1);
- roc_auc, tar_at_far_1e-3: verification on every pair, same identity or not, scored by cosine;
  TAR at FAR 1e-3 needs 1,000 different-identity pairs at least, else it is not given;
- same_cosine, diff_cosine: the mean cosine of same- and different-identity pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from zoo_core import Metrics, image_grid, load_image, write_json

KS = (1, 5, 10)
MAX_PAIRS = 4_000_000  # verification on a random sample of pairs beyond this (exact below)


def retrieval_scores(embeddings: torch.Tensor, identities: torch.Tensor) -> dict[str, float]:
    """The figures of one set of L2-normalised embeddings (see the module's docstring); {} without queries."""
    n = len(embeddings)
    if n < 2:
        return {}
    sims = embeddings.float() @ embeddings.float().T
    same = identities[:, None] == identities[None, :]
    eye = torch.eye(n, dtype=torch.bool)
    same &= ~eye
    positives = same.sum(1)
    queries = positives > 0
    if not bool(queries.any()):
        return {}
    ranked = sims.masked_fill(eye, -float("inf")).argsort(dim=1, descending=True)[:, :-1]  # self last, dropped
    hits = same.gather(1, ranked)[queries].float()
    out = {f"recall_at_{k}": float(hits[:, :k].amax(1).mean()) for k in KS if k < n}
    r = positives[queries].float()
    precision = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1)
    within_r = torch.arange(hits.shape[1])[None, :] < r[:, None]
    out["map_at_r"] = float(((precision * hits * within_r).sum(1) / r).mean())

    i, j = torch.triu_indices(n, n, 1)
    if len(i) > MAX_PAIRS:
        keep = torch.randperm(len(i), generator=torch.Generator().manual_seed(0))[:MAX_PAIRS]
        i, j = i[keep], j[keep]
    scores, labels = sims[i, j], same[i, j]
    out["same_cosine"] = float(scores[labels].mean()) if bool(labels.any()) else 0.0
    out["diff_cosine"] = float(scores[~labels].mean()) if bool((~labels).any()) else 0.0
    if bool(labels.any()) and bool((~labels).any()):
        from sklearn.metrics import roc_auc_score, roc_curve

        y, s = labels.numpy(), scores.numpy()
        out["roc_auc"] = float(roc_auc_score(y, s))
        if int((~labels).sum()) >= 1000:
            fpr, tpr, _ = roc_curve(y, s)
            out["tar_at_far_1e-3"] = float(tpr[fpr <= 1e-3].max())
    return out


class RetrievalMetrics(Metrics):
    """Keeps every embedding of the epoch; compute() measures them all together. With `baseline`, the
    untrained backbone's pooled features (outputs["baseline_features"]) are measured as well."""

    def __init__(self, baseline: bool = False):
        self.with_baseline = baseline
        self.reset()

    def reset(self) -> None:
        self.embeddings: list[torch.Tensor] = []
        self.baseline: list[torch.Tensor] = []
        self.identities: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.paths: list[str] = []
        self._last: dict[str, float] | None = None

    def update(self, outputs: Any, targets: Any) -> None:
        embeddings = outputs["embedding"] if isinstance(outputs, dict) else outputs
        self.embeddings.append(embeddings.float().cpu())
        if self.with_baseline and isinstance(outputs, dict) and "baseline_features" in outputs:
            self.baseline.append(F.normalize(outputs["baseline_features"].float().flatten(1), dim=1).cpu())
        self.identities.append(targets["identity"].cpu())
        self.labels.append(targets["label"].cpu())
        self.paths += list(targets.get("path", [""] * len(embeddings)))

    def _sets(self):
        e, ids, labels = torch.cat(self.embeddings), torch.cat(self.identities), torch.cat(self.labels)
        base = torch.cat(self.baseline) if len(self.baseline) == len(self.embeddings) and self.baseline else None
        return e, base, ids, labels < 0

    def compute(self) -> dict[str, float]:
        if not self.embeddings:
            return {}
        e, base, ids, open_set = self._sets()
        scores = retrieval_scores(e[open_set], ids[open_set])
        if base is not None:
            scores.update({f"baseline_{k}": v for k, v in retrieval_scores(base[open_set], ids[open_set]).items()})
        closed = retrieval_scores(e[~open_set], ids[~open_set])
        scores.update({f"closed_{k}": closed[k] for k in ("recall_at_1", "map_at_r") if k in closed})
        self._last = scores
        return scores

    def details(self) -> dict[str, Any]:
        e, base, ids, open_set = self._sets()
        return {"open_set": {"images": int(open_set.sum()), "identities": int(ids[open_set].unique().numel())},
                "closed_set": {"images": int((~open_set).sum()), "identities": int(ids[~open_set].unique().numel())}}

    def table(self) -> str:
        scores = self._last if self._last is not None else self.compute()
        names = [k for k in scores if not k.startswith(("baseline_", "closed_"))]
        lines = [f"{'open set':<16}  {'trained':>8}  {'ImageNet features':>17}"]
        for k in names:
            base = scores.get(f"baseline_{k}")
            lines.append(f"{k:<16}  {scores[k]:8.3f}  {'' if base is None else f'{base:17.3f}'}")
        return "\n".join(lines)

    def report(self, run_dir, prefix: str = "") -> list[str]:
        if not self.embeddings:
            return []
        run_dir = Path(run_dir)
        e, base, ids, open_set = self._sets()
        written = [str(write_json(run_dir / f"{prefix}retrieval_report.json",
                                  {**(self._last or self.compute()), **self.details()}))]
        show = open_set if int(open_set.sum()) >= 2 else torch.ones_like(open_set)
        written.append(str(plot_embedding(e[show], ids[show], run_dir / f"{prefix}embedding_2d.png",
                                          base[show] if base is not None else None)))
        grid = neighbour_grid(e, ids, show, self.paths, run_dir / f"{prefix}neighbours.png")
        if grid is not None:
            written.append(str(grid))
        return written


def _two_d(x: torch.Tensor):
    """t-SNE of the embeddings (PCA to 2-D beyond 3,000 points, where t-SNE takes minutes)."""
    import numpy as np

    if len(x) > 3000 or len(x) < 5:
        u, s, _ = torch.pca_lowrank(x, q=2)
        return (u * s).numpy()
    from sklearn.manifold import TSNE

    return TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=0).fit_transform(np.asarray(x))


def plot_embedding(e: torch.Tensor, ids: torch.Tensor, path: Path, baseline: torch.Tensor | None = None) -> Path:
    """The validation embeddings in 2-D, one colour per identity; beside them the ImageNet features'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from zoo_core import atomic_write

    panels = [("trained embedding", e)] + ([("ImageNet features (baseline)", baseline)] if baseline is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
    for ax, (title, x) in zip(axes[0], panels):
        xy = _two_d(x)
        ax.scatter(xy[:, 0], xy[:, 1], c=ids.numpy() % 20, cmap="tab20", s=12)
        ax.set_title(f"{title}: {len(x)} images, {ids.unique().numel()} identities")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=90, format="png"))
    plt.close(fig)
    return path


def neighbour_grid(e: torch.Tensor, ids: torch.Tensor, among: torch.Tensor, paths: list[str], path: Path,
                   queries: int = 8, k: int = 5) -> Path | None:
    """A row per query: the query, then its k nearest images, framed green (same identity) or red."""
    from PIL import ImageOps

    idx = torch.nonzero(among).flatten()
    if len(idx) < 2 or not all(paths[i] for i in idx.tolist()):
        return None
    sub, sub_ids = e[idx], ids[idx]
    sims = sub @ sub.T
    sims.fill_diagonal_(-float("inf"))
    k = min(k, len(idx) - 1)
    has_pair = [(sub_ids == sub_ids[i]).sum() > 1 for i in range(len(idx))]
    picks = [i for i in range(len(idx)) if has_pair[i]][::max(1, len(idx) // (queries * 3))][:queries]
    cells, titles = [], []
    for q in picks:
        cells.append(ImageOps.expand(load_image(paths[idx[q]]).convert("RGB"), border=4, fill="white"))
        titles.append("query")
        for n in sims[q].topk(k).indices.tolist():
            good = bool(sub_ids[n] == sub_ids[q])
            cells.append(ImageOps.expand(load_image(paths[idx[n]]).convert("RGB"), border=4,
                                         fill=(40, 170, 60) if good else (210, 40, 40)))
            titles.append(f"{float(sims[q, n]):.2f}")
    return image_grid(cells, path, columns=k + 1, cell=112, titles=titles)
