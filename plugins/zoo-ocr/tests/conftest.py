"""zoo-ocr's tests pass with zoo-core and this plugin alone:
    pip install -c constraints.txt -e '.[test]' -e plugins/zoo-ocr && python -m pytest plugins/zoo-ocr
Their fixtures (hub, offline, in_tmp, ...) come from zoo_core.testing, through zoo-core's pytest11 entry point."""

from zoo_core.testing import isolate_environment

isolate_environment()  # no network, and a fresh zoo cache for the session (the drawn lines are cached there)
