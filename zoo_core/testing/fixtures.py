"""pytest fixtures for zoo and plugin tests, loaded by pytest through zoo-core's `pytest11` entry point.

A plugin's own tests get them with zoo-core installed and nothing else:

    def test_push_pull(hub, tmp_path):     # a local Hub-compatible server on 127.0.0.1
        ...

    pytestmark = pytest.mark.usefixtures("offline")   # a test module none of whose tests may reach the network

    def test_my_backbone_trains(tiny_task, tmp_path):    # a backbone plugin has no task of its own
        tiny_train(tiny_task, tmp_path, backbone="my-backbone")

    @pytest.mark.zoo_plugins("classify")                  # skipped unless the classify plugin is installed
    def test_my_backbone_predicts_imagenet_classes(): ...
"""

from __future__ import annotations

import pytest

from .hubserver import HubServer, go_offline


def pytest_configure(config):
    config.addinivalue_line("markers", "zoo_plugins(*names): the test needs these zoo plugins installed (names of "
                                       "their 'zoo' entry points); skipped, saying which, when one is not")


def pytest_runtest_setup(item):
    needed = [name for mark in item.iter_markers("zoo_plugins") for name in mark.args]
    if needed:
        import importlib.metadata as md

        installed = {ep.name for ep in md.entry_points(group="zoo")}
        missing = [name for name in needed if name not in installed]
        if missing:
            pytest.skip(f"needs the zoo plugin(s) {', '.join(missing)} installed")


@pytest.fixture
def offline(monkeypatch):
    """No network for this test: HF_HUB_OFFLINE=1 for zoo, huggingface_hub and subprocesses, so pretrained
    weights that are not on disk fail at once with zoo's offline message instead of waiting on a socket.
    A test that also asks for `hub` is online again, to the local server only."""
    go_offline(monkeypatch)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A running HubServer that huggingface_hub, called with its defaults, talks to; stopped after the test.

    huggingface_hub copies environment variables into module constants at import time, so both are set:
    - env (for code that reads os.environ, and for subprocesses): HF_ENDPOINT, HF_TOKEN, HF_HOME=<tmp>/hf_home,
      HF_HUB_CACHE=<HF_HOME>/hub, HF_HUB_DISABLE_TELEMETRY=1; HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE and HF_TOKEN_PATH
      unset.
    - huggingface_hub.constants: ENDPOINT, HUGGINGFACE_CO_URL_TEMPLATE (what hf_hub_url builds on), HF_HOME,
      HF_HUB_CACHE, HF_ASSETS_CACHE, HF_XET_CACHE, HF_TOKEN_PATH, HF_STORED_TOKENS_PATH, HF_HUB_OFFLINE=False,
      HF_HUB_DISABLE_TELEMETRY, HF_HUB_DISABLE_IMPLICIT_TOKEN=False; also the module-level `hf_api.api.endpoint`
      (behind huggingface_hub.model_info & co) and the cache-scanner's copy of HF_HUB_CACHE.
    Use `go_offline(monkeypatch)` to switch to offline mode mid-test.
    """
    import huggingface_hub.constants as constants
    import huggingface_hub.hf_api as hf_api
    import huggingface_hub.utils._cache_manager as cache_manager

    with HubServer() as server:
        home = tmp_path / "hf_home"
        env = {"HF_ENDPOINT": server.endpoint, "HF_TOKEN": server.token, "HF_HOME": str(home),
               "HF_HUB_CACHE": str(home / "hub"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN_PATH", "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        patches = {"ENDPOINT": server.endpoint,
                   "HUGGINGFACE_CO_URL_TEMPLATE": server.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
                   "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_ASSETS_CACHE": str(home / "assets"),
                   "HF_XET_CACHE": str(home / "xet"), "HF_TOKEN_PATH": str(home / "token"),
                   "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"), "HF_HUB_OFFLINE": False,
                   "HF_HUB_DISABLE_TELEMETRY": True, "HF_HUB_DISABLE_IMPLICIT_TOKEN": False}
        for name, value in patches.items():
            monkeypatch.setattr(constants, name, value)
        monkeypatch.setattr(hf_api.api, "endpoint", server.endpoint)
        monkeypatch.setattr(cache_manager, "HF_HUB_CACHE", str(home / "hub"))
        yield server



@pytest.fixture
def tiny_task(tmp_path):
    """The name of `tiny`, a complete test task (zoo_core.testing.tinytask), installed for this test as pip
    installs a plugin (see `zoo_core.testing.installed_tiny_task`). For testing the core, a backbone, an
    exporter or a command with no task plugin installed. A module- or session-scoped fixture uses the context
    manager itself."""
    from . import installed_tiny_task

    with installed_tiny_task(tmp_path / "tiny-task-site") as name:
        yield name


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """The test runs in its own empty folder (tmp_path, returned), as a user runs zoo in a project folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def image_folder(tmp_path):
    """build(classes=("red", "green", "blue"), per_class=8, root_name="pets", presplit=False) -> tmp/<root_name>:
    a folder per colour class of small noisy PNGs (zoo_core.testing.image_folder)."""
    from . import image_folder as make_folder

    def build(classes=("red", "green", "blue"), per_class=8, root_name="pets", presplit=False):
        return make_folder(tmp_path / root_name, classes, per_class, presplit)

    return build
