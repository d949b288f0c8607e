"""The one exception type users see.

Anything raised as ZooError is printed by the CLI as a single line, without a traceback,
and turns into a non-zero exit code. Raise it for every problem the *user* can fix
(bad path, unknown name, missing column); let programming errors raise normally.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class ZooError(Exception):
    """A problem with the user's input or environment, explained in one line."""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """' (did you mean: a, b?)' for the closest matches of `name`, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""
