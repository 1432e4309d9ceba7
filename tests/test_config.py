"""Config: every problem reported at once, named by section.key, secrets never shown."""

from __future__ import annotations

import dataclasses
import importlib.metadata
from pathlib import Path

import pytest

from rtd import config as cfg
from rtd import plugins
from rtd.config import tomllib
from rtd.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-secret-value-1234"
# rtd's own components only, whatever else is installed in this environment
BUILTIN = plugins.load(entry_points=[
    importlib.metadata.EntryPoint("builtin", "rtd.builtin.plugin", "rtd")])


def parse(text: str, env: dict[str, str] | None = None, **kw) -> cfg.Config:
    return cfg.parse(tomllib.loads(text), Path("test.toml"),
                     env={"OPENAI_API_KEY": KEY} if env is None else env, registry=BUILTIN,
                     **kw)


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return info.value.problems


def test_shipped_config_parses_to_the_defaults():
    config = cfg.parse(cfg.read_toml(ROOT / "etc/rtd.toml"), None, env={"OPENAI_API_KEY": KEY})
    defaults = cfg.parse({}, None, env={"OPENAI_API_KEY": KEY})
    for attr, _schema in cfg.SECTIONS.values():
        assert getattr(config, attr) == getattr(defaults, attr)
    assert set(config.tools) == {"clock"}


def test_shipped_config_documents_every_key():
    text = (ROOT / "etc/rtd.toml").read_text()
    data = tomllib.loads(text)
    for section, (_attr, schema) in cfg.SECTIONS.items():
        table = data
        for part in section.split("."):
            table = table[part]
        missing = [f.name for f in dataclasses.fields(schema) if f.name not in table]
        assert not missing, f"[{section}] lacks {missing}"
        for f in dataclasses.fields(schema):
            assert f.metadata["help"], f"{section}.{f.name} has no help text"


def test_all_errors_reported_at_once_with_section_key():
    found = problems("""
[provider]
name = "opnai"
connect_timeout = "soon"
[session]
voise = "marin"
silence_ms = 99999
[audio.input]
backend = "file"
[logs]
level = "info"
""")
    text = "\n".join(found)
    assert "provider.name: expected one of openai, azure, xai, custom, got 'opnai' " \
           "(did you mean 'openai'?)" in text
    assert "provider.connect_timeout: expected a number, got a string 'soon'" in text
    assert "session.voise: unknown key (did you mean 'voice'?)" in text
    assert "session.silence_ms: expected a value from 0 to 10000, got 99999" in text
    assert "audio.input.path: required when audio.input.backend is 'file'" in text
    assert "logs: unknown section (did you mean 'log'?)" in text
    assert len(found) == 6


def test_types_are_checked_strictly():
    found = problems("[session]\nsilence_ms = true\nspeed = 2\n[log]\nlevel = 3\n")
    assert "session.silence_ms: expected an integer, got a boolean True" in found
    assert "session.speed: expected a value from 0.25 to 1.5, got 2.0" in found
    assert "log.level: expected a string, got an integer 3" in found


def test_integer_is_accepted_for_a_float_key():
    assert parse("[provider]\nconnect_timeout = 5\n").provider.connect_timeout == 5.0


def test_missing_key_is_a_config_error_naming_the_variable():
    found = problems("[provider]\napi_key_env = 'MY_KEY'\n", env={})
    assert len(found) == 1
    assert "provider.api_key_env: no API key: $MY_KEY is not set" in found[0]


def test_custom_provider_needs_no_key_but_needs_a_url():
    assert parse("[provider]\nname='custom'\nurl='ws://127.0.0.1:1/v1/realtime'\n",
                 env={}).api_key is None
    assert problems("[provider]\nname='custom'\n", env={}) == [
        "provider.url: required when provider.name is 'custom' (the full ws:// or wss:// URL)"]
    assert "expected a ws:// or wss:// URL" in problems(
        "[provider]\nname='azure'\nurl='https://x'\n")[0]


def test_key_from_file_and_from_systemd_credentials(tmp_path):
    (tmp_path / "key").write_text(KEY + "\n")
    conf = parse(f"[provider]\napi_key_file = '{tmp_path / 'key'}'\n", env={})
    assert conf.api_key.value == KEY
    conf = parse("[provider]\napi_key_file = 'key'\n", env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert conf.api_key.value == KEY
    (tmp_path / "api_key").write_text(KEY)
    conf = parse("", env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert conf.api_key.origin == "credential api_key"
    found = problems("[provider]\napi_key_file = '/nonexistent/key'\n", env={})
    assert found == ["provider.api_key_file: cannot read /nonexistent/key: No such file or "
                     "directory; check the path and that the rtd user can read it"]


def test_secrets_never_in_repr_or_config_output():
    conf = parse("[provider]\nheaders = { x-portkey-api-key = 'pk-secret-9' }\n")
    assert KEY not in repr(conf) and KEY not in str(conf.api_key)
    out = cfg.to_toml(conf)
    assert KEY not in out and "pk-secret-9" not in out
    assert '"x-portkey-api-key" = "********"' in out or 'x-portkey-api-key = "********"' in out
    assert "# api key: set, from $OPENAI_API_KEY" in out
    # the printed config is itself a valid config giving the same settings
    again = cfg.parse(tomllib.loads(out), None, env={"OPENAI_API_KEY": KEY})
    assert again.session == conf.session and again.audio_input == conf.audio_input


def test_component_tables_disable_only_the_component():
    assert parse("[tools.clock]\nenabled = false\n").tools == {}
    conf = parse("[tools.clock]\ntimezone = 'Europe/Berlin'\ntimeout = 3\n")
    assert conf.tools["clock"].timezone == "Europe/Berlin"
    assert conf.enabled("tools")["clock"].timeout == 3.0
    conf = parse("[tools.clok]\n[tools.clock]\ntimezon = 'x'\nenabled = 'yes'\n"
                 "[senders.sockett]\n[receivers.console]\nshow_tools = false\n")
    assert conf.tools == {}  # the broken clock table disables the clock, and nothing else
    assert list(conf.enabled("receivers")) == ["console"]
    text = "\n".join(conf.component_problems)
    assert ("tools.clok: no installed plugin provides a tool named 'clok' (did you mean "
            "'clock'?); tools available: clock (rtd.builtin.plugin)") in text
    assert "tools.clock.timezon: unknown key (did you mean 'timezone'?)" in text
    assert "tools.clock.enabled: expected true or false, got a string 'yes' " \
           "(tools.clock is disabled)" in text
    assert "senders.sockett: no installed plugin provides a sender named 'sockett' (did you " \
           "mean 'socket'?); senders available: push_to_talk (rtd.builtin.plugin), socket " \
           "(rtd.builtin.plugin), stdin (rtd.builtin.plugin)" in text


def test_find_config_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RTD_CONFIG", raising=False)
    monkeypatch.setattr(cfg, "DEFAULT_PATHS", (tmp_path / "etc-rtd.toml", Path("etc/rtd.toml")))
    assert cfg.find_config(None)[0] is None
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/rtd.toml").write_text("")
    assert cfg.find_config(None) == (Path("etc/rtd.toml"), "default location")
    monkeypatch.setenv("RTD_CONFIG", "/from/env.toml")
    assert cfg.find_config(None) == (Path("/from/env.toml"), "$RTD_CONFIG")
    assert cfg.find_config("x.toml") == (Path("x.toml"), "--config")


def test_unreadable_files_give_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[provider\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        cfg.read_toml(bad)
    with pytest.raises(ConfigError, match="no such file"):
        cfg.read_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        cfg.read_toml(tmp_path)


def test_arrays_and_tables_in_component_settings():
    @dataclasses.dataclass(frozen=True)
    class Shellish:
        commands: dict[str, list[str]] = cfg.setting({}, "argv per command name")
        allow: list[str] = cfg.setting([], "names that take arguments")

        def __post_init__(self):
            unknown = set(self.allow) - set(self.commands)
            if unknown:
                raise ValueError(f"allow names unknown commands: {', '.join(sorted(unknown))}")

    problems: list[str] = []
    ok = cfg.validate_table("tools.sh", Shellish,
                            {"commands": {"up": ["uptime"]}, "allow": ["up"]}, problems)
    assert ok == Shellish({"up": ["uptime"]}, ["up"]) and problems == []
    assert Shellish().commands == {} and Shellish().allow == []  # defaults are not shared
    cfg.validate_table("tools.sh", Shellish, {"commands": {"up": "uptime"}, "allow": [1]},
                       problems)
    assert problems == ["tools.sh.commands: expected a table of arrays of strings, got a table",
                        "tools.sh.allow: expected an array of strings, got an array"]
    problems.clear()
    # a schema's own cross-field check becomes one problem line, not a traceback
    assert cfg.validate_table("tools.sh", Shellish, {"allow": ["rm"]}, problems) is None
    assert problems == ["tools.sh: allow names unknown commands: rm"]
    assert cfg._toml_value({"up": ["uptime", "-p"]}) == '{up = ["uptime", "-p"]}'
