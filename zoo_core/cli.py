"""The `zoo` command. Every user-facing problem is one line on stderr and a non-zero exit."""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from .base.errors import ZooError

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


# OS errors the user fixes (a path, a full disk, permissions): one line, like a ZooError.
USER_OS_ERRORS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS,
                  errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def crash_log(exc: BaseException) -> str | None:
    """Write the traceback of an unexpected exception to a log file; its path, or None if none could be written."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    header = f"zoo {' '.join(sys.argv[1:])}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n\n"
    for folder in (os.environ.get("ZOO_CACHE") and Path(os.environ["ZOO_CACHE"], "logs"),
                   Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo" / "logs",
                   Path(tempfile.gettempdir())):
        if not folder:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, path = tempfile.mkstemp(prefix=f"crash-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log", dir=folder)
            with os.fdopen(fd, "w") as f:
                f.write(header + text)
            return path
        except OSError:
            continue
    return None


def report_failure(exc: BaseException) -> int:
    """Print what went wrong as one line and return the exit code: the one place every zoo command's
    failures end (ZooError, Ctrl-C/SIGTERM, OS errors, and anything unexpected, with a log of it)."""
    from .training.trainer import Interrupted

    if isinstance(exc, ZooError):
        click.echo(f"Error: {_one_line(exc)}", err=True)
        return EXIT_USER_ERROR
    if isinstance(exc, Interrupted):
        click.echo(str(exc), err=True)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError) and exc.errno in USER_OS_ERRORS and not os.environ.get("ZOO_DEBUG"):
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"Error: {where}{exc.strerror or _one_line(exc)}", err=True)
        return EXIT_USER_ERROR
    if os.environ.get("ZOO_DEBUG"):
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)
        return EXIT_USER_ERROR
    log = crash_log(exc)
    message = _one_line(exc)[:300]
    click.echo(f"Error: unexpected {type(exc).__name__}{': ' + message if message else ''} (a bug in zoo or a plugin; "
               f"{'traceback in ' + log if log else 'no log could be written'}; ZOO_DEBUG=1 shows it here)", err=True)
    return EXIT_USER_ERROR


def friendly(fn):
    """Turn every failure into one line and an exit code, never a traceback (see report_failure)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.Abort, click.exceptions.Exit, SystemExit):
            raise
        except BaseException as e:
            sys.exit(report_failure(e))

    return wrapper


class ZooGroup(click.Group):
    """Click's usage errors come as one line too (click prints a usage block and a blank line by default).
    Commands plugins add (register_commands) are looked up only when a name is not zoo's own, so
    `zoo --help` and zoo's own commands do not wait for every plugin to load."""

    def _zoo(self):
        from .registry.plugins import get_zoo

        try:
            return get_zoo()
        except Exception as e:
            sys.exit(report_failure(e))

    def get_command(self, ctx, name):
        own = super().get_command(ctx, name)
        if own is not None:
            return own
        if name not in self._zoo().commands:
            return None
        if ctx.meta.get("zoo.listing"):  # `zoo --help` lists a plugin's command without importing it
            command, _ = self._zoo().commands[name]
            if not isinstance(command, click.Command):
                from .registry.registries import static_docstring

                text = command.description or static_docstring(command.factory)
                return click.Command(name, help=text)
            return command
        try:
            return self._zoo().command(name)
        except ZooError as e:
            sys.exit(report_failure(e))

    def list_commands(self, ctx):
        return [*super().list_commands(ctx), *sorted(self._zoo().commands)]

    def format_commands(self, ctx, formatter):
        ctx.meta["zoo.listing"] = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            ctx.meta.pop("zoo.listing", None)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            hint = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # a plugin's command, or anything outside a friendly command
            sys.exit(report_failure(e))
        sys.exit(0)


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

def _component_rows(zoo, kind: str) -> list[dict[str, Any]]:
    rows = []
    for c in zoo.registries[kind]:
        row = {"name": c.name, "plugin": c.plugin, "description": c.description}
        for field in ("output", "input", "accepts", "suffix"):
            if hasattr(c.spec, field):
                value = getattr(c.spec, field)
                row[field] = list(value) if isinstance(value, tuple) else value
        if c.is_family:
            row["models"] = len(c.family_names())
        options = c.options() if kind != "task" else None
        if options:
            row["options"] = {k: (None if v is inspect.Parameter.empty else v) for k, v in options.items()}
        rows.append(row)
    return rows


def catalog(zoo, registry: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """registry.toml's plugins and models, each marked installed or not, with what to pip install."""
    from .registry.registry_file import load_registry

    data = load_registry(registry)
    installed = {p.source for p in zoo.plugins if not p.error}
    plugins = [{**p, "installed": p["distribution"] in installed} for p in data["plugin"]]
    install = {p["name"]: p.get("install", f"pip install {p['distribution']}") for p in data["plugin"]}
    by_task = {p.get("task"): p["name"] for p in data["plugin"] if p.get("task")}
    models = []
    for m in data["model"]:
        available = ((not m.get("task") or m["task"] in zoo.tasks)  # knows(): answered without importing timm
                     and (m.get("repo") or zoo.backbones.knows(m.get("backbone", ""))))
        entry = {**m, "available": bool(available)}
        if not available:
            needed = m.get("plugin") or by_task.get(m.get("task"))
            entry["install"] = install.get(needed, f"pip install {needed}") if needed else None
        models.append(entry)
    return {"plugins": plugins, "models": models}


def known_models(zoo, registry: str | None = None) -> list[dict[str, Any]]:
    return catalog(zoo, registry)["models"]


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--backbones", "backbone_pattern", metavar="PATTERN",
              help="List backbone names matching a wildcard, e.g. 'resnet*' or 'torchvision:*'.")
@click.option("--registry", type=click.Path(dir_okay=False), help="Also read this registry file (see also ZOO_REGISTRY).")
@friendly
def list_cmd(as_json: bool, backbone_pattern: str | None, registry: str | None):
    """Installed plugins, every component they register, and the registry's plugins and models."""
    from .registry.plugins import get_zoo
    from .registry.registries import KINDS, PLURAL

    zoo = get_zoo()
    if backbone_pattern:
        names = zoo.backbones.names(backbone_pattern)
        if as_json:
            click.echo(json.dumps(names, indent=2))
        else:
            click.echo("\n".join(names) if names else f"no backbone matches '{backbone_pattern}'")
        return
    known = catalog(zoo, registry)
    if as_json:
        click.echo(json.dumps({
            "plugins": [p.as_dict() for p in zoo.plugins],
            "components": {PLURAL[k]: _component_rows(zoo, k) for k in KINDS},
            "commands": [{"name": n, "plugin": p} for n, (_, p) in sorted(zoo.commands.items())],
            "known_plugins": known["plugins"],
            "known_models": known["models"],
        }, indent=2))
        return
    click.echo("plugins:")
    for p in zoo.plugins:
        status = click.style(f"BROKEN: {p.error}", fg="red") if p.error else ""
        click.echo(f"  {p.name} ({p.source} {p.version}) {status}".rstrip())
        for kind in KINDS:
            comps = [c for c in zoo.registries[kind] if c.plugin == p.name]
            if comps:
                names = [(f"{c.name}:* ({len(c.family_names())} models)" if c.family_names() else f"{c.name}:*")
                         if c.is_family else c.name for c in comps]
                click.echo(f"    {PLURAL[kind] + ':':<11}{', '.join(names)}")
        commands = [n for n, (_, plugin) in sorted(zoo.commands.items()) if plugin == p.name]
        if commands:
            click.echo(f"    {'commands:':<11}{', '.join('zoo ' + n for n in commands)}")
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

def _setting_option(setting):
    """A click option for a settings.Setting: its one source of type, choices and help."""
    name = setting.flag_name
    if setting.type is bool:
        return click.option(f"{name}/--no-{name[2:]}", setting.name, default=None, help=setting.help)
    kind = click.Choice(list(setting.choices)) if setting.choices else setting.type
    return click.option(name, setting.name, type=kind, default=None, help=setting.help)


def _train_options(fn):
    from .base.settings import SETTINGS

    options = [_setting_option(s) for s in SETTINGS if s.flag] + [
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Any setting or component option, e.g. --set head.dropout=0.3 (repeatable)."),
        click.option("--config", type=click.Path(dir_okay=False), help="A TOML run file; flags win over it."),
        click.option("--resume", type=click.Path(file_okay=False), help="Continue an interrupted or finished run."),
        click.option("-q", "--quiet", is_flag=True, help="Only the final line."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command()
@click.argument("task", required=False)
@_train_options
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train in N processes (DistributedDataParallel, one per GPU, or CPU processes); "
                   "--batch-size is the global batch. Several machines: see torchrun in the README.")
@friendly
def train(task: str | None, sets: tuple[str, ...], config: str | None, resume: str | None, quiet: bool, nproc: int,
          **flags):
    """Train TASK (zoo list shows them) on its embedded dataset, or on --data."""
    from .base import distributed
    from .base.config import parse_set

    if task is None and resume is None:
        raise ZooError("name a task (zoo train TASK) or a run to continue (--resume RUN); zoo list shows tasks")
    if nproc > 1 and not distributed.under_launcher():  # the same command, once per process, under torchrun
        sys.exit(distributed.launch(nproc, distributed.command_line("train")))
    settings = {**{k: v for k, v in flags.items() if v is not None}, **parse_set(sets)}
    from .training.trainer import Interrupted
    from .training.trainer import train as run_training

    try:
        result = run_training(task or "", config=config, resume=resume, quiet=quiet, **settings)
    except (ZooError, Interrupted, KeyboardInterrupt) as e:
        if distributed.is_worker():  # rank 0 says it once for all processes
            sys.exit(report_failure(e) if not isinstance(e, (ZooError, Interrupted)) else
                     (e.exit_code if isinstance(e, Interrupted) else EXIT_USER_ERROR))
        raise
    if distributed.is_worker():
        return
    metric = next((k for k in result.best if k != "epoch"), None)
    summary = f"{metric} {result.best[metric]:.4f} (best, epoch {result.best['epoch']})" if metric else "no epoch finished"
    click.echo(f"{summary}; {result.status} in {result.seconds:.0f}s; run saved to {result.run_dir}")


@main.command("lr-find")
@click.argument("task")
@_train_options
@click.option("--start-lr", type=click.FloatRange(min=0, min_open=True), default=1e-7, show_default=True,
              help="Smallest learning rate of the sweep.")
@click.option("--end-lr", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Largest learning rate of the sweep (it stops earlier when the loss blows up).")
@click.option("--steps", type=click.IntRange(min=3), help="Steps of the sweep (default: 3 passes over the data, 30 to 200).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Where to draw loss against lr (default runs/lr-find-TASK.png).")
@friendly
def lr_find_cmd(task: str, sets: tuple[str, ...], config: str | None, resume: str | None, quiet: bool,
                start_lr: float, end_lr: float, steps: int | None, plot: str | None, **flags):
    """The learning-rate range test for TASK with the flags zoo train takes: train briefly while the lr grows
    exponentially, plot the loss against it, and print the zoo train command with the suggested --lr."""
    import shlex

    from .base.config import parse_set
    from .training.lrfind import lr_find

    if resume:
        raise ZooError("--resume: zoo lr-find starts from the run's config, not a checkpoint; give the training flags")
    settings = {**{k: v for k, v in flags.items() if v is not None}, **parse_set(sets)}
    result = lr_find(task, config=config, start_lr=start_lr, end_lr=end_lr, steps=steps, plot=plot, quiet=quiet,
                     **settings)
    # the same command line as a training run, with the suggestion as its --lr
    own = {"--start-lr", "--end-lr", "--steps", "--plot", "--lr"}
    argv, keep, skip = sys.argv[1:], [], False
    if "lr-find" in argv:
        for token in argv[argv.index("lr-find") + 1:]:
            if skip:
                skip = False
            elif token in own:
                skip = True
            elif token.split("=")[0] not in own:
                keep.append(token)
    else:
        keep = [task]
    click.echo(f"suggested lr {result.suggestion:.2g} (steepest descent of the smoothed loss; plot {result.plot})")
    click.echo("zoo train " + " ".join(shlex.quote(t) for t in [*keep, "--lr", f"{result.suggestion:.2g}"]))


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
    from .api import load_exported, load_run

    r = load_exported(run) if _is_exported(run) else load_run(_run_dir(run), device=device, runtime=runtime)
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
    from .prediction.output import PredictionWriter, output_format
    from .prediction.predictor import Skipped, expand_inputs, load_target

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

@main.command("inspect")
@click.argument("target", metavar="RUN|BACKBONE")
@click.option("--depth", type=click.IntRange(min=1), default=3, show_default=True,
              help="Levels of modules to expand (a container holding one module is not a level).")
@click.option("--mode", type=click.Choice(["frozen", "finetune"]),
              help="Show the backbone frozen, or everything trainable (default: a run as it ended, a backbone as created).")
@click.option("--image-size", type=click.IntRange(min=1), help="Input size to trace the shapes with (default: the model's).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows and totals as JSON.")
@click.option("--feature-maps", "image", type=click.Path(dir_okay=False),
              help="Also draw what layers make of this image (its feature maps) into a PNG.")
@click.option("--layers", help="Layers for --feature-maps, comma-separated: a name or its unique ending (blocks.2); "
                               "default: 4 from shallow to deep.")
@click.option("--channels", type=click.IntRange(min=1), default=16, show_default=True,
              help="--feature-maps: the most active channels drawn per layer.")
@click.option("--no-pretrained", is_flag=True, help="--feature-maps of a BACKBONE with random weights, not its pretrained ones.")
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help="PNG for --feature-maps (default: <image stem>-feature-maps.png here).")
@click.option("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps.")
@friendly
def inspect_cmd(target: str, depth: int, mode: str | None, image_size: int | None, as_json: bool, image: str | None,
                layers: str | None, channels: int, no_pretrained: bool, out: str | None, device: str):
    """Layers of a trained RUN or a BACKBONE with their output shapes and trainable and frozen
    parameters (like Keras' model.summary()); with --feature-maps IMAGE, also draw what chosen
    layers see in the image."""
    from .base.device import pick_device
    from .model.summary import (
        default_layers,
        feature_maps,
        find_layer,
        format_table,
        summarise,
    )
    from .tools.inspect import load_target

    if (layers or out) and not image:
        raise ZooError("--layers and --out go with --feature-maps IMAGE")
    # Weights change no shape or count: a backbone loads its pretrained ones only to draw feature maps.
    t = load_target(target, mode=mode, image_size=image_size, pretrained=bool(image) and not no_pretrained)
    t.model.to(pick_device(device))
    summary = summarise(t.model, t.data_config.input_size, depth)
    result: dict[str, Any] = {"target": target, "kind": t.kind, "mode": t.mode, **summary.to_dict()}
    if image:
        from .pictures.plots import plot_feature_maps

        # by default from the rows shown; from all of them when --depth hides every feature map
        wanted = ([s.strip() for s in layers.split(",") if s.strip()] if layers else default_layers(summary)
                  or default_layers(summarise(t.model, t.data_config.input_size, depth=1_000)))
        if not wanted:
            raise ZooError("no layer gives a feature map larger than 1x1 to draw")
        names = list(dict.fromkeys(find_layer(t.model, w, [r.name for r in summary.rows]) for w in wanted))
        shown, maps = feature_maps(t.model, t.data_config, image, names, t.fit)
        path = Path(out) if out else Path(f"{Path(image).stem}-feature-maps.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_feature_maps(shown, maps, path, channels=channels)
        result["feature_maps"] = {"image": image, "path": str(path),
                                  "layers": [{"name": n, "shape": list(m.shape)} for n, m in maps.items()]}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(t.title)
        click.echo(format_table(summary))
    if image:
        click.echo(f"wrote {path} (feature maps of {', '.join(maps)})", err=as_json)


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
    from .api import load_run
    from .prediction.export import export as export_run

    options = _exporter_options(sets)
    if opset is not None:
        options["opset"] = opset
    path, facts = export_run(load_run(_run_dir(run), device="cpu"), fmt, out, **options)
    click.echo(describe_export(path, facts))


@main.command()
@click.argument("run", metavar="RUN|hf-hub:ID")
@click.option("--sparsity", type=click.FloatRange(0, 1, min_open=True, max_open=True), required=True,
              help="Share to remove, e.g. 0.5: of all convolution and linear weights (--prune weights), or of "
                   "each backbone layer's channels (--prune channels).")
@click.option("--prune", type=click.Choice(["weights", "channels"]), default="weights", show_default=True,
              help="weights: zero the smallest weights (a file that compresses well, no faster); channels: "
                   "remove whole channels, the smallest by L2 norm (a smaller, faster network; needs "
                   "pip install 'zoo-core[prune]').")
@click.option("--epochs", type=click.IntRange(min=0), default=3, show_default=True,
              help="Fine-tuning epochs after pruning, with the run's own recipe (0: none).")
@click.option("--lr", type=float, help="Fine-tuning learning rate (default: the run's / 10).")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="The new run directory (default: runs/TASK-NNN).")
@friendly
def compress(run: str, sparsity: float, prune: str, epochs: int, lr: float | None, out: str | None):
    """Prune a trained RUN (weights by magnitude, or whole channels) and fine-tune it briefly with the
    normal trainer: a new run (evaluate, export, push it as any other). Prints the validation scores
    before, after pruning and after fine-tuning."""
    from .tools.compress import compress as compress_run

    facts = compress_run(_run_dir(run), sparsity, out, epochs=epochs, lr=lr, quiet=False, prune=prune)
    scores = facts["scores"]
    keys = [k for k, v in scores["original"].items() if k not in ("images", "skipped") and isinstance(v, float)]
    for stage, label in (("original", "original"), ("pruned", f"pruned {sparsity:.0%} of {prune}"),
                         ("fine_tuned", f"+ {epochs} epoch(s) fine-tuning")):
        s = scores[stage]
        click.echo(f"{label:<28} " + "  ".join(f"{k} {s[k]:.4f}" for k in keys))
    params = facts["parameters"]
    if prune == "channels":
        click.echo(f"{params['pruned']:,} parameters of {params['original']:,} ({params['pruned'] / params['original']:.0%}); "
                   f"run saved to {facts['run_dir']}")
    else:
        click.echo(f"{facts['zero_weights']:,} of {facts['prunable_weights']:,} weights are zero; "
                   f"run saved to {facts['run_dir']}")


def _exporter_options(sets: tuple[str, ...]) -> dict[str, Any]:
    import tomllib

    options: dict[str, Any] = {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ZooError(f"--set {item!r}: expected key=value, e.g. --set mode=dynamic")
        try:
            options[key.removeprefix("exporter.")] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            options[key.removeprefix("exporter.")] = text
    return options


def describe_export(path: Path, facts: dict[str, Any]) -> str:
    """What `zoo export` prints: where, how big, parity, and for a compressed export what it changed."""
    facts = dict(facts)
    size = facts.pop("bytes")
    detail = [f"{size / 1e6:.2f} MB"]
    if "fp32_bytes" in facts:
        detail[0] += f" ({size / facts.pop('fp32_bytes'):.2f}x float32)"
    if "outputs" in facts:
        detail.append("outputs " + ", ".join(facts.pop("outputs")))
    if "max_abs_diff_vs_pytorch" in facts:
        detail.append(f"max abs diff vs PyTorch {facts.pop('max_abs_diff_vs_pytorch'):.2e} on {facts.get('checked_on')}")
    lines = [f"wrote {path} ({'; '.join(detail)})"]
    if "latency_ms" in facts:
        before, after = facts["fp32_latency_ms"], facts["latency_ms"]
        lines.append(f"batch-1 latency {after:.2f} ms vs {before:.2f} ms float32 ({before / after:.2f}x), ONNX Runtime CPU")
    if "scores" in facts:
        base, new = facts["fp32_scores"], facts["scores"]
        # nan: a number the exported outputs cannot give (a detector's loss needs the raw head outputs)
        keys = [k for k in new if k not in ("images", "skipped") and isinstance(new[k], float) and new[k] == new[k]]
        lines.append("validation: " + "  ".join(f"{k} {new[k]:.4f} ({new[k] - base[k]:+.4f})" for k in keys)
                     + f" on {new.get('images')} images, change vs float32 ONNX")
    return "\n".join(lines)


def _is_exported(target: str) -> bool:
    return target.endswith(".onnx") and Path(target).is_file()


def _run_dir(target: str) -> Path:
    """A trained run's directory, or a model pulled from the Hub for `hf-hub:ID[@REV]`."""
    from .prediction.predictor import resolve_target

    kind, what = resolve_target(target)
    if kind != "run":
        raise ZooError(f"{target}: a backbone, not a trained run; give a run directory or hf-hub:NAMESPACE/NAME")
    return what


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
    from .hub.hub import push as hub_push

    if not Path(run).is_dir():
        raise ZooError(f"{run}: no such run directory")
    result = hub_push(run, repo_id, private=private, revision=revision, message=message, with_formats=with_formats,
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
    from .hub.hub import pull as hub_pull

    folder, ref = hub_pull(model, registry)
    config = json.loads((folder / "config.json").read_text())
    best = {k: v for k, v in config.get("best", {}).items() if k != "epoch"}
    scores = "  ".join(f"{k} {v:.4f}" for k, v in best.items())
    click.echo(f"pulled {ref} (commit {folder.name[:12]}): {config['model']['task']}, {config['model']['backbone']} "
               f"+ {config['model']['head']}{'; ' + scores if scores else ''}")
    click.echo(f"in {folder}; use it as hf-hub:{ref}")


# ---------------------------------------------------------------------------------------------- serve

@main.command()
@click.argument("target", metavar="RUN|hf-hub:ID")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; any other than the loopback needs --api-key.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port.")
@click.option("--runtime", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True)
@click.option("--device", default="auto")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Inference threads.")
@click.option("--api-key", envvar="ZOO_API_KEY", help="Key every request but the page and /health must send (X-API-Key); or ZOO_API_KEY.")
@click.option("--max-batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images predicted together at most (1: no batching).")
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True, help="How long a batch waits for more images.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True, help="Largest request body.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=40_000_000, show_default=True, help="Largest image (width x height).")
@friendly
def serve(target: str, **settings):
    """Serve a trained RUN over HTTP: POST /predict answers what zoo predict --json prints, a page at /
    lets you drop images and see them drawn, API docs at /docs."""
    from .serve import serve as run_server

    run_server(target, echo=click.echo, **settings)


# --------------------------------------------------------------------------------------------- plugin

@main.group()
def plugin():
    """Write and check plugins."""


@plugin.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the zoo-NAME folder.")
@friendly
def plugin_new(name: str, parent: str):
    """Write a plugin skeleton zoo-NAME/: a task with an embedded dataset, a head, a pyproject with its
    entry point and a test. `pip install -e zoo-NAME && zoo train NAME` trains it as it is."""
    from .default_plugins.scaffold import new_plugin

    root = new_plugin(name, Path(parent))
    click.echo(f"wrote {root}/; next: pip install -e {root} && zoo train {name.lower()}")


# ---------------------------------------------------------------------------------------------- cache

def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


@main.group()
def cache():
    """zoo's on-disk cache ($ZOO_CACHE, else ~/.cache/zoo): backbone features and decoded images,
    reused across runs; bounded by the cache_disk_gb setting (least recently used files go first)."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def cache_list(as_json: bool):
    """Entries: key, what they were computed for, images, size and last use."""
    import time

    from .base.settings import BY_NAME
    from .training.cache import cache_root, entries

    rows = entries()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    limit = BY_NAME["cache_disk_gb"].default
    total = sum(r["bytes"] for r in rows)
    click.echo(f"{cache_root()}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}, {total / 2**20:.1f} MiB "
               f"(limit cache_disk_gb={limit:g} GiB)")
    if rows:
        click.echo(f"{'key':<14} {'kind':<14} {'images':>6} {'MiB':>8}  {'last used':<12} what")
    for r in sorted(rows, key=lambda r: -r["last_used"]):
        click.echo(f"{r['key'][:12]:<14} {r['kind']:<14} {r['images']:>6} {r['bytes'] / 2**20:>8.1f}  "
                   f"{_ago(time.time() - r['last_used']):<12} {r['what']}")


@cache.command("clear")
@click.argument("key", required=False)
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), metavar="DAYS",
              help="Only what has not been used for this many days.")
@friendly
def cache_clear(key: str | None, older_than: float | None):
    """Remove everything, the entry KEY (a prefix of it, or 'images'), or what is unused for --older-than DAYS."""
    from .training.cache import clear

    files, freed = clear(key, older_than)
    click.echo(f"removed {files} file(s), {freed / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
