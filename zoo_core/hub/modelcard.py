"""The model card `zoo push` writes: YAML metadata the Hub understands (library, tags, pipeline tag,
license, base model, a model-index with the validation metrics) and a body saying how to use the model,
how it was trained, and how well it does."""

from __future__ import annotations

from typing import Any

# zoo's metric names -> the Hub's metric ids (hf.co/metrics) and their config; a name not here is kept as it
# is (there is no Hub id for it), and losses are never part of the model-index: they are not scores.
HUB_METRICS = {"accuracy": ("accuracy", None), "macro_f1": ("f1", "macro"), "micro_f1": ("f1", "micro"),
               "f1": ("f1", None), "precision": ("precision", None), "recall": ("recall", None),
               "mean_iou": ("mean_iou", None), "miou": ("mean_iou", None), "exact_match": ("exact_match", None),
               "mae": ("mae", None), "mse": ("mse", None), "cer": ("cer", None), "wer": ("wer", None),
               "roc_auc": ("roc_auc", None)}


def hub_metric(name: str) -> tuple[str, str | None] | None:
    """(Hub metric id, config) for a validation metric, or None for a loss."""
    if name == "loss" or name.endswith("_loss") or name.startswith("loss_"):
        return None
    return HUB_METRICS.get(name, (name, None))


def model_card(config: dict[str, Any], metrics: list[dict[str, Any]], repo_id: str, files: list[str],
               license: str | None = None) -> str:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from ..registry.plugins import get_zoo

    mc, train, best = config["model"], config["train"], config.get("best", {})
    task = get_zoo().tasks.create(mc["task"])
    source = mc.get("pretrained_source", "none")
    base_model = source[len("hf-hub:"):].split("@")[0] if source.startswith("hf-hub:") else None
    best_row = next((r for r in metrics if r.get("epoch") == best.get("epoch")), metrics[-1] if metrics else {})
    scores = {k[4:]: v for k, v in best_row.items() if k.startswith("val_") and isinstance(v, (int, float))}
    dataset = config.get("data", {})
    pipeline = task.pipeline_tag
    data = ModelCardData(
        library_name="zoo", license=license or "unknown", pipeline_tag=pipeline, base_model=base_model,
        tags=["zoo", f"zoo-task:{mc['task']}", config["plugin"]["distribution"], f"backbone:{mc['backbone']}",
              "transfer-learning", "image", *(["timm"] if "architecture" in config else [])],
        model_name=repo_id.split("/")[-1],
        eval_results=[EvalResult(task_type=pipeline or mc["task"], dataset_type=str(dataset.get("dataset", "custom")),
                                 dataset_name=str(dataset.get("dataset", "custom")), dataset_split="validation",
                                 metric_type=hub_metric(name)[0], metric_config=hub_metric(name)[1],
                                 metric_name=f"validation {name.replace('_', ' ')}", metric_value=round(float(value), 6))
                      for name, value in scores.items() if hub_metric(name)] or None,
    )
    recipe = [("task", f"`{mc['task']}` (plugin `{config['plugin']['distribution']}`, needs `{config['plugin']['requires']}`)"),
              ("backbone", f"`{mc['backbone']}`, weights: {source}"), ("head", f"`{mc['head']}` {mc.get('head_options') or ''}".strip()),
              ("loss", f"`{train.get('loss')}`"), ("mode", f"{train.get('mode')} (backbone lr × {train.get('backbone_lr_mult')})"),
              ("epochs", f"{train.get('epochs')}, best epoch {best.get('epoch')}"),
              ("optimiser", f"{train.get('optimizer')}, lr {train.get('lr')}, {train.get('schedule')} schedule, batch {train.get('batch_size')}"),
              ("augmentation", str(train.get("augment"))),
              ("input", f"{'x'.join(map(str, mc['data_config']['input_size']))}, mean {mc['data_config']['mean']}, "
                        f"std {mc['data_config']['std']}, fit `{mc.get('fit', 'crop')}`"),
              ("data", f"{dataset.get('source') or dataset.get('dataset')}: {dataset.get('train')} train / {dataset.get('val')} validation images"),
              ("seed", str(train.get("seed")))]
    lines = [f"# {repo_id.split('/')[-1]}", "",
             f"A `{mc['task']}` model trained with [zoo](https://pypi.org/project/zoo-core/): "
             f"{task.description}.", "",
             "## Use it", "", "```bash", f"pip install 'zoo-core>={config['zoo_version'].rsplit('.', 1)[0]}' '{config['plugin']['requires']}'",
             f"zoo pull {repo_id}", f"zoo predict hf-hub:{repo_id} photo.jpg", f"zoo eval hf-hub:{repo_id} --data DIR",
             f"zoo train {mc['task']} --data DIR --backbone hf-hub:{repo_id}   # start a new training from its backbone",
             "```", "", "In Python:", "", "```python", "import zoo_core", "",
             f"model = zoo_core.load_run(zoo_core.pull(\"{repo_id}\"))", "for p in model.predict([\"photo.jpg\"]):",
             "    print(p.to_json())", "```", ""]
    if "architecture" in config:  # pushed in timm's format too (timm_hub.py)
        lines += ["With [timm](https://github.com/huggingface/pytorch-image-models) alone (the same weights, "
                  f"`{config['architecture']}` with a {config['num_classes']}-class classifier; the preprocessing "
                  "zoo trained with is in `config.json`'s `pretrained_cfg`):", "",
                  "```python", "import timm, torch", "from PIL import Image", "",
                  f"model = timm.create_model(\"hf-hub:{repo_id}\", pretrained=True).eval()",
                  "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))",
                  "with torch.no_grad():",
                  "    probabilities = model(transform(Image.open(\"photo.jpg\").convert(\"RGB\"))[None]).softmax(-1)",
                  "labels = model.pretrained_cfg[\"label_names\"]", "```", ""]
        if mc.get("fit", "crop") != "crop":
            lines += [f"zoo fitted images by `{mc['fit']}`, timm's transform crops: predictions may differ slightly.", ""]
    if "model.onnx" in files:
        lines += ["Without zoo, with onnxruntime (`model.onnx`; preprocessing and output names are in its metadata):", "",
                  "```python", "import onnxruntime as ort", "session = ort.InferenceSession(\"model.onnx\")",
                  "print(session.get_modelmeta().custom_metadata_map)  # zoo.task, zoo.info (classes), zoo.preprocessing",
                  "```", ""]
    lines += ["The weights are `model.safetensors`; `config.json` holds everything that rebuilds the network "
              "(backbone, head and options, the task's outputs, preprocessing).", "",
              "## Training recipe", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in recipe], "",
              "## Validation metrics", "", "| metric | value |", "|---|---|",
              *[f"| {k} | {v:.4f} |" for k, v in scores.items()], ""]
    if "curves.png" in files:
        lines += ["![training curves](curves.png)", ""]
    for png in [f for f in files if f.endswith(".png") and f != "curves.png"]:
        lines += [f"![{png[:-4].replace('_', ' ')}]({png})", ""]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))
