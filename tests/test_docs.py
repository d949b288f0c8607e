"""The README's generated parts match their one source of truth."""

from __future__ import annotations

import re
from pathlib import Path

from zoo_core.base.settings import SETTINGS, markdown_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_settings_table_is_generated_from_settings():
    block = re.search(r"<!-- settings table: python -m zoo_core.base.settings -->\n(.*?)\n<!-- end settings table -->", README, re.S)
    assert block, "README lost its settings table markers"
    assert block.group(1).strip() == markdown_table().strip(), "regenerate it: python -m zoo_core.base.settings"


def test_every_flag_setting_is_a_zoo_train_option():
    from zoo_core.cli import train

    flags = {opt for p in train.params for opt in p.opts}
    assert {s.flag_name for s in SETTINGS if s.flag} <= flags
