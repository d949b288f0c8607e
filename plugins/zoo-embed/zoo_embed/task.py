from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F
from zoo_core import Prediction, Setting, StepOutput, Task, draw_caption

from . import DEFAULT_BACKBONES, EMBEDDING
from .heads import DEFAULT_DIM
from .metrics import RetrievalMetrics


@dataclass
class EmbeddingPrediction(Prediction):
    """One image's embedding (L2-normalised), and its nearest images when an index is given."""

    embedding: list[float] = field(default_factory=list)
    neighbours: list[dict[str, Any]] = field(default_factory=list)  # {"path", "similarity"}, most similar first

    def to_json(self) -> dict[str, Any]:
        return {"embedding": self.embedding, **({"neighbours": self.neighbours} if self.neighbours else {})}

    def caption(self) -> str:
        if self.neighbours:
            return "  ".join(f"{n['path']} {n['similarity']:.3f}" for n in self.neighbours)
        head = ", ".join(f"{v:.3f}" for v in self.embedding[:4])
        return f"embedding ({len(self.embedding)}-d): [{head}, ...]"

    def draw(self, image):
        if self.neighbours:
            return draw_caption(image, f"nearest: {self.neighbours[0]['path']} {self.neighbours[0]['similarity']:.2f}")
        return draw_caption(image, f"{len(self.embedding)}-d embedding")


class EmbedTask(Task):
    name = "embed"
    description = ("image embeddings for search and re-identification: metric learning, open-set retrieval "
                   "(default: identities cut from real photos)")
    output = EMBEDDING
    # On your own images: frozen ImageNet features with a BN-neck trained by ArcFace on a CPU (cached features:
    # seconds per epoch); on a GPU, `--mode staged` fine-tunes the backbone as well.
    defaults = {"dataset": "photo-identities", "backbone": DEFAULT_BACKBONES, "head": "bn-neck", "loss": "arcface",
                "mode": "staged", "freeze_epochs": 5, "epochs": 20, "batch_size": 64, "lr": 1e-3,
                "augment": "standard", "val_fraction": 0.3}
    # Open-set retrieval on identities never trained on: what a gallery of new people or products meets.
    primary_metric = "val_recall_at_1"
    primary_mode = "max"
    fit = "crop"
    pipeline_tag = "image-feature-extraction"
    predict_options = (
        Setting("index", str, None, "An index (zoo index build) whose nearest images to give with each embedding; "
                                    "on a server, fixed at start: zoo serve RUN --option index=FILE.", nullable=True, path=True),
        Setting("top_k", int, 5, "How many neighbours to give from the index.", min=1, max=1000, short="k",
                request=True),
    )

    def outputs_info(self, info: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        info = {**info, "embedding_dim": int(config["head_options"].get("dim", DEFAULT_DIM))}
        # The baseline the embedding is measured against: the same backbone's pooled features, untrained. When
        # training leaves the backbone as it was, they are its own features; else a pristine copy is built
        # for validation (pretrained weights, as the run started from them; none from a --weights file).
        untouched = config["mode"] == "frozen" or (config["mode"] == "staged" and config["epochs"] <= config["freeze_epochs"])
        if untouched:
            info["baseline"] = "own"
        elif not config["weights"]:
            info["baseline"] = {"backbone": config["backbone"], "pretrained": bool(config["pretrained"]),
                                "image_size": config["image_size"], "options": config["backbone_options"]}
        return info

    def step(self, model, batch, loss_fn, optimizer: str = "main") -> StepOutput:
        """The loss on the images of training identities (label >= 0): held-out identities have no class
        weight. In validation the baseline's features go to the metrics too."""
        net = getattr(model, "module", model)  # DDP wraps the model
        outputs = {}
        if net.training or not hasattr(net, "head"):  # training, or an exported file (zoo eval model.onnx)
            embeddings = model(batch.inputs)
            embeddings = embeddings["embedding"] if isinstance(embeddings, dict) else embeddings
        else:
            features = batch.inputs if net.inputs_are_features else net.features(batch.inputs)
            embeddings = net.head(features)
            baseline = self._info.get("baseline")
            if baseline == "own" or (baseline and net.backbone_frozen):  # not trained (yet)
                outputs["baseline_features"] = features
            elif baseline:
                outputs["baseline_features"] = self._pristine(baseline, batch.inputs.device)(batch.inputs)
        outputs["embedding"] = embeddings
        labels = batch.targets["label"]
        known = labels >= 0
        if bool(known.any()):
            loss = loss_fn(embeddings[known], labels[known])
        else:
            loss = embeddings.sum() * 0.0
        return StepOutput(loss, {}, outputs, count=int(known.sum()))

    _info: dict[str, Any] = {}
    _pristine_backbone = None

    def _pristine(self, spec: dict[str, Any], device):
        """The backbone as it was before training, built once (for the baseline)."""
        if self._pristine_backbone is None:
            from zoo_core import get_zoo

            backbone = get_zoo().backbones.create(spec["backbone"], pretrained=spec["pretrained"],
                                                  image_size=spec["image_size"], **spec["options"])
            self._pristine_backbone = backbone.eval().requires_grad_(False).to(device)
        return self._pristine_backbone

    def metrics(self, info: dict[str, Any]) -> RetrievalMetrics:
        self._info = info  # the step reads what the baseline is (training and zoo eval both ask for metrics first)
        return RetrievalMetrics(baseline=bool(info.get("baseline")))

    def predict(self, outputs, geometry, info: dict[str, Any], index: str | None = None,
                top_k: int = 5) -> list[EmbeddingPrediction]:
        embeddings = outputs["embedding"] if isinstance(outputs, dict) else outputs
        embeddings = F.normalize(embeddings.float(), dim=1)
        found: list[list[dict[str, Any]]] = [[] for _ in range(len(embeddings))]
        if index is not None:
            from .index import open_index

            found = open_index(index, info).search(embeddings, top_k)
        return [EmbeddingPrediction([round(float(v), 6) for v in e], n) for e, n in zip(embeddings, found)]

    def undeploy(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"embedding": next(iter(outputs.values()))}

    def deploy(self, model, info: dict[str, Any]):
        return model, ["embedding"]  # the head already ends in the L2 normalisation
