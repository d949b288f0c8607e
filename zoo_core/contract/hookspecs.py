"""The plugin contract: one hook per kind of component, and one for commands.

Each registering hook receives a `register` function and calls it once per component, with a typed
spec from zoo_core. Name the code as "module:attr" strings and zoo imports it only when the component
is used, so `zoo list` and `zoo --help` never wait for torch (the callables themselves work too):

    from zoo_core import HeadSpec, hookimpl

    @hookimpl
    def register_heads(register):
        register(HeadSpec("mlp", "my_plugin.heads:mlp_head", output="logits/class",
                          description="Linear-ReLU-Dropout-Linear"))

zoo remembers which plugin registered each name; two plugins registering the same name is an error
naming both; a plugin that fails to import or register is listed as broken and the rest keep working.
What each factory is called with and returns is in the spec's docstring (zoo_core/contract/specs.py):

- register_datasets   DatasetSpec(name, factory, output, matches=, recipe=)
- register_backbones  BackboneSpec(name, factory, family=, names=, has=, weights=)
- register_heads      HeadSpec(name, factory, output, input="pooled"|"pyramid"|"pyramid+image")
- register_losses     LossSpec(name, factory, accepts=(output kinds...))
- register_exporters  ExporterSpec(name, factory, suffix)
- register_tasks      TaskSpec(name, "pkg.task:MyTask", output), or the Task subclass itself
- register_commands   register(CommandSpec(name, "pkg.commands:my_command", description)), or add click
                      commands to `cli`, the `zoo` click group (`@cli.command()`: imported at start-up)

pluggy passes a hook only the arguments it names, so hooks can grow without breaking old plugins.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_datasets(register):
    """Register datasets (DatasetSpec): loaders that turn a path (or nothing, for embedded data) into splits."""


@hookspec
def register_backbones(register):
    """Register backbones (BackboneSpec): feature extractors, usually pretrained, or families of them."""


@hookspec
def register_heads(register):
    """Register heads (HeadSpec): small trainable modules put on a backbone's pooled features or pyramid."""


@hookspec
def register_losses(register):
    """Register losses (LossSpec), each with the output kinds it accepts."""


@hookspec
def register_exporters(register):
    """Register exporters (ExporterSpec) that write a trained model in a deployable format."""


@hookspec
def register_tasks(register):
    """Register tasks (TaskSpec, or Task subclasses): what `zoo train <task>` trains, and how its outputs are read."""


@hookspec
def register_commands(cli, register):
    """Add subcommands to `zoo`: register(CommandSpec(name, "pkg.module:command", description)), imported
    when run; or @cli.command() def mycommand(): ... on `cli`, the `zoo` click group."""
