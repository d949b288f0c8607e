"""zoo: transfer learning for computer vision, one command per task, extended by plugins.

For plugins: `from zoo_core import hookimpl, Task, Metrics, DataSplits, DataConfig, Backbone, ZooError`,
and `atomic_write`, `cache_dir` for files a plugin writes.
For scripts: `zoo_core.train(...)`, `zoo_core.load_run(...)`, `zoo_core.load_pretrained(...)`, `zoo_core.get_zoo()`.
"""

from .errors import ZooError  # noqa: F401
from .hookspecs import hookimpl  # noqa: F401

__all__ = ["hookimpl", "ZooError", "Backbone", "DataConfig", "DataSplits", "Metrics", "Task",
           "atomic_write", "cache_dir", "train", "load_run", "load_pretrained", "get_zoo"]

# Everything else loads on first use: these pull in torch, and `zoo --help` should not wait for it.
_LAZY = {"Backbone": "components", "DataConfig": "components", "DataSplits": "components", "Metrics": "components",
         "Task": "components", "atomic_write": "artifacts", "cache_dir": "artifacts", "train": "api",
         "load_run": "api", "Run": "api", "load_pretrained": "api", "Pretrained": "api", "get_zoo": "plugins"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'zoo_core' has no attribute {name!r}")
