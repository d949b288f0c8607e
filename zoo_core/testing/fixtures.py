"""pytest fixtures for zoo and plugin tests, loaded by pytest through zoo-core's `pytest11` entry point.

A plugin's own tests get them with zoo-core installed and nothing else:

    def test_push_pull(hub, tmp_path):     # a local Hub-compatible server on 127.0.0.1
        ...
"""

from __future__ import annotations

import pytest

from .hubserver import HubServer


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
