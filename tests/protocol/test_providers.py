"""The endpoint from the environment, as the OpenAI SDK finds it: unit cases and one real
connection to the emulator through ``$OPENAI_BASE_URL``."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import rtd
from rtd import config as cfg
from rtd import plugins
from rtd.daemon import Daemon
from rtd.emulator import Emulator
from rtd.exceptions import AuthenticationError, ConfigError
from rtd.protocol.providers import openai_endpoint, realtime_url

BUILTIN = plugins.load(entry_points=[
    importlib.metadata.EntryPoint("builtin", "rtd.builtin.plugin", "rtd")])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return monkeypatch


@pytest.mark.parametrize(("base", "url"), [
    ("http://127.0.0.1:8765/v1", "ws://127.0.0.1:8765/v1/realtime"),
    ("https://gateway.example/v1/", "wss://gateway.example/v1/realtime"),
    ("HTTPS://api.example.org", "wss://api.example.org/realtime"),
    ("wss://relay.example/v1/realtime", "wss://relay.example/v1/realtime"),
])
def test_realtime_url_under_a_rest_base(base: str, url: str) -> None:
    assert realtime_url(base) == url


@pytest.mark.parametrize("base", ["127.0.0.1:8765/v1", "ftp://x/v1", "http:///v1", ""])
def test_a_base_that_is_no_url_is_refused_by_name(base: str) -> None:
    with pytest.raises(ValueError, match="expected an http"):
        realtime_url(base)


def test_environment_gives_url_and_key(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8765/v1")
    clean_env.setenv("OPENAI_API_KEY", "sk-env")
    target = openai_endpoint("gpt-realtime-2", headers={"x-trace": "1"})
    assert target.url == "ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime-2"
    assert target.headers == {"Authorization": "Bearer sk-env", "x-trace": "1"}


def test_explicit_arguments_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8765/v1")
    clean_env.setenv("OPENAI_API_KEY", "sk-env")
    target = openai_endpoint("m", api_key="sk-arg", base_url="https://other.example/v1")
    assert target.url == "wss://other.example/v1/realtime?model=m"
    assert target.headers["Authorization"] == "Bearer sk-arg"


def test_without_environment_the_hosted_service(clean_env: pytest.MonkeyPatch) -> None:
    target = openai_endpoint("gpt-realtime-2", api_key="sk-x")
    assert target.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime-2"


def test_no_key_anywhere_is_an_authentication_error(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthenticationError, match=r"OPENAI_API_KEY"):
        openai_endpoint("gpt-realtime-2")


def test_a_bad_environment_base_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_BASE_URL", "localhost:8765")
    with pytest.raises(ValueError, match=r"^\$OPENAI_BASE_URL: expected"):
        openai_endpoint("m", api_key="k")


def test_rtd_connect_reaches_the_emulator_through_openai_base_url(
        clean_env: pytest.MonkeyPatch) -> None:
    with Emulator(api_key="sk-emu", voice_engine="tones") as emu:
        clean_env.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{emu.port}/v1")
        clean_env.setenv("OPENAI_API_KEY", "sk-emu")
        with rtd.connect(model="gpt-realtime-2") as conn:
            first = conn.recv()
        assert first.type == "session.created"
        assert emu.paths == ["/v1/realtime?model=gpt-realtime-2"]
        assert emu.headers[0]["authorization"] == "Bearer sk-emu"


def _config(env: dict[str, str], provider: str = "") -> cfg.Config:
    data = cfg.tomllib.loads(provider)
    return cfg.parse(data, Path("test.toml"), env=env, registry=BUILTIN)


def test_daemon_config_uses_openai_base_url_when_url_is_empty() -> None:
    config = _config({"OPENAI_API_KEY": "sk-d", "OPENAI_BASE_URL": "http://10.0.0.2:9000/v1"})
    assert config.base_url == "http://10.0.0.2:9000/v1"
    target = Daemon._endpoint(config)
    assert target.url == "ws://10.0.0.2:9000/v1/realtime?model=gpt-realtime-2"
    assert target.headers["Authorization"] == "Bearer sk-d"


def test_daemon_config_url_wins_over_openai_base_url() -> None:
    config = _config({"OPENAI_API_KEY": "sk-d", "OPENAI_BASE_URL": "http://10.0.0.2:9000/v1"},
                     '[provider]\nurl = "wss://mine.example/v1/realtime"\n')
    assert config.base_url is None
    assert Daemon._endpoint(config).url.startswith("wss://mine.example/v1/realtime?")


def test_daemon_config_without_base_url_is_the_hosted_service() -> None:
    config = _config({"OPENAI_API_KEY": "sk-d"})
    assert Daemon._endpoint(config).url == \
        "wss://api.openai.com/v1/realtime?model=gpt-realtime-2"


def test_daemon_config_reports_a_bad_openai_base_url() -> None:
    with pytest.raises(ConfigError, match=r"\$OPENAI_BASE_URL: expected an http"):
        _config({"OPENAI_API_KEY": "sk-d", "OPENAI_BASE_URL": "nonsense"})


def test_daemon_config_speaks_the_providers_dialect_unless_told() -> None:
    xai = Daemon._endpoint(_config({"OPENAI_API_KEY": "k"},
                                   '[provider]\nname = "xai"\nmodel = "grok-voice-latest"\n'))
    assert xai.url == "wss://api.x.ai/v1/realtime?model=grok-voice-latest"
    assert xai.dialect.name == "xai"
    beta = Daemon._endpoint(_config({"OPENAI_API_KEY": "k"}, '[provider]\nname = "custom"\n'
                                    'url = "ws://127.0.0.1:1/v1/realtime"\ndialect = "beta"\n'))
    assert beta.dialect.name == "beta" and beta.headers["OpenAI-Beta"] == "realtime=v1"
    assert Daemon._endpoint(_config({"OPENAI_API_KEY": "k"})).dialect.name == "ga"
    with pytest.raises(ConfigError, match=r"provider.dialect: expected one of"):
        _config({"OPENAI_API_KEY": "k"}, '[provider]\ndialect = "bta"\n')
