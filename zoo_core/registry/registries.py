"""Registered components, looked up by exact name or by family ("timm:resnet18"), listed with wildcards;
their options checked against the factory's signature before anything is built.

Nothing here imports torch or a component's implementation until the component is used: a factory
registered as "module:attr" is imported on first use, its options for `zoo list --json` are read from
its source (ast), and a family's member names are cached on disk until the environment changes."""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import inspect
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..base.errors import ZooError, did_you_mean
from ..base.settings import coerce
from ..contract.specs import (
    BackboneSpec,
    DatasetSpec,
    ExporterSpec,
    HeadSpec,
    Lazy,
    LossSpec,
    TaskSpec,
    load,
)

KINDS = ("dataset", "backbone", "head", "loss", "exporter", "task")
PLURAL = {k: ("losses" if k == "loss" else f"{k}s") for k in KINDS}
SPEC_TYPES: dict[str, type] = {"dataset": DatasetSpec, "backbone": BackboneSpec, "head": HeadSpec, "loss": LossSpec,
                               "exporter": ExporterSpec, "task": TaskSpec}  # or, for a task, the Task subclass itself
# Arguments the core passes itself: never user options, so never listed or checked as such.
CORE_ARGUMENTS = {
    "dataset": {"source", "data_config", "seed", "val_fraction", "reference_info"},
    "backbone": {"name", "pretrained", "in_chans", "image_size"},
    "head": {"backbone", "info"},
    "loss": {"info"},
    "exporter": {"model", "example", "path", "output_names", "metadata", "calibration", "evaluate"},
    "task": set(),
}
# Options that would make a backbone library read another file or fetch other weights: a TOML file, a
# --set or a tampered config.json must never steer that (weights come only from --weights, checked).
FILE_OPTIONS = {"checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_strict",
                "weights", "weights_path", "file", "url", "hf_hub_id", "model_dir"}


@dataclass
class Component:
    """A registered spec (for tasks, a TaskSpec or the Task subclass itself) and the plugin that brought it."""

    kind: str
    spec: Any
    plugin: str
    _names: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def lazy(self) -> bool:
        """Registered by reference and not imported yet."""
        factory = self.spec if isinstance(self.spec, type) else self.spec.factory
        return isinstance(factory, Lazy) and not factory.loaded

    @property
    def factory(self) -> Any:
        """What builds the component (imported now if it was registered as "module:attr")."""
        if self.kind == "task":
            return self._task_class()
        return load(self.spec.factory)

    def _task_class(self) -> type:
        if isinstance(self.spec, type):
            return self.spec
        from ..contract.components import Task

        cls = load(self.spec.factory)
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ZooError(f"plugin '{self.plugin}': task '{self.name}' names {self.spec.factory!r}, which is not a Task subclass")
        for attr in ("name", "output", "description"):
            own, declared = getattr(cls, attr), getattr(self.spec, attr)
            if not own:  # one place to say it: the registration
                setattr(cls, attr, declared)
            elif own != declared and attr != "description":
                raise ZooError(f"plugin '{self.plugin}': task class {cls.__name__} has {attr} {own!r} but is registered "
                               f"as {declared!r}; make them agree (or leave it out of the class)")
        return cls

    @property
    def is_family(self) -> bool:
        return self.kind == "backbone" and self.spec.family

    def family_names(self) -> list[str]:
        if not (self.is_family and self.spec.names):
            return []
        if self._names is None:
            self._names = _cached_names(self) if isinstance(self.spec.names, Lazy) else list(self.spec.names())
        return self._names

    def family_has(self, name: str) -> bool:
        if self.spec.has is not None:
            return bool(self.spec.has(name))
        return name in self.family_names()

    def may_have(self, name: str) -> bool:
        """family_has without importing the family: from its cached names when its test is a reference."""
        if isinstance(self.spec.has, Lazy) and not self.spec.has.loaded and self.spec.names is not None:
            return name in self.family_names()
        return self.family_has(name)

    def options(self) -> dict[str, Any] | None:
        """The user options the factory takes, with defaults (inspect.Parameter.empty when required);
        None when it takes any (**options passed on, e.g. to timm). Read from the source while the
        factory is not imported, so `zoo list --json` needs no torch."""
        if self.lazy:
            found = static_options(self.spec.factory, CORE_ARGUMENTS[self.kind])
            if found is not NOT_FOUND:
                return found
        try:
            params = inspect.signature(self.factory).parameters.values()
        except (TypeError, ValueError):
            return None
        out: dict[str, Any] = {}
        for p in params:
            if p.kind is p.VAR_KEYWORD:
                return None
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in CORE_ARGUMENTS[self.kind]:
                out[p.name] = p.default
        return out

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Options checked by name against the factory's signature and coerced to its defaults' types;
        a problem is a one-line ZooError naming the component, the option and the accepted ones."""
        if not options:
            return {}
        if self.kind == "backbone":
            steering = sorted(set(options) & FILE_OPTIONS)
            if steering:
                raise ZooError(f"backbone '{self.name}' option '{steering[0]}' would load weights from elsewhere; "
                               "zoo does not take it: give a weights file with --weights FILE")
        accepted = self.options()
        if accepted is None:
            return dict(options)
        shown = ", ".join(f"{k}={v!r}" if v is not inspect.Parameter.empty else k for k, v in accepted.items()) or "none"
        out = {}
        for key, value in options.items():
            if key not in accepted:
                raise ZooError(f"{self.kind} '{self.name}' has no option '{key}'{did_you_mean(key, accepted)}; "
                               f"its options: {shown}")
            default = accepted[key]
            if isinstance(default, (bool, int, float, str)) and value is not None:
                try:
                    value = coerce(value, float if type(default) is int and isinstance(value, float)
                                   and not value.is_integer() else type(default))
                except (TypeError, ValueError):
                    raise ZooError(f"{self.kind} '{self.name}' option '{key}' must be of type {type(default).__name__} "
                                   f"(default {default!r}), got {value!r}") from None
                if type(default) is int and isinstance(value, float):
                    raise ZooError(f"{self.kind} '{self.name}' option '{key}' must be an integer, got {value!r}")
            out[key] = value
        return out


class Registry:
    """All components of one kind, from every plugin."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Component] = {}

    def add(self, component: Component) -> None:
        existing = self._items.get(component.name)
        if existing is not None:
            raise ZooError(
                f"{self.kind} '{component.name}' is registered by both plugin '{existing.plugin}' "
                f"and plugin '{component.plugin}': uninstall one of them or rename the component"
            )
        self._items[component.name] = component

    def __iter__(self) -> Iterator[Component]:
        return iter(self._items.values())

    def __contains__(self, name: str) -> bool:
        try:
            self.resolve(name)
        except ZooError:
            return False
        return True

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard; families are expanded as 'prefix:name'."""
        out = [n for n, c in self._items.items() if not c.is_family and fnmatch.fnmatch(n, pattern)]
        for fam in self.families():
            for n in fam.family_names():
                qualified = f"{fam.name}:{n}"
                if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(qualified, pattern):
                    out.append(qualified)
        return out

    def knows(self, name: str) -> bool:
        """Whether `name` would resolve, answered without importing a family (for `zoo list`)."""
        if name in self._items and not self._items[name].is_family:
            return True
        prefix, sep, rest = name.partition(":")
        fam = self._items.get(prefix)
        if sep and fam is not None and fam.is_family:
            return fam.may_have(rest)
        return any(f.may_have(name) for f in self.families())

    def families(self) -> list[Component]:
        return [c for c in self._items.values() if c.is_family]

    def resolve(self, name: str) -> tuple[Component, str]:
        """The component for `name` and the name to pass to its factory.

        Exact names win; "prefix:model" picks a family explicitly; a bare name falls through the
        families in registration order (so a timm name works without "timm:")."""
        if name in self._items and not self._items[name].is_family:
            return self._items[name], name
        prefix, sep, rest = name.partition(":")
        fam = self._items.get(prefix)
        if sep and fam is not None and fam.is_family:
            if fam.family_has(rest):
                return fam, rest
            raise ZooError(f"unknown {self.kind} '{name}'{did_you_mean(rest, fam.family_names())}"
                           f"; list them with: zoo list --backbones '{prefix}:*'")
        for fam in self.families():
            if fam.family_has(name):
                return fam, name
        candidates = [n for n, c in self._items.items() if not c.is_family]
        hint = did_you_mean(name, candidates)
        if not hint:
            for fam in self.families():
                hint = did_you_mean(name, fam.family_names())
                if hint:
                    break
        raise ZooError(f"unknown {self.kind} '{name}'{hint}; see: zoo list")

    def get(self, name: str) -> Component:
        return self.resolve(name)[0]

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build a component: core arguments as given, user options checked first. A ValueError or
        TypeError the factory raises about its options becomes a one-line error naming the component."""
        component, local_name = self.resolve(name)
        core = {k: v for k, v in kwargs.items() if k in CORE_ARGUMENTS[self.kind]}
        options = component.check_options({k: v for k, v in kwargs.items() if k not in CORE_ARGUMENTS[self.kind]})
        if self.kind == "backbone":
            args = (local_name, *args)
        try:
            return component.factory(*args, **core, **options)
        except ZooError:
            raise
        except (TypeError, ValueError, AssertionError, RuntimeError) as e:
            if not options:
                raise
            given = ", ".join(f"{k}={v!r}" for k, v in options.items())
            raise ZooError(f"{self.kind} '{name}' rejected its options ({given}): "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None

    def matching(self, output: str) -> list[Component]:
        """Components compatible with an output kind: heads producing it, losses accepting it, datasets labelling it."""
        return [c for c in self if outputs_match(c, output)]


def outputs_match(component: Component, output: str) -> bool:
    spec = component.spec
    if isinstance(spec, LossSpec):
        return any(fnmatch.fnmatch(output, pattern) for pattern in spec.accepts)
    if isinstance(spec, HeadSpec):
        return output in ((spec.output,) if isinstance(spec.output, str) else spec.output)
    if isinstance(spec, DatasetSpec):
        return spec.output == output
    return True


# ------------------------------------------------------------------- reading a lazy component, not importing it

NOT_FOUND = object()
_TREES: dict[str, ast.Module] = {}


def static_options(ref: Lazy, core: set[str]) -> dict[str, Any] | None | object:
    """What Component.options() would say, read from the factory's source with ast instead of importing
    it (a function, or a class's own __init__; defaults must be literals). NOT_FOUND when the source
    cannot tell (an inherited __init__, a computed default, a factory made by a call): then it is imported."""
    tree = _tree(ref.origin())
    if tree is None or "." in ref.attr:
        return NOT_FOUND
    node = next((n for n in reversed(tree.body) if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                 and n.name == ref.attr), None)
    if node is None or _rebound(tree, ref.attr) or node.decorator_list:  # a decorator may change the signature
        return NOT_FOUND
    if isinstance(node, ast.ClassDef):
        if node.bases and not _own_init(node):
            return NOT_FOUND
        node = _own_init(node)
        if node is None:
            return {}
        skip_first = True
    else:
        skip_first = False
    a = node.args
    if a.kwarg is not None:
        return None
    positional = [*a.posonlyargs, *a.args]
    defaults: list[Any] = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = list(zip(positional, defaults))[len(a.posonlyargs):]  # positional-only ones are never options
    if skip_first and not a.posonlyargs:
        params = params[1:]
    params += list(zip(a.kwonlyargs, [d if d is not None else inspect.Parameter.empty for d in a.kw_defaults]))
    out: dict[str, Any] = {}
    for arg, default in params:
        if arg.arg in core:
            continue
        if default is not inspect.Parameter.empty:
            default = _literal(default, ref.module, tree)
            if default is NOT_FOUND:
                return NOT_FOUND
        out[arg.arg] = default
    return out


def _rebound(tree: ast.Module, name: str) -> bool:
    """Whether the module also assigns or imports `name` at its top level (which one wins is then unclear)."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return True
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
            return True
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == name for a in stmt.names):
            return True
    return False


def _tree(path: str | None) -> ast.Module | None:
    if not path or not path.endswith(".py"):
        return None
    if path not in _TREES:
        try:
            _TREES[path] = ast.parse(open(path, encoding="utf-8").read(), path)
        except (OSError, SyntaxError, ValueError):
            return None
    return _TREES[path]


def _literal(node: ast.expr, module: str, tree: ast.Module, depth: int = 2) -> Any:
    """A default's value: a literal, or a module constant assigned a literal (IGNORE = 255), here or in the
    module it is imported from (`from .masks import IGNORE`). NOT_FOUND otherwise."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        pass
    if not isinstance(node, ast.Name) or depth == 0:
        return NOT_FOUND
    for stmt in reversed(tree.body):
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets):
            return _literal(stmt.value, module, tree, depth - 1)
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == node.id:
            return _literal(stmt.value, module, tree, depth - 1) if stmt.value is not None else NOT_FOUND
        if isinstance(stmt, ast.ImportFrom) and any((a.asname or a.name) == node.id and a.name == node.id
                                                     for a in stmt.names):
            import importlib.util

            try:
                source = importlib.util.resolve_name("." * stmt.level + (stmt.module or ""), module.rpartition(".")[0]) \
                    if stmt.level else stmt.module
                found = importlib.util.find_spec(source) if source else None
            except (ImportError, ValueError):
                return NOT_FOUND
            other = _tree(found.origin if found else None)
            return _literal(node, source, other, depth - 1) if other is not None else NOT_FOUND
    return NOT_FOUND


def static_docstring(ref: Lazy) -> str:
    """The docstring of the function or class `ref` names, read from its source without importing it."""
    tree = _tree(ref.origin())
    if tree is None:
        return ""
    node = next((n for n in reversed(tree.body) if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                 and n.name == ref.attr), None)
    return (ast.get_docstring(node) or "") if node is not None else ""


def _own_init(node: ast.ClassDef) -> ast.FunctionDef | None:
    return next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)


def _cached_names(component: Component) -> list[str]:
    """A family's member names, cached on disk: listing timm's ~1,300 models needs timm (and torch), which
    `zoo list` should not wait for. The cache is keyed by every installed distribution and version (the
    .dist-info folders on sys.path) and the names function's file, so installing, upgrading or removing a
    package, or editing the function, renews it."""
    ref: Lazy = component.spec.names
    stamp = [ref.ref]
    try:
        stamp.append(str(os.stat(ref.origin() or "").st_mtime_ns))
    except OSError:
        pass
    for folder in sys.path:
        try:
            stamp += sorted(n for n in os.listdir(folder or ".") if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
    key = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    from ..base.artifacts import atomic_write, cache_dir

    try:
        path = cache_dir("families") / f"{component.plugin}-{component.name}.json"
    except OSError:
        path = None
    try:
        saved = json.loads(path.read_text(encoding="utf-8")) if path else {}
        if saved.get("key") == key and isinstance(saved.get("names"), list):
            return saved["names"]
    except (OSError, ValueError, AttributeError):
        pass
    names = [str(n) for n in ref()]
    if path is None:
        return names
    try:  # a cache that cannot be written only costs time
        atomic_write(path, lambda p: p.write_text(json.dumps({"key": key, "names": names})))
    except OSError:
        pass
    return names
