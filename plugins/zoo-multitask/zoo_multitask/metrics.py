"""Per-head metrics, each beside its trivial baseline from the training split:

    binary, multiclass:   <head>_accuracy   vs baseline_<head>_accuracy (always the majority class)
    ordered classes:      also <head>_mae, in the classes' units (20-29 counts as 25)
    regression:           <head>_mae in the column's own units   vs baseline_<head>_mae (always the mean)

Images without a label for a head (an empty cell) do not count for that head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from zoo_core import Metrics, atomic_write, plot_confusion_matrix, write_json

from .heads import to_original

KEEP_POINTS = 2000  # (true, predicted) pairs kept per regression head for the scatter plot


class MultiTaskMetrics(Metrics):
    def __init__(self, info: dict[str, Any]):
        self.targets = info.get("targets", [])
        self.reset()

    def reset(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        for spec in self.targets:
            if spec["type"] == "regression":
                self.state[spec["name"]] = {"n": 0, "abs": 0.0, "base_abs": 0.0, "points": []}
            else:
                k = len(spec["classes"])
                self.state[spec["name"]] = {"n": 0, "correct": 0, "base_correct": 0, "abs": 0.0,
                                            "confusion": torch.zeros(k, k, dtype=torch.long)}

    def update(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        for spec in self.targets:
            name, st = spec["name"], self.state[spec["name"]]
            out, y = outputs[name].float().cpu(), targets[name].cpu()
            if spec["type"] == "regression":
                known = ~torch.isnan(y)
                pred = to_original(spec, out[known])
                true = to_original(spec, y[known].float())
                st["n"] += int(known.sum())
                st["abs"] += float((pred - true).abs().sum())
                st["base_abs"] += float((true - spec["baseline"]).abs().sum())
                room = KEEP_POINTS - len(st["points"])
                st["points"] += list(zip(true.tolist(), pred.tolist()))[:max(0, room)]
                continue
            known = y >= 0
            y = y[known].long()
            pred = (out[known] > 0).long() if spec["type"] == "binary" else out[known].argmax(dim=-1)
            st["n"] += len(y)
            st["correct"] += int((pred == y).sum())
            st["base_correct"] += int((y == spec["classes"].index(spec["baseline"])).sum())
            st["confusion"] += torch.bincount(y * len(spec["classes"]) + pred,
                                              minlength=len(spec["classes"]) ** 2).reshape(st["confusion"].shape)
            if spec.get("midpoints"):
                mids = torch.tensor([spec["midpoints"][c] for c in spec["classes"]])
                st["abs"] += float((mids[pred] - mids[y]).abs().sum())

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for spec in self.targets:
            name, st = spec["name"], self.state[spec["name"]]
            n = max(1, st["n"])
            if spec["type"] == "regression":
                out[f"{name}_mae"] = st["abs"] / n
                out[f"baseline_{name}_mae"] = st["base_abs"] / n
            else:
                out[f"{name}_accuracy"] = st["correct"] / n
                out[f"baseline_{name}_accuracy"] = st["base_correct"] / n
                if spec.get("midpoints"):
                    out[f"{name}_mae"] = st["abs"] / n
        return out

    def details(self) -> dict[str, Any]:
        scores = self.compute()
        heads = {}
        for spec in self.targets:
            name, st = spec["name"], self.state[spec["name"]]
            row: dict[str, Any] = {"type": spec["type"], "images": st["n"], "loss": spec["loss"], "weight": spec["weight"]}
            if spec["type"] == "regression":
                row.update(mae=round(scores[f"{name}_mae"], 4), baseline_mae=round(scores[f"baseline_{name}_mae"], 4),
                           baseline="the training mean, %.4g" % spec["baseline"], unit=spec.get("unit", ""))
            else:
                row.update(accuracy=round(scores[f"{name}_accuracy"], 4),
                           baseline_accuracy=round(scores[f"baseline_{name}_accuracy"], 4),
                           baseline=f"always '{spec['baseline']}'", classes=spec["classes"],
                           confusion_matrix=st["confusion"].tolist())
            heads[name] = row
        return {"heads": heads}

    def table(self) -> str:
        scores = self.compute()
        lines = [f"{'head':<14} {'type':<10} {'metric':<9} {'model':>9} {'baseline':>9}  baseline is"]
        for spec in self.targets:
            name = spec["name"]
            metric = "mae" if spec["type"] == "regression" else "accuracy"
            what = (f"the training mean ({spec['baseline']:.4g})" if spec["type"] == "regression"
                    else f"always '{spec['baseline']}'")
            lines.append(f"{name:<14} {spec['type']:<10} {metric:<9} {scores[f'{name}_{metric}']:9.4f} "
                         f"{scores[f'baseline_{name}_{metric}']:9.4f}  {what}")
        return "\n".join(lines)

    def report(self, run_dir, prefix: str = "") -> list[str]:
        run_dir = Path(run_dir)
        written = [str(write_json(run_dir / f"{prefix}multitask_report.json", {**self.compute(), **self.details()}))]
        for spec in self.targets:
            name, st = spec["name"], self.state[spec["name"]]
            if spec["type"] == "regression":
                if st["points"]:
                    written.append(str(_scatter(st["points"], spec, run_dir / f"{prefix}{name}_predicted_vs_true.png")))
            elif st["n"]:
                written.append(str(plot_confusion_matrix(st["confusion"].tolist(), spec["classes"],
                                                         run_dir / f"{prefix}{name}_confusion_matrix.png",
                                                         title=f"{name}: accuracy {st['correct'] / st['n']:.3f}")))
        return written


def _scatter(points: list[tuple[float, float]], spec: dict[str, Any], path: Path) -> Path:
    """Predicted against true values, with the diagonal (perfect) and the baseline (always the mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true, pred = zip(*points)
    lo, hi = min(min(true), min(pred)), max(max(true), max(pred))
    unit = f" ({spec['unit']})" if spec.get("unit") else ""
    mae = sum(abs(t - p) for t, p in points) / len(points)
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.scatter(true, pred, s=6, alpha=0.5)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="perfect")
    ax.axhline(spec["baseline"], color="tab:red", ls="--", lw=1, label="baseline: the mean")
    ax.set_xlabel(f"true {spec['name']}{unit}")
    ax.set_ylabel(f"predicted {spec['name']}{unit}")
    ax.set_title(f"{spec['name']}: MAE {mae:.3g}{unit}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return path
