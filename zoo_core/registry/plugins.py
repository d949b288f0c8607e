"""Loading plugins: zoo's built-ins and everything installed under the 'zoo' entry-point group.

One path for both: the built-in module is registered with the same plugin manager and its
components arrive through the same hooks as any third-party plugin's. Loading imports each plugin's
registration module only (no torch, when its components are registered as "module:attr" references),
so `zoo list` and `zoo --help` answer at once; implementations are imported when a component is used.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pluggy

from ..base.errors import ZooError
from ..contract import hookspecs
from ..contract.specs import CommandSpec, load
from .registries import KINDS, PLURAL, SPEC_TYPES, Component, Registry

ENTRY_POINT_GROUP = "zoo"
BUILTIN_MODULES = ["zoo_core.default_plugins.builtin"]


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str  # "builtin" or the distribution that installed it
    module: str
    error: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)
    # what this plugin registered under a name another plugin (loaded first) already has: left out, so
    # a clash disables the later registration only, never zoo ("head 'mlp' (plugin 'classify' has it)")
    disabled: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "source": self.source, "module": self.module,
                "status": "broken" if self.error else "ok", "error": self.error, "components": self.components,
                "disabled": self.disabled}


@dataclass
class Zoo:
    """Everything the installed plugins bring: one registry per component kind, and the plugins."""

    registries: dict[str, Registry]
    plugins: list[PluginInfo]
    # name -> (click command, or the CommandSpec of one not imported yet; plugin)
    commands: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def command(self, name: str) -> Any:
        """The click command a plugin adds as `zoo NAME` (imported now if registered by reference), or None."""
        found = self.commands.get(name)
        if found is None:
            return None
        command, plugin = found
        if isinstance(command, CommandSpec):
            import click

            command = load(command.factory)
            if not isinstance(command, click.Command):
                raise ZooError(f"plugin '{plugin}': command 'zoo {name}' names {found[0].factory!r}, which is not a "
                               "click command")
            self.commands[name] = (command, plugin)
        return command

    @property
    def datasets(self) -> Registry: return self.registries["dataset"]
    @property
    def backbones(self) -> Registry: return self.registries["backbone"]
    @property
    def heads(self) -> Registry: return self.registries["head"]
    @property
    def losses(self) -> Registry: return self.registries["loss"]
    @property
    def exporters(self) -> Registry: return self.registries["exporter"]
    @property
    def tasks(self) -> Registry: return self.registries["task"]


def _core_version() -> str:
    try:
        return md.version("zoo-core")
    except md.PackageNotFoundError:
        return "0+unknown"


def _load_plugin_objects(pm: pluggy.PluginManager) -> list[PluginInfo]:
    infos: list[PluginInfo] = []
    for modname in BUILTIN_MODULES:
        pm.register(importlib.import_module(modname), name="builtin")
        infos.append(PluginInfo("builtin", _core_version(), "zoo-core", modname))
    seen: set[str] = set()
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(ep.name)
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        info = PluginInfo(ep.name, version, dist, ep.value)
        try:
            pm.register(ep.load(), name=ep.name)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # a broken plugin must not take the others down, not even by sys.exit()
            info.error = _describe(e)
        infos.append(info)
    return infos


def _describe(e: BaseException, where: str = "") -> str:
    """A plugin's failure in one line (SystemExit from a plugin parsing sys.argv at import included)."""
    text = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}{' in ' + where if where else ''}{': ' + text if text else ''}"


Pending = dict[str, list[tuple[str, Component]]]


def _collect(pm: pluggy.PluginManager, infos: list[PluginInfo]) -> Pending:
    """Each plugin's components, gathered first and added to the registries only once all its hooks
    ran (_commit): a plugin whose hook fails half-way is marked broken and offers none of them."""
    by_name = {i.name: i for i in infos}
    pending: dict[str, list[tuple[str, Component]]] = {i.name: [] for i in infos}
    for kind in KINDS:
        hook = getattr(pm.hook, f"register_{PLURAL[kind]}")
        for impl in hook.get_hookimpls():  # registration order: built-ins first, then plugins by name
            info = by_name[impl.plugin_name]
            if info.error:
                continue

            def register(spec, *extra, _kind=kind, _plugin=impl.plugin_name, **options) -> None:
                expected = SPEC_TYPES[_kind]
                if extra or options:  # the old register(name, factory, ...) call
                    raise TypeError(f"register_{PLURAL[_kind]} takes one {expected.__name__} "
                                    f"{'subclass' if _kind == 'task' else 'object'}, e.g. register("
                                    f"{'MyTask' if _kind == 'task' else expected.__name__ + '(name, factory, ...)'}), "
                                    f"not register({', '.join(['name', *(['...'] * len(extra)), *options])})")
                if _kind == "task" and isinstance(spec, type):  # the class itself: its module is imported already
                    from ..contract.components import Task

                    ok = issubclass(spec, Task)
                else:
                    ok = isinstance(spec, expected)
                if not ok:
                    raise TypeError(f"register_{PLURAL[_kind]} must register {expected.__name__} objects"
                                    f"{' or Task subclasses' if _kind == 'task' else ''}, got {type(spec).__name__}")
                if _kind == "task" and not (spec.name and spec.output):
                    raise TypeError(f"task {'class ' + spec.__name__ if isinstance(spec, type) else spec.name!r} "
                                    "must set `name` and `output`")
                pending[_plugin].append((_kind, Component(_kind, spec, _plugin)))

            try:
                impl.function(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as e:
                info.error = _describe(e, f"register_{PLURAL[kind]}")
    return pending


def _commit(pending: Pending, infos: list[PluginInfo]) -> dict[str, Registry]:
    registries = {kind: Registry(kind) for kind in KINDS}
    owners: dict[tuple[str, str], str] = {}  # (kind, name) -> the plugin whose registration is kept
    for kind in KINDS:  # registration order: built-ins first, then plugins by name
        for info in infos:
            if info.error:
                continue
            for component_kind, component in pending[info.name]:
                if component_kind == kind:
                    first = owners.setdefault((kind, component.name), info.name)
                    if first != info.name or component.name in info.components.get(PLURAL[kind], ()):
                        # the same name twice: the first registration (built-ins first, then by name) wins
                        info.disabled.append(f"{kind} '{component.name}' (plugin '{first}' has it)")
                        continue
                    registries[kind].add(component)
                    info.components.setdefault(PLURAL[kind], []).append(component.name)
    return registries


def _collect_commands(pm: pluggy.PluginManager, infos: list[PluginInfo]) -> dict[str, tuple[Any, str]]:
    """Commands plugins add to `zoo` (llm's register_commands): name -> (click command or CommandSpec, plugin).
    A hook may add click commands to `cli` (imported now), or register(CommandSpec(...)) (imported when run)."""
    import click

    by_name = {i.name: i for i in infos}
    commands: dict[str, tuple[Any, str]] = {}
    for impl in pm.hook.register_commands.get_hookimpls():
        info = by_name[impl.plugin_name]
        if info.error:
            continue
        group = click.Group()
        specs: dict[str, CommandSpec] = {}

        def register(spec, _specs=specs) -> None:
            if not isinstance(spec, CommandSpec):
                raise TypeError(f"register_commands' register takes CommandSpec objects, got {type(spec).__name__}")
            _specs[spec.name] = spec

        try:
            impl.function(**{arg: {"cli": group, "register": register}[arg] for arg in impl.argnames})
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            info.error = _describe(e, "register_commands")
            continue
        for name, command in [*group.commands.items(), *specs.items()]:
            if name in commands:
                info.disabled.append(f"command 'zoo {name}' (plugin '{commands[name][1]}' has it)")
                continue
            commands[name] = (command, impl.plugin_name)
            info.components.setdefault("commands", []).append(name)
    return commands


@lru_cache(maxsize=1)
def get_zoo() -> Zoo:
    """Load every plugin once per process and build the component registries."""
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    infos = _load_plugin_objects(pm)
    pending = _collect(pm, infos)
    commands = _collect_commands(pm, infos)
    zoo = Zoo(_commit(pending, infos), infos, commands)
    clashes = [f"plugin '{i.name}': {', '.join(i.disabled)}" for i in infos if i.disabled]
    if clashes:  # once per process (get_zoo is cached); zoo list names them too
        import sys

        print(f"Warning: registrations under a name already taken are disabled: {'; '.join(clashes)}; "
              "uninstall one of the plugins or rename the component", file=sys.stderr)
    return zoo
