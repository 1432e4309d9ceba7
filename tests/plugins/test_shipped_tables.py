"""etc/rtd.toml's commented tables of the first-party plugins stay in step with the plugins.

Uncommented, each table must be valid for its installed plugin and name every key of its
Settings, so what the shipped file shows is what the plugin takes.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

from rtd import config as cfg
from rtd import plugins

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
TABLES = {("senders", "wakeword"), ("receivers", "mqtt"), ("senders", "mqtt"),
          ("receivers", "leds")}


def shipped_plugin_tables() -> dict:
    text = (ROOT / "etc" / "rtd.toml").read_text(encoding="utf-8")
    block = text[text.index("# First-party plugins"):]
    lines = []
    for line in block.splitlines():
        body = line[2:] if line.startswith("# ") else ""
        # a table header or a key, not the prose between them
        if re.match(r"^\[[a-z]+\.[a-z_]+\]", body) or re.match(r"^[a-z_]+ = ", body):
            lines.append(body)
    return tomllib.loads("\n".join(lines))


def test_every_plugin_table_is_shipped_valid_and_complete():
    data = shipped_plugin_tables()
    found = {(kind, name) for kind in ("senders", "receivers") for name in data.get(kind, {})}
    assert found == TABLES
    registry = plugins.load()
    config = cfg.parse(data, require_key=False, registry=registry)
    assert config.component_problems == ()
    for kind, name in TABLES:
        component = getattr(registry, kind)[name]
        if component.Settings is None:
            assert data[kind][name] == {}
            continue
        keys = {f.name for f in dataclasses.fields(component.Settings)}
        missing = keys - set(data[kind][name])
        assert not missing, f"etc/rtd.toml's [{kind}.{name}] lacks {sorted(missing)}"


@pytest.mark.parametrize(("kind", "name"), sorted(TABLES))
def test_the_shipped_defaults_are_the_plugins(kind, name):
    """What the file shows as a default is the default (the examples may differ)."""
    data = shipped_plugin_tables()[kind][name]
    component = getattr(plugins.load(), kind)[name]
    if component.Settings is None:
        return
    defaults = component.Settings()
    examples = {"host", "username", "password_file", "patterns"}  # shown filled in
    for key, value in data.items():
        if key not in examples:
            assert getattr(defaults, key) == value, f"[{kind}.{name}] {key}"
