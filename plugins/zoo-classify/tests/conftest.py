"""zoo-classify's tests run alone: `pip install -e . -e plugins/zoo-classify` then `pytest plugins/zoo-classify`.
Their fixtures (`hub`, `offline`, `tiny_task`, ...) come from zoo_core.testing through zoo-core's pytest11 entry point."""

from zoo_core.testing import isolate_environment

isolate_environment()  # no network, and a fresh zoo cache for the session
