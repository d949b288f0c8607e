"""zoo: transfer learning for computer vision, one command per task, extended by plugins."""

from .hookspecs import hookimpl  # noqa: F401  (plugins: `from zoo_core import hookimpl`)
from .errors import ZooError  # noqa: F401
from .components import Backbone, DataConfig, DataSplits, Metrics, Task  # noqa: F401

__all__ = ["hookimpl", "ZooError", "Backbone", "DataConfig", "DataSplits", "Metrics", "Task",
           "train", "load_run", "get_zoo"]


def __getattr__(name):
    # Lazy: the API imports the trainer, which imports plugins' hookimpl from here.
    if name in ("train", "load_run", "Run"):
        from . import api
        return getattr(api, name)
    if name == "get_zoo":
        from .plugins import get_zoo
        return get_zoo
    raise AttributeError(name)
