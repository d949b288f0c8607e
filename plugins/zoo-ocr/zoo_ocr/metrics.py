"""Character error rate (torchmetrics' CharErrorRate: edit distance over reference characters) and word
accuracy (the whole string right), each next to trivial baselines from the training split: the most
common training text for every image, and a constant-length guess (the most common character, the median
training length, times). Also the CER by text length, and a picture of the first validation images with
what was read, green where right and red where wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from zoo_core import Metrics, image_grid, input_to_image, write_json

from .decode import greedy_labels
from .model import logits_of, valid_steps

KEEP = 16  # validation images kept for the report's picture


def cer(preds: list[str], truth: list[str]) -> float:
    """Edit operations over reference characters (torchmetrics); 0 for nothing to compare."""
    from torchmetrics.functional.text import char_error_rate

    if not truth or not sum(len(t) for t in truth):
        return float(sum(len(p) > 0 for p in preds) > 0)
    return float(char_error_rate(preds, truth))


class OcrMetrics(Metrics):
    def __init__(self, info: dict[str, Any], data_config=None):
        self.alphabet = str(info["alphabet"])
        self.baseline_text = str(info.get("baseline_text", ""))
        self.guess = str(info.get("baseline_char", "")) * int(info.get("baseline_length", 0))
        self.data_config = data_config
        self.reset()

    def reset(self) -> None:
        self.preds: list[str] = []
        self.truth: list[str] = []
        self.kept: list[tuple[torch.Tensor, str, str]] = []

    def update(self, outputs: Any, targets: dict[str, Any]) -> None:
        logits = logits_of(outputs).float().cpu()
        steps = valid_steps(targets["fraction"].cpu(), logits.shape[1])
        log_probs = logits.log_softmax(-1)
        inputs = outputs.get("inputs") if isinstance(outputs, dict) else None
        for i, text in enumerate(targets["texts"]):
            # the text alone: a confidence (a CTC pass per image) is for predictions, not for every epoch
            read = "".join(self.alphabet[k - 1] for k in greedy_labels(log_probs[i, : int(steps[i])])[0])
            self.preds.append(read)
            self.truth.append(text)
            if inputs is not None and len(self.kept) < KEEP:
                width = max(1, int(round(float(targets["fraction"][i]) * inputs.shape[-1])))
                self.kept.append((inputs[i, :, :, :width].detach().cpu(), read, text))

    def compute(self) -> dict[str, float]:
        if not self.truth:
            return {}
        n = len(self.truth)
        return {"cer": cer(self.preds, self.truth),
                "word_accuracy": sum(p == t for p, t in zip(self.preds, self.truth)) / n,
                "baseline_cer": cer([self.baseline_text] * n, self.truth),
                "baseline_word_accuracy": sum(t == self.baseline_text for t in self.truth) / n,
                "length_baseline_cer": cer([self.guess] * n, self.truth)}

    def details(self) -> dict[str, Any]:
        by_length: dict[int, list[int]] = {}
        for i, t in enumerate(self.truth):
            by_length.setdefault(len(t), []).append(i)
        return {"cer_by_length": {str(k): {"images": len(v), "cer": round(cer([self.preds[i] for i in v],
                                                                             [self.truth[i] for i in v]), 4),
                                           "word_accuracy": round(sum(self.preds[i] == self.truth[i] for i in v) / len(v), 4)}
                                  for k, v in sorted(by_length.items())},
                "examples": [{"read": p, "true": t} for p, t in list(zip(self.preds, self.truth))[:20]]}

    def table(self) -> str:
        rows = self.details()["cer_by_length"]
        lines = [f"{'length':>6}  {'images':>6}  {'CER':>7}  {'word acc':>8}"]
        lines += [f"{k:>6}  {v['images']:6d}  {v['cer']:7.2%}  {v['word_accuracy']:8.2%}" for k, v in rows.items()]
        return "\n".join(lines)

    def report(self, run_dir, prefix: str = "") -> list[str]:
        run_dir = Path(run_dir)
        written = [str(write_json(run_dir / f"{prefix}ocr_report.json", {**self.compute(), **self.details()}))]
        if self.kept:
            pictures = [self._picture(*k) for k in self.kept]
            written.append(str(image_grid(pictures, run_dir / f"{prefix}val_text.png", columns=2, cell=360)))
        return written

    def _picture(self, image: torch.Tensor, read: str, true: str) -> Image.Image:
        """The model's input, enlarged, with what was read under it: green if right, red if wrong."""
        if self.data_config is not None and image.shape[0] in (1, 3):
            pil = input_to_image(image, self.data_config).convert("RGB")
        else:
            lo, hi = float(image.min()), float(image.max())
            arr = ((image - lo) / max(hi - lo, 1e-6) * 255).round().clamp(0, 255).byte()
            pil = Image.fromarray(arr[0].numpy()).convert("RGB")
        k = max(1, 64 // max(1, pil.height))
        pil = pil.resize((pil.width * k, pil.height * k), Image.NEAREST)
        canvas = Image.new("RGB", (max(pil.width, 220), pil.height + 44), "white")
        canvas.paste(pil, (0, 0))
        draw = ImageDraw.Draw(canvas)
        draw.text((2, pil.height + 4), f"read: {read}", fill=(0, 150, 0) if read == true else (210, 0, 0))
        draw.text((2, pil.height + 24), f"true: {true}", fill=(90, 90, 90))
        return canvas
