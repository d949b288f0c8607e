"""What plugins register: one spec per component, and the lazy references that keep registering cheap.

Nothing here imports torch: `zoo list` and `zoo --help` read every spec without importing any
implementation. A spec's callables (factory, matches, names, has) may be the objects themselves, or
"module:attr" strings that zoo imports the first time the component is used (the way entry points and
napari's npe2 manifests name code). Both kinds work everywhere; strings keep start-up fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union

from ..base.errors import ZooError


class Lazy:
    """A callable named by "module:attr" (attr may be dotted), imported on first use.

    Calling it calls the target; `load()` returns the target itself (a class, a click command).
    The module must exist when the reference is made (checked without executing it), so a typo
    marks the plugin broken at registration, not at training time."""

    __slots__ = ("ref", "module", "attr", "_target")

    def __init__(self, ref: str):
        module, sep, attr = ref.partition(":")
        if not sep or not module or not attr or not all(p.isidentifier() for p in [*module.split("."), *attr.split(".")]):
            raise ValueError(f"{ref!r} is not a reference of the form 'package.module:name'")
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError) as e:
            raise ValueError(f"{ref!r}: cannot find module {module!r} ({type(e).__name__}: {e})") from None
        if found is None:
            raise ValueError(f"{ref!r}: no module named {module!r}")
        self.ref, self.module, self.attr, self._target = ref, module, attr, None

    @property
    def loaded(self) -> bool:
        return self._target is not None

    def origin(self) -> str | None:
        """The file the target is defined in, found without importing it."""
        found = importlib.util.find_spec(self.module)
        return found.origin if found is not None else None

    def load(self) -> Any:
        if self._target is None:
            try:
                target: Any = importlib.import_module(self.module)
                for part in self.attr.split("."):
                    target = getattr(target, part)
            except (KeyboardInterrupt, ZooError):
                raise
            except BaseException as e:  # a plugin's module failing at import must be one line, like at registration
                text = " ".join(str(e).split())[:200]
                raise ZooError(f"cannot load {self.ref} ({type(e).__name__}{': ' + text if text else ''}); "
                               "the plugin that registered it is broken: reinstall or fix it") from None
            self._target = target
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    @property
    def __signature__(self):  # inspect.signature(lazy) is the target's (importing it)
        import inspect

        return inspect.signature(self.load())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lazy) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(self.ref)

    def __repr__(self) -> str:
        return f"Lazy({self.ref!r})"


Ref = Union[Callable[..., Any], str]  # a callable, or "module:attr" for one imported on first use


def load(obj: Any) -> Any:
    """The object a spec field refers to: the callable itself, or a Lazy reference's target."""
    return obj.load() if isinstance(obj, Lazy) else obj


class _Spec:
    """Turns "module:attr" strings in callable fields into Lazy references (a frozen dataclass base)."""

    _callables: tuple[str, ...] = ("factory",)

    def __post_init__(self) -> None:
        for name in self._callables:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Lazy(value))
            elif value is not None and not callable(value):
                raise TypeError(f"{type(self).__name__}.{name} must be a callable or a 'module:attr' string, "
                                f"got {type(value).__name__}")


@dataclass(frozen=True)
class DatasetSpec(_Spec):
    """A dataset: factory(source, *, data_config, seed, val_fraction, **options) -> DataSplits.
    `source` is the user's --data (None for an embedded dataset); at evaluation time
    `reference_info=` carries the trained model's info so labels are indexed as the model learned them."""

    name: str
    factory: Ref
    output: str  # the output kind its targets label, e.g. "logits/class"
    description: str = ""
    matches: Ref | None = None  # can it read this --data path? (used to infer --dataset)
    recipe: dict[str, Any] = field(default_factory=dict)  # settings that suit this data (the user's win)
    _callables = ("factory", "matches")


@dataclass(frozen=True)
class BackboneSpec(_Spec):
    """A backbone, or with family=True a family of them ("timm": any timm model by name).
    factory(name, *, pretrained, in_chans=None, image_size=None, **options) -> Backbone.

    `weights` says where pretrained weights come from, so a task's default can pick a backbone whose
    weights can be had (see zoo_core.model.backbones.weights_status): a string, or for a family a function
    name -> string: "package:DISTRIBUTION" (installed with a package: offline), "hf-hub:REPO_ID" (the
    Hugging Face Hub, or its local cache), "url:URL" (a download torch.hub caches), or "none"."""

    name: str
    factory: Ref
    description: str = ""
    family: bool = False
    names: Ref | None = None  # family members, for listing and did-you-mean
    has: Ref | None = None  # fast membership test (default: name in names())
    local_weights: bool = False  # pretrained weights install with the plugin: works offline
    weights: Ref | None = None  # where pretrained weights come from (above)
    _callables = ("factory", "names", "has")

    def __post_init__(self) -> None:
        if isinstance(self.weights, str) and ":" in self.weights and self.weights.split(":")[0] not in WEIGHT_SOURCES:
            object.__setattr__(self, "weights", Lazy(self.weights))  # a function name -> source, imported on use
        if isinstance(self.weights, str) and self.weights.startswith("package:"):
            object.__setattr__(self, "local_weights", True)
        super().__post_init__()

    def weights_of(self, name: str) -> str:
        """Where the pretrained weights of `name` (this backbone, or a member of this family) come from."""
        if self.weights is None:
            return "package:?" if self.local_weights else "unknown"
        return self.weights if isinstance(self.weights, str) else str(self.weights(name))


WEIGHT_SOURCES = ("package", "hf-hub", "url", "none", "unknown")


@dataclass(frozen=True)
class HeadSpec(_Spec):
    """A head: factory(backbone, info, **options) -> nn.Module, taking the backbone's pooled features
    (input="pooled", width backbone.num_features) or its pyramid (input="pyramid", levels in
    backbone.feature_info), or the pyramid and the model's input image, called head(pyramid, image)
    (input="pyramid+image": an image-to-image head that predicts a residual), and producing outputs of kind `output`, or of any of several kinds when the
    same tensor serves several tasks (one logit per class: single- and multi-label classification)."""

    name: str
    factory: Ref
    output: str | tuple[str, ...]
    input: Literal["pooled", "pyramid", "pyramid+image"] = "pooled"
    description: str = ""


@dataclass(frozen=True)
class LossSpec(_Spec):
    """A loss: factory(info, **options) -> callable(outputs, targets) -> tensor, or a dict of named
    terms. An nn.Module loss may hold trainable parameters; they are optimised with the head."""

    name: str
    factory: Ref
    accepts: tuple[str, ...]  # output kinds, wildcards allowed ("regression/*")
    description: str = ""


@dataclass(frozen=True)
class ExporterSpec(_Spec):
    """An exporter: factory(model, example, path, *, output_names, metadata, **options) -> dict of facts
    to print (size, parity). `model` is the task's deployment model; `example` a real validation batch
    when there is one; `metadata` is JSON-able (task, classes, preprocessing, zoo version) and belongs in
    the file. A factory may also take `calibration` (n -> input batches from the training data, for
    quantization) and `evaluate` (an exported file -> its validation scores); both are given when asked
    for by name."""

    name: str
    factory: Ref
    suffix: str
    description: str = ""


@dataclass(frozen=True)
class TaskSpec(_Spec):
    """A task registered without importing it: `factory` names its Task subclass ("pkg.task:MyTask").
    The class may leave name, output and description out (they are taken from here); if it sets them
    they must agree. Registering the class itself (register(MyTask)) works too, and imports it."""

    name: str
    factory: Ref
    output: str
    description: str = ""


@dataclass(frozen=True)
class CommandSpec(_Spec):
    """A `zoo` subcommand registered without importing it: `factory` names a click command object
    ("pkg.commands:my_command"), loaded when the command runs or its own --help is asked for;
    `description` is its line in `zoo --help` (default: the first line of the command function's
    docstring, read from its source)."""

    name: str
    factory: Ref
    description: str = ""
