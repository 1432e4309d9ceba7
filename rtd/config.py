"""Configuration: one TOML file checked against typed schemas, every problem reported at once.

The schemas are frozen dataclasses; each field's docstring-like ``help`` metadata is the single
source for validation messages, `rtd config` output and the commented etc/rtd.toml. Problems are
collected as ``section.key: what is wrong (expected X, got Y)`` so a Pi owner fixes them in one
edit instead of one restart per typo (the way Mopidy reports config errors).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rtd.exceptions import ConfigError
from rtd.schema import did_you_mean, setting, shown_fields, type_name, validate_table

if typing.TYPE_CHECKING:
    from rtd.plugins import Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Where rtd looks for its configuration when neither ``--config`` nor ``$RTD_CONFIG`` is given.
DEFAULT_PATHS = (Path("/etc/rtd/rtd.toml"), Path("etc/rtd.toml"))
#: Name of the systemd credential (``LoadCredential=api_key:...``) read when no other key is set.
CREDENTIAL_NAME = "api_key"

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")


@dataclass(frozen=True)
class ProviderConfig:
    """Which realtime server to talk to and how to authenticate."""

    name: str = setting("openai", "who serves the model",
                        choices=("openai", "azure", "xai", "custom"))
    model: str = setting("gpt-realtime-2", "model (Azure: deployment) name")
    url: str = setting("", "full ws:// or wss:// URL; required for azure and custom; empty "
                       "with openai: $OPENAI_BASE_URL's server, else OpenAI's; with xai: xAI's")
    dialect: str = setting("", "shape of the wire: ga, beta (older servers and relays) or xai; "
                           "empty: the provider's own (xai for xai, else ga)",
                           choices=("", "ga", "beta", "xai"))
    api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the API key")
    api_key_file: str = setting("", "file holding the API key (relative: in "
                                "$CREDENTIALS_DIRECTORY)")
    headers: dict[str, str] = setting({}, "extra HTTP headers for the upgrade (e.g. a gateway's)",
                                 secret=True)
    connect_timeout: float = setting(10.0, "seconds to wait for the connection", min=0.5, max=120)
    ping_interval: float = setting(15.0, "seconds between WebSocket pings that check the server "
                                   "is alive", min=0.2, max=300)
    pong_timeout: float = setting(10.0, "seconds without an answer to a ping before the "
                                  "connection is declared dead and replaced", min=0.2, max=300)
    response_timeout: float = setting(20.0, "seconds without a word from the server while a "
                                      "response is due before it counts as stalled", min=0.5,
                                      max=600)
    send_timeout: float = setting(5.0, "seconds a send may block before the connection is "
                                  "declared dead", min=0.2, max=120)


@dataclass(frozen=True)
class SessionConfig:
    """What the model is told and how turns are taken (sent as `session.update`)."""

    instructions: str = setting(
        "You are a helpful voice assistant on a small home device. Keep answers short and "
        "spoken-friendly.", "system instructions for the model")
    voice: str = setting("marin", "the model's voice", choices=VOICES)
    output: str = setting("audio", "what the model answers with", choices=("audio", "text"))
    turn_detection: str = setting("server_vad", "who decides when the user finished speaking",
                             choices=("server_vad", "semantic_vad", "none"))
    transcription_model: str = setting("gpt-4o-mini-transcribe",
                                  "model transcribing the user; empty: no transcription")
    language: str = setting("", "ISO-639-1 hint for transcription, e.g. 'en'; empty: detect")
    vad_threshold: float = setting(0.5, "server_vad: speech threshold, higher needs louder speech",
                              min=0.0, max=1.0)
    silence_ms: int = setting(500, "server_vad: milliseconds of silence that end a turn",
                         min=0, max=10000)
    prefix_padding_ms: int = setting(300, "server_vad: milliseconds of audio before the "
                                     "detected speech that are kept with it", min=0, max=5000)
    idle_timeout_ms: int = setting(0, "server_vad: milliseconds of the user's silence after "
                                   "which the model speaks up by itself; 0: never",
                                   min=0, max=600000)
    eagerness: str = setting("auto", "semantic_vad: how quickly the model answers",
                        choices=("low", "medium", "high", "auto"))
    noise_reduction: str = setting("far_field", "input noise reduction for the microphone type",
                              choices=("far_field", "near_field", "none"))
    speed: float = setting(1.0, "speaking speed", min=0.25, max=1.5)
    start: str = setting("always", "when rtd connects: always (at start, reconnecting), or "
                         "on_demand (on a wake: rtd wake, a sender, typed text)",
                         choices=("always", "on_demand"))
    idle_close_s: float = setting(30.0, "on_demand: seconds in which nobody spoke before the "
                                  "conversation closes", min=1.0, max=86400.0)
    recycle_before_s: float = setting(120.0, "seconds before the server's session limit at "
                                      "which rtd moves the conversation to a new connection",
                                      min=0.5, max=1800.0)
    replay_max_chars: int = setting(20000, "characters of earlier conversation replayed into a "
                                    "new connection (the oldest go first); 0: none",
                                    min=0, max=1000000)
    max_minutes_per_day: float = setting(0.0, "connected minutes per local day; past them rtd "
                                         "stays offline until midnight; 0: no limit",
                                         min=0.0, max=1440.0)
    state_dir: str = setting("", "where rtd keeps what survives a restart (minutes used "
                             "today); empty: $STATE_DIRECTORY, else $XDG_STATE_HOME/rtd")


@dataclass(frozen=True)
class AudioInputConfig:
    """Where the microphone audio comes from."""

    AUTO_BLOCK_MS: ClassVar[dict[str, int]] = {"sounddevice": 20, "file": 50}
    """What ``block_ms = 0`` means per backend."""

    backend: str = setting("sounddevice", "sounddevice (a real device), file (a WAV), or none",
                           choices=("sounddevice", "file", "none"))
    device: str | int = setting("default", "'default', a device index, or part of the device's "
                                "name (a part that several devices share is an error)")
    path: str = setting("", "file backend: the WAV to read (any rate and channel count)")
    block_ms: int = setting(0, "milliseconds of audio per message to the server, 10 to 500; "
                            "0 chooses: 20 for a sound device (every reply waits on one "
                            "block), 50 for a file (nobody waits; fewer messages cost less)",
                            min=0, max=500)
    backlog_ms: int = setting(2000, "milliseconds of microphone audio held for the server when "
                              "it cannot take it (disconnected, slow); beyond it the oldest is "
                              "dropped", min=100, max=60000)

    @property
    def block(self) -> int:
        """Milliseconds per block, ``block_ms = 0`` resolved for the backend."""
        return self.block_ms or self.AUTO_BLOCK_MS.get(self.backend, 20)


@dataclass(frozen=True)
class AudioOutputConfig:
    """Where the assistant's speech goes."""

    backend: str = setting("sounddevice", "sounddevice (a real device), file (a WAV), or none",
                           choices=("sounddevice", "file", "none"))
    device: str | int = setting("default", "'default', a device index, or part of the device's "
                                "name (a part that several devices share is an error)")
    path: str = setting("", "file backend: the WAV to write (24 kHz mono)")
    buffer_seconds: float = setting(60.0, "seconds of reply audio held before playback",
                               min=1.0, max=600.0)
    block_ms: int = setting(10, "sounddevice: milliseconds per device callback; the device "
                            "buffers about two, so smaller is heard sooner and stops sooner on "
                            "an interruption, larger survives a busy machine", min=5, max=100)


@dataclass(frozen=True)
class AudioConfig:
    """How the microphone and the speaker work together: echo and interruptions."""

    echo: str = setting("cancel", "how the assistant is kept from hearing itself: cancel (echo "
                        "cancellation in rtd), mute (silence to the server while it speaks), "
                        "none (a headset, or echo cancelled by the sound server)",
                        choices=("cancel", "mute", "none"))
    echo_tail_ms: int = setting(300, "mute: milliseconds the microphone stays silent after the "
                                "assistant's last sample (the room's reverberation)",
                                min=0, max=5000)
    barge_in_min_ms: int = setting(0, "milliseconds the user must speak over the assistant "
                                   "before it stops (0: at once); higher ignores coughs and "
                                   "doors but makes interrupting slower", min=0, max=5000)


@dataclass(frozen=True)
class ControlConfig:
    """The control socket: `rtd status`, `rtd wake`, `rtd sleep`, `rtd talk`."""

    path: str = setting("/run/rtd/control.sock", "Unix socket the rtd commands talk to")
    mode: str = setting("0600", "socket permissions (octal); 0600: only rtd's own user, 0660: "
                        "its group too")

    def __post_init__(self) -> None:
        try:
            mode = int(self.mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ValueError(f"mode {self.mode!r} is not an octal mode such as '0600'")


@dataclass(frozen=True)
class LogConfig:
    """How much the daemon says."""

    level: str = setting("info", "log level", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class Secret:
    """An API key that cannot leak through repr, str or f-strings."""

    value: str = field(repr=False)
    origin: str = ""
    path: Path | None = None
    """The file it was read from, if any."""

    def __str__(self) -> str:
        return f"<secret from {self.origin}>"

    __repr__ = __str__


DEFAULT_TOOL_TIMEOUT = 10.0
"""Seconds a tool may run before the model is told it timed out."""


@dataclass(frozen=True)
class ComponentConfig:
    """One enabled tool, sender or receiver and its validated settings."""

    kind: str
    """"tools", "senders" or "receivers"."""
    name: str
    settings: Any
    """An instance of the component's Settings dataclass, or None when it has none."""
    timeout: float | None = None
    """Tools only: seconds before the call is abandoned; None: the tool's own default."""
    component: Any = None
    """The `Tool`, or the Sender or Receiver class, its plugin built for these settings (the
    second call of its ``register_*`` hook); None: the registry's, by name."""


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration."""

    provider: ProviderConfig = field(default_factory=ProviderConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    audio_input: AudioInputConfig = field(default_factory=AudioInputConfig)
    audio_output: AudioOutputConfig = field(default_factory=AudioOutputConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    log: LogConfig = field(default_factory=LogConfig)
    #: Enabled components whose tables validated, in file order.
    components: tuple[ComponentConfig, ...] = ()
    #: Components left out, each with why: they cost a log line, not the daemon.
    component_problems: tuple[str, ...] = ()
    #: The file this was read from, or None for built-in defaults.
    source: Path | None = None
    api_key: Secret | None = None
    #: ``$OPENAI_BASE_URL`` when provider.name is openai and provider.url is empty: the
    #: server the OpenAI SDK would use (`rtd.protocol.providers.openai_endpoint`).
    base_url: str | None = None

    def enabled(self, kind: str) -> dict[str, ComponentConfig]:
        """Enabled components of one kind ("tools", "senders", "receivers") by name."""
        return {c.name: c for c in self.components if c.kind == kind}

    @property
    def tools(self) -> dict[str, Any]:
        """Enabled tools' settings by name."""
        return {name: c.settings for name, c in self.enabled("tools").items()}


#: TOML table name -> (Config attribute, schema).
SECTIONS: dict[str, tuple[str, type]] = {
    "provider": ("provider", ProviderConfig),
    "session": ("session", SessionConfig),
    "audio": ("audio", AudioConfig),
    "audio.input": ("audio_input", AudioInputConfig),
    "audio.output": ("audio_output", AudioOutputConfig),
    "control": ("control", ControlConfig),
    "log": ("log", LogConfig),
}


def find_config(explicit: str | os.PathLike[str] | None) -> tuple[Path | None, str]:
    """Pick the config file: --config, then $RTD_CONFIG, then the default paths.

    Returns the path (None when nothing exists) and how it was chosen, for the "using" line.
    """
    if explicit:
        return Path(explicit), "--config"
    env = os.environ.get("RTD_CONFIG")
    if env:
        return Path(env), "$RTD_CONFIG"
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate, "default location"
    return None, "not found (looked at " + ", ".join(str(p) for p in DEFAULT_PATHS) + ")"


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every way it can fail into one ConfigError line."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file; copy etc/rtd.toml there or pass --config"],
                          ) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied; make it readable by the rtd user"],
                          ) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, expected a TOML file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not valid TOML: not UTF-8 text"]) from None


def parse(data: dict[str, Any], source: Path | None = None, *,
          env: Mapping[str, str] | None = None, require_key: bool = True,
          registry: Registry | None = None) -> Config:
    """Validate a parsed TOML document into a Config; raise ConfigError listing every problem.

    Problems in a component's table do not raise: that component is left out and the problem
    is kept in ``component_problems`` (one bad plugin table must not silence the assistant).
    """
    env = os.environ if env is None else env
    if registry is None:
        registry = default_registry()
    problems: list[str] = []
    built: dict[str, Any] = {}
    data = dict(data)
    audio = data.pop("audio", {})
    if not isinstance(audio, dict):
        problems.append(f"audio: expected a table with input and output, got {type_name(audio)}")
        audio = {}
    # [audio] holds its own keys beside the [audio.input] and [audio.output] tables
    audio_keys = {k: v for k, v in audio.items() if k not in ("input", "output")}
    component_tables = {kind: data.pop(kind, {}) for kind in ("tools", "senders", "receivers")}
    flat = {**{k: v for k, v in data.items()}, "audio.input": audio.get("input", {}),
            "audio.output": audio.get("output", {}), "audio": audio_keys}
    for section, raw in flat.items():
        if section not in SECTIONS:
            known = [*SECTIONS, "tools", "senders", "receivers"]
            problems.append(f"{section}: unknown section{did_you_mean(section, known)}; "
                            f"known sections: {', '.join(known)}")
            continue
        attr, schema = SECTIONS[section]
        built[attr] = validate_table(section, schema, raw, problems)

    components, disabled = _components(component_tables, registry, problems)
    config = Config(**built, components=components, component_problems=disabled,
                    source=source)
    _check_provider(config, problems)
    _check_audio(config, source, problems)
    if problems:
        raise ConfigError(problems, str(source) if source else None)
    key = resolve_api_key(config.provider, env, problems, required=require_key)
    base_url = _base_url(config.provider, env, problems)
    if problems:
        raise ConfigError(problems, str(source) if source else None)
    return dataclasses.replace(config, api_key=key, base_url=base_url)


def _base_url(provider: ProviderConfig, env: Mapping[str, str], problems: list[str]
              ) -> str | None:
    """``$OPENAI_BASE_URL``, as the OpenAI SDK reads it, when provider.url does not name one."""
    if provider.name != "openai" or provider.url:
        return None
    from rtd.protocol.providers import base_url_from_env, realtime_url  # the wire, when needed

    value = base_url_from_env(env)
    if value is not None:
        try:
            realtime_url(value)
        except ValueError as exc:
            problems.append(f"$OPENAI_BASE_URL: {exc}; fix or unset it, or set provider.url")
            return None
    return value


_REGISTRY: Registry | None = None


def default_registry() -> Registry:
    """The installed plugins' components, loaded once per process."""
    global _REGISTRY
    if _REGISTRY is None:
        from rtd import plugins

        _REGISTRY = plugins.load()
    return _REGISTRY


@dataclass(frozen=True)
class _Common:
    """Keys every component table accepts."""

    enabled: bool = setting(True, "false keeps the settings but does not run the component")


@dataclass(frozen=True)
class _ToolCommon(_Common):
    """Keys every tool table accepts."""

    timeout: float | None = setting(None, "seconds before the model is told the tool timed "
                                    "out; unset: the tool's own default, else 10",
                                    min=0.1, max=3600.0)


def _components(tables: dict[str, Any], registry: Registry, fatal: list[str]
                ) -> tuple[tuple[ComponentConfig, ...], tuple[str, ...]]:
    enabled: list[ComponentConfig] = []
    disabled: list[str] = []
    for kind, raw in tables.items():
        if not isinstance(raw, dict):
            fatal.append(f"{kind}: expected a table of [{kind}.NAME] tables, got "
                         f"{type_name(raw)}")
            continue
        available = registry.of(kind)
        for name, table in raw.items():
            where = f"{kind}.{name}"
            component = available.get(name)
            if component is None:
                disabled.append(f"{where}: no installed plugin provides a {kind[:-1]} named "
                                f"{name!r}{did_you_mean(name, list(available))}; {kind} available: "
                                f"{registry.describe(kind)}")
                continue
            common_schema = _ToolCommon if kind == "tools" else _Common
            problems: list[str] = []
            if not isinstance(table, dict):
                problems.append(f"{where}: expected a table, got {type_name(table)}")
                table = {}
            common_keys = tuple(f.name for f in dataclasses.fields(common_schema))
            common = validate_table(where, common_schema,
                                    {k: v for k, v in table.items() if k in common_keys},
                                    problems)
            schema = component.settings if kind == "tools" else component.Settings
            own = {k: v for k, v in table.items() if k not in common_keys}
            settings = None
            if schema is not None:
                settings = validate_table(where, schema, own, problems, extra_keys=common_keys)
            elif own:
                problems.extend(f"{where}.{k}: unknown key; this {kind[:-1]} has no settings "
                                f"besides {', '.join(common_keys)}" for k in own)
            if problems:
                disabled.extend(f"{p} ({where} is disabled)" for p in problems)
                continue
            if common.enabled:
                enabled.append(ComponentConfig(kind, name, settings,
                                               getattr(common, "timeout", None)))
    # The second round: each plugin builds its enabled components for their settings.
    configured: dict[tuple[str, str], Any] = {}
    for kind in tables:
        ours = {c.name: c.settings for c in enabled if c.kind == kind}
        if not ours:
            continue
        components, refused = registry.configure(kind, ours)
        configured.update({(kind, name): component for name, component in components.items()})
        disabled.extend(f"{kind}.{name}: {problem} ({kind}.{name} is disabled)"
                        for name, problem in refused.items())
    return tuple(dataclasses.replace(c, component=configured[(c.kind, c.name)])
                 for c in enabled if (c.kind, c.name) in configured), tuple(disabled)


def _check_provider(config: Config, problems: list[str]) -> None:
    p = config.provider
    if p.name in ("azure", "custom") and not p.url:
        problems.append(f"provider.url: required when provider.name is {p.name!r} "
                        "(the full ws:// or wss:// URL)")
    if p.url and not p.url.startswith(("ws://", "wss://")):
        problems.append(f"provider.url: expected a ws:// or wss:// URL, got {p.url!r}")
    if not p.model:
        problems.append("provider.model: must not be empty (e.g. gpt-realtime-2)")


def _check_audio(config: Config, source: Path | None, problems: list[str]) -> None:
    for section, cfg in (("audio.input", config.audio_input),
                         ("audio.output", config.audio_output)):
        if cfg.backend == "file" and not cfg.path:
            problems.append(f"{section}.path: required when {section}.backend is 'file'")
    block = config.audio_input.block_ms
    if 0 < block < 10:
        problems.append(f"audio.input.block_ms: {block} is too small; give 10 to 500, or 0 to "
                        "let rtd choose")


def resolve_api_key(provider: ProviderConfig, env: Mapping[str, str], problems: list[str],
                    *, required: bool = True) -> Secret | None:
    """Find the API key: api_key_file, then $api_key_env, then the systemd credential.

    A missing key is a config error for the hosted providers (so the daemon fails before any
    connection, with a message naming the variable), optional for custom servers.
    """
    creds = env.get("CREDENTIALS_DIRECTORY")
    if provider.api_key_file:
        path = Path(provider.api_key_file)
        if not path.is_absolute() and creds:
            path = Path(creds) / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"provider.api_key_file: cannot read {path}: {exc.strerror}; "
                            "check the path and that the rtd user can read it")
            return None
        if not value:
            problems.append(f"provider.api_key_file: {path} is empty")
            return None
        return Secret(value, f"file {path}", path)
    value = env.get(provider.api_key_env, "").strip()
    if value:
        return Secret(value, f"${provider.api_key_env}")
    if creds and (Path(creds) / CREDENTIAL_NAME).is_file():
        path = Path(creds) / CREDENTIAL_NAME
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return Secret(value, f"credential {CREDENTIAL_NAME}")
    if required and provider.name != "custom":
        problems.append(
            f"provider.api_key_env: no API key: ${provider.api_key_env} is not set; set it "
            "(e.g. in /etc/rtd/env), or set provider.api_key_file, or LoadCredential=api_key:...")
    return None


def exposed_secrets(config: Config) -> list[str]:
    """Warnings for secrets that every user of the machine can read, each naming the file.

    The config file may hold secrets (``provider.headers``, a plugin's secret settings) and is
    often installed world-readable; the key file must not be either.
    """
    held = [f"provider.{f.name}" for f in dataclasses.fields(ProviderConfig)
            if f.metadata.get("secret") and getattr(config.provider, f.name)]
    for c in config.components:
        if c.settings is not None and dataclasses.is_dataclass(c.settings):
            held += [f"{c.kind}.{c.name}.{f.name}" for f in dataclasses.fields(c.settings)
                     if f.metadata.get("secret") and getattr(c.settings, f.name)]
    found = []
    for path, what in ((config.source, ", ".join(held) if held else None),
                       (config.api_key.path if config.api_key else None, "the API key")):
        if path is None or what is None:
            continue
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & 0o004:
            found.append(f"{path}: every user of this machine can read it (mode "
                         f"{mode & 0o777:04o}) and it holds {what}; make it readable by root and "
                         f"the rtd group only: chmod 0640 {path}")
    return found


def load(path: str | os.PathLike[str] | None = None, *, require_key: bool = True,
         registry: Registry | None = None, say: Callable[[str], None] | None = None) -> Config:
    """Find, read and validate the configuration; built-in defaults when no file exists.

    ``say`` hears which file was chosen and why (the CLI prints it), in one line.
    """
    found, how = find_config(path)
    if found is None:
        if say is not None:
            say(f"no config file {how}; using built-in defaults")
        return parse({}, None, require_key=require_key, registry=registry)
    if say is not None:
        say(f"using config {found} ({how})")
    return parse(read_toml(found), found, require_key=require_key, registry=registry)


def to_toml(config: Config) -> str:
    """The effective configuration as TOML, secrets masked, for `rtd config`."""
    lines: list[str] = []
    for section, (attr, _schema) in SECTIONS.items():
        lines.append(f"[{section}]")
        lines.extend(f"{name} = {_toml_value(value)}"
                     for name, value in shown_fields(getattr(config, attr)))
        if attr == "provider":
            origin = config.api_key.origin if config.api_key else "none"
            lines.append(f"# api key: {'set, from ' + origin if config.api_key else origin}")
        lines.append("")
    for c in config.components:
        lines.append(f"[{c.kind}.{c.name}]")
        lines.append("enabled = true")
        if c.kind == "tools" and c.timeout is not None:
            lines.append(f"timeout = {_toml_value(c.timeout)}")
        if c.settings is not None:
            lines.extend(f"{name} = {_toml_value(value)}"
                         for name, value in shown_fields(c.settings))
        lines.append("")
    for problem in config.component_problems:
        lines.append(f"# not running: {problem}")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    import json

    return json.dumps(str(value), ensure_ascii=False)


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else _toml_value(key)


__all__ = [
    "SECTIONS", "VOICES", "AudioInputConfig", "AudioOutputConfig", "ComponentConfig", "Config",
    "LogConfig", "ProviderConfig", "Secret", "SessionConfig", "exposed_secrets", "find_config",
    "load", "parse",
    "read_toml", "resolve_api_key", "setting", "to_toml", "validate_table",
]
