"""The core tests' fixtures. Those a plugin's tests need too (`image_folder`, `in_tmp`, `hub`, `offline`,
`tiny_task`) are zoo_core.testing's, registered by zoo-core's pytest11 entry point; the core tests' fast
settings are in fast_settings.py (imported by name: a conftest module never is, as every test folder may have
its own)."""

from __future__ import annotations

import sys

import pytest

from zoo_core.testing import isolate_environment

isolate_environment()  # no network, and a fresh zoo cache for the session


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One quick run on the embedded digits (2 epochs), shared by predict/eval/export tests."""
    from zoo_core import train

    out = tmp_path_factory.mktemp("digits") / "run"
    train("classify", out=str(out), epochs=2, quiet=True)
    return out


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where fake distributions are 'installed'; plugins reload around the test,
    and the modules imported from it are forgotten after it."""
    from zoo_core.registry.plugins import get_zoo

    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    get_zoo.cache_clear()
    yield path
    get_zoo.cache_clear()
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(path)):
            del sys.modules[name]
