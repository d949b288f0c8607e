"""Named components, looked up by exact name or by family ("timm:resnet18"), listed with wildcards."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import ZooError, did_you_mean

KINDS = ("dataset", "backbone", "head", "loss", "exporter", "task")
PLURAL = {k: ("losses" if k == "loss" else f"{k}s") for k in KINDS}


@dataclass
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_family(self) -> bool:
        return self.name.endswith(":*")

    @property
    def prefix(self) -> str:
        return self.name[:-2]

    def family_names(self) -> list[str]:
        return list(self.extra["names"]()) if "names" in self.extra else []

    def family_has(self, name: str) -> bool:
        if "has" in self.extra:
            return bool(self.extra["has"](name))
        return name in self.family_names()


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
        out = [n for n in self._items if not n.endswith(":*") and fnmatch.fnmatch(n, pattern)]
        for fam in self.families():
            for n in fam.family_names():
                qualified = f"{fam.prefix}:{n}"
                if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(qualified, pattern):
                    out.append(qualified)
        return out

    def families(self) -> list[Component]:
        return [c for c in self._items.values() if c.is_family]

    def resolve(self, name: str) -> tuple[Component, str]:
        """The component for `name` and the name to pass to its factory.

        Exact names win; "prefix:model" picks a family explicitly; a bare name falls through the
        families in registration order (so a timm name works without "timm:")."""
        if name in self._items and not name.endswith(":*"):
            return self._items[name], name
        prefix, sep, rest = name.partition(":")
        if sep and f"{prefix}:*" in self._items:
            fam = self._items[f"{prefix}:*"]
            if fam.family_has(rest):
                return fam, rest
            raise ZooError(f"unknown {self.kind} '{name}'{did_you_mean(rest, fam.family_names())}"
                           f"; list them with: zoo list --backbones '{prefix}:*'")
        for fam in self.families():
            if fam.family_has(name):
                return fam, name
        candidates = [n for n in self._items if not n.endswith(":*")]
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
        component, local_name = self.resolve(name)
        if self.kind == "backbone":
            return component.factory(local_name, *args, **kwargs)
        try:
            return component.factory(*args, **kwargs)
        except TypeError as e:
            # The usual cause is an option the factory does not take: name it for the user.
            if "unexpected keyword argument" in str(e):
                bad = str(e).split("unexpected keyword argument")[-1].strip(" '\"")
                raise ZooError(f"{self.kind} '{name}' has no option '{bad}'") from None
            raise
