"""Reaching weight hosts: fail in seconds with a clear message when they cannot be reached (the Hub, download.pytorch.org).

huggingface_hub retries a dead connection with back-off for most of a minute per file; when the
host does not even accept a TCP connection there is nothing to wait for, so zoo checks first."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from ..base.errors import ZooError


def offline_alternatives() -> str:
    """What to do without the network: other weight sources, and the installed backbones whose
    weights ship with their plugin (BackboneSpec(local_weights=True))."""
    from ..registry.plugins import get_zoo

    local = [c.name for c in get_zoo().backbones if c.spec.local_weights]
    where = (f"a backbone whose weights are installed locally ({', '.join(local)})" if local
             else "a backbone plugin whose weights install with it")
    return ("use --weights FILE (a .safetensors, or a .pth loaded with weights_only=True), --no-pretrained to "
            f"train from random initialisation, or {where}")


def hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def reachable(url: str, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the URL's host and port opens within `timeout` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_reachable(url: str, what: str, hint: str | None = None) -> None:
    """A one-line error at once when the host does not accept a connection; `hint` says what to do
    (by default: where else pretrained weights can come from)."""
    if not reachable(url):
        if hint:
            raise ZooError(f"{what}: cannot reach {urlparse(url).netloc} (offline?); {hint}")
        raise ZooError(f"cannot download {what}: {urlparse(url).netloc} is unreachable (offline?); {offline_alternatives()}")


def hf_cached(repo_id: str, filenames: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")) -> bool:
    from huggingface_hub import try_to_load_from_cache

    repo_id, _, revision = repo_id.partition("@")
    for name in filenames:
        found = try_to_load_from_cache(repo_id, name, revision=revision or None)
        if isinstance(found, str) and os.path.exists(found):
            return True
    return False


def require_hf_weights(repo_id: str, what: str) -> None:
    """Raise a one-line ZooError unless the repo's weights are cached or the Hub answers."""
    if hf_cached(repo_id):
        return
    if hf_offline():
        raise ZooError(f"{what} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {offline_alternatives()}")
    require_reachable(hf_endpoint(), what)
