"""zoo-generate's tests pass with zoo-core and this plugin alone:
    pip install -c constraints.txt -e '.[test]' -e plugins/zoo-generate && python -m pytest plugins/zoo-generate
Their fixtures come from zoo_core.testing, through zoo-core's pytest11 entry point."""

from zoo_core.testing import isolate_environment

isolate_environment()  # no network, and a fresh zoo cache for the session
