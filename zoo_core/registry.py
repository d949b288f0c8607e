"""Registered components, looked up by exact name or by family ("timm:resnet18"), listed with wildcards;
their options checked against the factory's signature before anything is built."""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass
from typing import Any, Iterator

from .components import BackboneSpec, DatasetSpec, ExporterSpec, HeadSpec, LossSpec, Task
from .errors import ZooError, did_you_mean
from .settings import coerce

KINDS = ("dataset", "backbone", "head", "loss", "exporter", "task")
PLURAL = {k: ("losses" if k == "loss" else f"{k}s") for k in KINDS}
SPEC_TYPES: dict[str, type] = {"dataset": DatasetSpec, "backbone": BackboneSpec, "head": HeadSpec, "loss": LossSpec,
                               "exporter": ExporterSpec, "task": Task}
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
    """A registered spec (or, for tasks, a Task subclass) and the plugin that brought it."""

    kind: str
    spec: Any
    plugin: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def factory(self) -> Any:
        return self.spec if self.kind == "task" else self.spec.factory

    @property
    def is_family(self) -> bool:
        return self.kind == "backbone" and self.spec.family

    def family_names(self) -> list[str]:
        return list(self.spec.names()) if self.is_family and self.spec.names else []

    def family_has(self, name: str) -> bool:
        if self.spec.has is not None:
            return bool(self.spec.has(name))
        return name in self.family_names()

    def options(self) -> dict[str, Any] | None:
        """The user options the factory takes, with defaults (inspect.Parameter.empty when required);
        None when it takes any (**options passed on, e.g. to timm)."""
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
