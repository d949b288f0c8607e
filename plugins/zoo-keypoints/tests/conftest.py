"""zoo-keypoints's tests run alone: `pip install -e . -e plugins/zoo-keypoints` then `pytest plugins/zoo-keypoints`.
Their fixtures (`hub`, `offline`, `tiny_task`, ...) come from zoo_core.testing through zoo-core's pytest11 entry point."""

from zoo_core.testing import isolate_environment

isolate_environment()  # no network, and a fresh zoo cache for the session
