"""The `zoo` command. Every user-facing problem is one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .base.errors import ZooError
from .console import (
    EXIT_USER_ERROR,
    ZooGroup,
    describe_export,
    exporter_options,
    friendly,
    is_worker,
    launch_processes,
    report_failure,
    settings_from,
    train_options,
)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zoo-core", prog_name="zoo")
def main():
    """zoo: transfer learning for computer vision, one command per task.

    \b
      zoo list                          what is installed: tasks, components, commands
      zoo train TASK                    train a task on its embedded dataset
      zoo train TASK --data DIR         train it on your own data
      zoo lr-find TASK --data DIR       find a learning rate for it
      zoo predict RUN photo.jpg         predict with a trained run
      zoo plugin new NAME               write a plugin skeleton
    """


# ----------------------------------------------------------------------------------------------- list

@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--backbones", "backbone_pattern", metavar="PATTERN",
              help="List backbone names matching a wildcard, e.g. 'resnet*' or 'torchvision:*'.")
@click.option("--registry", type=click.Path(dir_okay=False), help="Also read this registry file (see also ZOO_REGISTRY).")
@friendly
def list_cmd(as_json: bool, backbone_pattern: str | None, registry: str | None):
    """Installed plugins, every component they register, and the registry's plugins and models."""
    from .api import backbone_names, listing

    if backbone_pattern:
        names = backbone_names(backbone_pattern)
        if as_json:
            click.echo(json.dumps(names, indent=2))
        else:
            click.echo("\n".join(names) if names else f"no backbone matches '{backbone_pattern}'")
        return
    known = listing(registry, details=as_json)  # options are read from source only for --json
    if as_json:
        click.echo(json.dumps(known, indent=2))
        return
    click.echo("plugins:")
    for p in known["plugins"]:
        status = click.style(f"BROKEN: {p['error']}", fg="red") if p["error"] else ""
        click.echo(f"  {p['name']} ({p['source']} {p['version']}) {status}".rstrip())
        for kind, rows in known["components"].items():
            names = [(f"{c['name']}:* ({c['models']} models)" if c["models"] else f"{c['name']}:*")
                     if "models" in c else c["name"] for c in rows if c["plugin"] == p["name"]]
            if names:
                click.echo(f"    {kind + ':':<11}{', '.join(names)}")
        commands = [c["name"] for c in known["commands"] if c["plugin"] == p["name"]]
        if commands:
            click.echo(f"    {'commands:':<11}{', '.join('zoo ' + n for n in commands)}")
        if p.get("disabled"):  # a name another plugin registered first: that registration only is left out
            click.echo(f"    {'disabled:':<11}" + click.style(", ".join(p["disabled"]), fg="yellow"))
    known = {"plugins": known["known_plugins"], "models": known["known_models"]}
    missing = [p for p in known["plugins"] if not p["installed"]]
    if missing:
        click.echo("\nmore plugins (registry.toml), not installed:")
        for p in missing:
            click.echo(f"  {p['name']:<14} {p.get('summary', '')}  ->  {p.get('install', 'pip install ' + p['distribution'])}")
    models = known["models"]
    if models:
        click.echo("\nknown models (registry.toml):")
        width = max(len(m["name"]) for m in models)
        where = {m["name"]: f"hf-hub:{m['repo']}" if m.get("repo") else m.get("backbone", "") for m in models}
        bwidth = max(len(w) for w in where.values())
        for m in models:
            mark = "" if m["available"] else f"  (not installed: {m.get('install') or 'its task plugin'})"
            params = f"{m['params']:>6}M" if "params" in m else " " * 7
            click.echo(f"  {m['name']:<{width}}  {m.get('task', ''):<9} {where[m['name']]:<{bwidth}} {params}  "
                       f"{m.get('description', '')}{mark}")
    click.echo("\nzoo list --json for descriptions and options; zoo list --backbones 'resnet*' to search backbones")


# ---------------------------------------------------------------------------------------------- train

@main.command()
@click.argument("task", required=False)
@train_options
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train in N processes (DistributedDataParallel, one per GPU, or CPU processes); "
                   "--batch-size is the global batch. Several machines: see torchrun in the README.")
@friendly
def train(task: str | None, sets: tuple[str, ...], config: str | None, resume: str | None, quiet: bool, nproc: int,
          **flags):
    """Train TASK (zoo list shows them) on its embedded dataset, or on --data."""
    if task is None and resume is None:
        raise ZooError("name a task (zoo train TASK) or a run to continue (--resume RUN); zoo list shows tasks")
    launch_processes(nproc, "train")  # the same command, once per process, under torchrun
    settings = settings_from(flags, sets)
    from .api import Interrupted
    from .api import train as run_training

    try:
        result = run_training(task or "", config=config, resume=resume, quiet=quiet, **settings)
    except (ZooError, Interrupted, KeyboardInterrupt) as e:
        if is_worker():  # rank 0 says it once for all processes
            sys.exit(report_failure(e) if not isinstance(e, (ZooError, Interrupted)) else
                     (e.exit_code if isinstance(e, Interrupted) else EXIT_USER_ERROR))
        raise
    if is_worker():
        return
    metric = next((k for k in result.best if k != "epoch"), None)
    summary = f"{metric} {result.best[metric]:.4f} (best, epoch {result.best['epoch']})" if metric else "no epoch finished"
    click.echo(f"{summary}; {result.status} in {result.seconds:.0f}s; run saved to {result.run_dir}")


# ------------------------------------------------------------------------------------- eval & predict

@main.command("eval")
@click.argument("run", metavar="RUN|hf-hub:ID|MODEL.onnx")
@click.option("--data", help="Labelled data in a format the run's task reads (default: the run's own validation split).")
@click.option("--dataset", help="Dataset component (default: inferred from --data).")
@click.option("--device", default="auto")
@click.option("--runtime", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="Run the model with PyTorch or ONNX Runtime (an exported .onnx file always uses ONNX Runtime).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Also write the task's report (e.g. confusion matrix) and predictions drawn on images into this folder.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def eval_cmd(run: str, data: str | None, dataset: str | None, device: str, runtime: str, report_dir: str | None,
             as_json: bool):
    """Evaluate a trained RUN, or a file exported from one with zoo export (.onnx), on labelled data or on
    the run's own validation split."""
    from .api import load_exported, load_run, run_directory

    exported = run.endswith(".onnx") and Path(run).is_file()
    r = load_exported(run) if exported else load_run(run_directory(run), device=device, runtime=runtime)
    scores, metrics = r.evaluate(data, dataset=dataset)
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        written = metrics.report(report_dir, prefix="eval_")
        drawn = r.draw_examples(Path(report_dir) / "eval_predictions.png")
        click.echo(f"wrote {', '.join(map(str, [*written, *([drawn] if drawn else [])]))}", err=True)
    if as_json:
        click.echo(json.dumps({**scores, **metrics.details()}, indent=2))
        return
    if metrics.table():
        click.echo(metrics.table())
    click.echo("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))


def _task_options(tokens: tuple[str, ...], task) -> tuple[list[str], dict[str, Any]]:
    """Split `zoo predict`'s free arguments into images and the task's own options (-k 3, --top-k=3)."""
    by_flag = {}
    for s in task.predict_options:
        by_flag[s.flag_name] = s
        if getattr(s, "short", ""):
            by_flag["-" + s.short] = s
    images, options, i = [], {}, 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("-") and not Path(token).exists():
            flag, eq, value = token.partition("=")
            if flag not in by_flag:
                known = ", ".join(sorted(by_flag)) or "none"
                raise ZooError(f"no such option: {flag} (task '{task.name}' takes: {known}; see: zoo predict --help)")
            s = by_flag[flag]
            if not eq:
                if s.type is bool:
                    value = "true"
                else:
                    if i + 1 >= len(tokens):
                        raise ZooError(f"option {flag} needs a value")
                    i += 1
                    value = tokens[i]
            options[s.name] = s.check(value, f"option {flag}")
        else:
            images.append(token)
        i += 1
    return images, options


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("target", metavar="RUN|BACKBONE|MODEL.onnx")
@click.argument("images", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--device", default="auto")
@click.option("--runtime", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="PyTorch, or ONNX Runtime on the CPU (pip install 'zoo-core[onnx]'); the same predictions either way.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as a JSON array.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the predictions to a .json, .jsonl or .csv file, as they come, instead of printing them.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), help="Processes decoding images (default: cores - 1, at most 4).")
@click.option("--draw", type=click.Path(dir_okay=False), help="Also draw the predictions on the images into this PNG.")
@friendly
def predict(target: str, images: tuple[str, ...], device: str, runtime: str, as_json: bool, output: str | None,
            batch_size: int, workers: int | None, draw: str | None):
    """Predict IMAGES (files, folders, quoted globs such as 'photos/**/*.jpg') with a trained RUN, an exported
    .onnx file, or a pretrained BACKBONE and the head it was trained with (e.g. ImageNet classes). Images are
    streamed in batches; unreadable files are reported and skipped. The run's task adds its own options
    (e.g. -k/--top-k N for classification)."""
    from .api import Skipped, expand_inputs, load_target
    from .console import PredictionWriter, output_format

    output_format(output)  # a wrong suffix is an error before the model loads
    predictor = load_target(target, device=device, runtime=runtime)
    paths, options = _task_options(images, predictor.task)
    if not paths:
        raise ZooError("no images given: zoo predict RUN IMAGE...")
    files = expand_inputs(paths)
    writer = PredictionWriter(output, as_json)
    drawn, skipped = [], 0
    try:
        for p in predictor.predict_stream(files, batch_size=batch_size, workers=workers, progress=True, **options):
            if isinstance(p, Skipped):
                skipped += 1
                click.echo(f"skipped {p.source}: {p.reason}", err=True)
                continue
            writer.write(p)
            if draw and len(drawn) < 48:
                drawn.append(p)
    finally:
        writer.close()
    if not writer.count:
        raise ZooError(f"{', '.join(paths)}: " + ("no image files there" if not files else
                                                  f"none of the {len(files)} file(s) is a readable image"))
    if draw:
        predictor.draw(drawn, draw)
        click.echo(f"drew {len(drawn)} prediction(s) into {draw}", err=True)
    if output:
        click.echo(f"wrote {writer.count} prediction(s) to {output}" + (f"; skipped {skipped} unreadable" if skipped else ""),
                   err=True)


# -------------------------------------------------------------------------------------------- inspect

# --------------------------------------------------------------------------------------------- export

@main.command()
@click.argument("run", metavar="RUN|hf-hub:ID")
@click.option("--format", "fmt", default="onnx", show_default=True,
              help="An exporter: onnx, onnx-int8, torchscript, safetensors, or a plugin's (zoo list shows them).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Output file (default: RUN/model.<suffix>); "
              "missing folders are created.")
@click.option("--opset", type=click.IntRange(min=7), help="ONNX opset (onnx, onnx-int8; default 18).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="An exporter option, e.g. --set mode=dynamic or --set calibration_images=512 for onnx-int8.")
@friendly
def export(run: str, fmt: str, out: str | None, opset: int | None, sets: tuple[str, ...]):
    """Export a trained RUN for deployment, with the task's output names and metadata (task, classes,
    preprocessing) inside the file; the file is run on validation images and compared with PyTorch."""
    from .api import export as export_run

    options = exporter_options(sets)
    if opset is not None:
        options["opset"] = opset
    path, facts = export_run(run, fmt, out, **options)
    click.echo(describe_export(path, facts))


# ------------------------------------------------------------------------------------------ push, pull

@main.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("repo_id", metavar="NAMESPACE/NAME")
@click.option("--private", is_flag=True, help="Create the repo private (an existing repo keeps its visibility).")
@click.option("--revision", help="Commit to this branch (created if needed) instead of main.")
@click.option("-m", "--message", help="The commit message.")
@click.option("--with", "with_formats", multiple=True, metavar="FORMAT",
              help="Also upload the model exported with this exporter, e.g. --with onnx (repeatable).")
@click.option("--license", help="The license in the model card (e.g. apache-2.0; default: unknown).")
@click.option("--registry", type=click.Path(dir_okay=False), help="Add or update the model's entry in this registry file.")
@friendly
def push(run: str, repo_id: str, private: bool, revision: str | None, message: str | None,
         with_formats: tuple[str, ...], license: str | None, registry: str | None):
    """Upload a trained RUN to the Hugging Face Hub in one commit: weights (safetensors), config, a model
    card with its metrics, curves and report images. The token comes from HF_TOKEN or `hf auth login`;
    HF_ENDPOINT picks another Hub."""
    from .api import push as push_run

    result = push_run(run, repo_id, private=private, revision=revision, message=message, with_formats=with_formats,
                      registry=registry, license=license)
    click.echo(f"pushed {len(result['files'])} files to {result['url']} ({result['revision']}), commit {result['commit']}")
    if registry:
        click.echo(f"registry {registry}: model '{repo_id.split('/')[-1]}' pinned to {result['commit'][:12]}")


@main.command()
@click.argument("model", metavar="NAMESPACE/NAME[@REVISION]|NAME")
@click.option("--registry", type=click.Path(dir_okay=False), help="Also look NAME up in this registry file.")
@friendly
def pull(model: str, registry: str | None):
    """Download a model pushed with zoo push into the Hugging Face cache (weights, config, card; never a
    pickle). Afterwards hf-hub:ID works offline (HF_HUB_OFFLINE=1)."""
    from .api import hub_ref
    from .api import pull as pull_model

    folder, ref = pull_model(model, registry), hub_ref(model, registry)
    config = json.loads((folder / "config.json").read_text())
    if "model" not in config:  # a checkpoint pushed by timm
        click.echo(f"pulled {ref} (commit {folder.name[:12]}): a timm {config.get('architecture')} checkpoint, "
                   f"{config.get('num_classes') or 'no'} classes")
        click.echo(f"in {folder}; use it as --backbone hf-hub:{ref}" + (f" or zoo predict hf-hub:{ref} IMAGE"
                                                                      if config.get("num_classes") else ""))
        return
    best = {k: v for k, v in config.get("best", {}).items() if k != "epoch"}
    scores = "  ".join(f"{k} {v:.4f}" for k, v in best.items())
    click.echo(f"pulled {ref} (commit {folder.name[:12]}): {config['model']['task']}, {config['model']['backbone']} "
               f"+ {config['model']['head']}{'; ' + scores if scores else ''}")
    click.echo(f"in {folder}; use it as hf-hub:{ref}")


# ---------------------------------------------------------------------------------------------- serve

# --------------------------------------------------------------------------------------------- plugin

# ---------------------------------------------------------------------------------------------- cache

if __name__ == "__main__":
    main()
