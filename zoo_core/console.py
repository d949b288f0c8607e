"""What every `zoo` command shares, zoo's own and plugins' alike: failures as one line and an exit code
(never a traceback), the training flags derived from the settings, and how an export is described."""

from __future__ import annotations

import errno
import functools
import os
import sys
from pathlib import Path
from typing import Any

import click

from .base.errors import ZooError
from .prediction.output import PredictionWriter, output_format  # noqa: F401  (zoo predict -o, --json)

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
    # Not imported here: a Ctrl-C during start-up interrupts torch's import half-way, and importing the
    # trainer (so torch) again to report it ends in a circular-import error or a crash. An Interrupted
    # can only come from a run writer already imported.
    Interrupted = getattr(sys.modules.get(f"{__package__}.training.run_writer"), "Interrupted", ())

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


def _exit_on_ctrl_c():
    """Ctrl-C ends the command at once, in one line, until the trainer takes it over (it checkpoints and
    says how to resume). As a KeyboardInterrupt it would land inside an import half the time: torch,
    numpy or a plugin left half-imported, a library swallowing it, then odd errors or a crash. Nothing is
    saved before the trainer starts, and every file zoo writes is renamed into place whole, so leaving
    at once loses nothing. Kept as it is when ignored (SIG_IGN: a background job) or set by a host program."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return None  # only the main thread sets handlers; a host program's own handler is left alone

    def leave(signum, frame):
        sys.stdout.flush()
        os.write(2, b"interrupted\n")
        os._exit(EXIT_INTERRUPTED)

    leave.zoo_start_up = True  # the trainer replaces a handler so marked by Python's own (training/trainer.py: train)
    return signal.signal(signal.SIGINT, leave)


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


def setting_option(setting):
    """A click option for a settings.Setting: its one source of type, choices and help."""
    name = setting.flag_name
    if setting.type is bool:
        return click.option(f"{name}/--no-{name[2:]}", setting.name, default=None, help=setting.help)
    kind = click.Choice(list(setting.choices)) if setting.choices else setting.type
    return click.option(name, setting.name, type=kind, default=None, help=setting.help)


def train_options(fn):
    from .base.settings import SETTINGS

    options = [setting_option(s) for s in SETTINGS if s.flag] + [
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Any setting or component option, e.g. --set head.dropout=0.3 (repeatable)."),
        click.option("--config", type=click.Path(dir_okay=False), help="A TOML run file; flags win over it."),
        click.option("--resume", type=click.Path(file_okay=False), help="Continue an interrupted or finished run."),
        click.option("-q", "--quiet", is_flag=True, help="Only the final line."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def exporter_options(sets: tuple[str, ...]) -> dict[str, Any]:
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
        previous = _exit_on_ctrl_c()  # restored on the way out: main() called from Python (tests) keeps its own
        try:
            self._main(args, prog_name, complete_var, **extra)
        finally:
            if previous is not None:
                import signal

                signal.signal(signal.SIGINT, previous)

    def _main(self, args, prog_name, complete_var, **extra):
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


def settings_from(flags: dict[str, Any], sets: tuple[str, ...]) -> dict[str, Any]:
    """The settings a training command was given: its flags (those given), then each --set KEY=VALUE."""
    from .base.config import parse_set

    return {**{k: v for k, v in flags.items() if v is not None}, **parse_set(sets)}


def launch_processes(nproc: int, command: str) -> None:
    """--nproc N: the same command once per process under torchrun; this process exits with theirs."""
    from .base import distributed

    if nproc > 1 and not distributed.under_launcher():
        sys.exit(distributed.launch(nproc, distributed.command_line(command)))


def is_worker() -> bool:
    """One of several training processes, but not rank 0 (which speaks for all)."""
    from .base import distributed

    return distributed.is_worker()
