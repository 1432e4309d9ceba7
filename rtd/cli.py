"""The `rtd` command: run the daemon, check and show its config, list devices, emulate, demo.

Every failure a user can cause ends in one message on stderr and a sysexits-style code, never a
traceback: 78 for configuration, 77 for refused credentials, 1 for everything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtd import config as cfg
from rtd import logs
from rtd._version import __version__
from rtd.exceptions import AudioError, ConfigError, RtdError
from rtd.exitcodes import EX_CONFIG, EX_FAILURE, EX_OK

logger = logging.getLogger("rtd")


def _fail(message: str, code: int) -> int:
    mark = logs.prefix(logging.ERROR)  # under journald: the level of each line
    print("\n".join(mark + line for line in f"rtd: {message}".split("\n")), file=sys.stderr)
    return code


def _load(args: argparse.Namespace, *, require_key: bool = True,
          quiet: bool = False) -> cfg.Config:
    say = None if quiet else (
        lambda line: print(f"{logs.prefix(logging.INFO)}rtd: {line}", file=sys.stderr))
    return cfg.load(args.config, require_key=require_key, say=say)


def cmd_run(args: argparse.Namespace) -> int:
    from rtd.service import Service, secrets

    logs.setup(args.log_level or "info")  # plugin loading (and its tracing) logs already
    config = _load(args)
    logs.setup(args.log_level or config.log.level, secrets(config))

    def checked(config: cfg.Config) -> cfg.Config:
        config, problems = _self_check(config)
        for problem in (*config.component_problems, *problems):
            logger.warning("not running: %s", problem)
        for warning in cfg.exposed_secrets(config):
            logger.warning("%s", warning)
        return config

    service = Service(checked(config), lambda: checked(_load(args, quiet=True)),
                      log_level=args.log_level)
    return service.run()


def _self_check(config: cfg.Config) -> tuple[cfg.Config, tuple[str, ...]]:
    """The config without the components whose own check found a problem, and the problems."""
    from rtd.plugins import self_check

    passed, problems = self_check(config.components, cfg.default_registry())
    return dataclasses.replace(config, components=passed), problems


def cmd_check(args: argparse.Namespace) -> int:
    from rtd.audio import open_input, open_output

    logs.setup("warning")  # a plugin's load problems as log lines, like `rtd run` shows them
    config = _load(args)
    config, checked = _self_check(config)
    problems = []
    for where, a, open_backend in (("audio.input", config.audio_input, open_input),
                                   ("audio.output", config.audio_output, open_output)):
        if a.backend == "none":
            print(f"{where}: none")
            continue
        try:
            backend = open_backend(a.backend, device=a.device, path=a.path, where=where)
        except AudioError as exc:
            problems.append(str(exc))
            continue
        print(f"{where}: {backend.description}")
        backend.stop()
    p = config.provider
    print(f"provider: {p.name}, model {p.model}, key "
          f"{'from ' + config.api_key.origin if config.api_key else 'none'}"
          f"{', server $OPENAI_BASE_URL ' + config.base_url if config.base_url else ''}")
    for kind in ("tools", "senders", "receivers"):
        print(f"{kind}: {', '.join(config.enabled(kind)) or 'none'}")
    _check_session(config)
    problems.extend(config.component_problems)
    problems.extend(checked)
    for warning in cfg.exposed_secrets(config):
        print(f"warning: {warning}")
    if problems:
        return _fail("\n".join(problems), EX_CONFIG)
    print("config OK")
    return EX_OK


def _check_session(config: cfg.Config) -> None:
    """When rtd connects, and where a daily budget is kept (a warning if rtd could not write
    there: the budget then holds only until a restart)."""
    from rtd.actors.budget import FILE_NAME, state_directory

    s = config.session
    line = f"session: start {s.start}"
    if s.max_minutes_per_day:
        where = state_directory(s.state_dir, os.environ)
        line += f", at most {s.max_minutes_per_day:g} connected minutes a day ({where / FILE_NAME})"
        existing = next((d for d in (where, *where.parents) if d.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
            print(line)
            print(f"warning: session.state_dir: {where} cannot be written by this user; the "
                  "minutes used today would not survive a restart (under systemd, "
                  "StateDirectory=rtd provides /var/lib/rtd)")
            return
    print(line)


def cmd_config(args: argparse.Namespace) -> int:
    config = _load(args, require_key=False)
    print(cfg.to_toml(config), end="")
    return EX_OK


def cmd_devices(args: argparse.Namespace) -> int:
    from rtd.audio import list_devices

    devices = list_devices()
    if not devices:
        print("no audio devices found")
        return EX_OK
    print(f"{'#':>3}  {'in':>3} {'out':>3}  {'rate':>6}  name (host API)")
    for d in devices:
        print(f"{d.index:>3}  {d.max_input_channels:>3} {d.max_output_channels:>3}  "
              f"{d.default_samplerate:>6.0f}  {d.name} ({d.hostapi})")
    return EX_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from rtd.config import default_registry

    logs.setup("warning" if os.environ.get("RTD_TRACE_PLUGINS", "") in ("", "0") else "info")

    registry = default_registry()
    path, _how = cfg.find_config(args.config)
    enabled: dict[str, set[str]] = {}
    failing: set[tuple[str, str]] = set()
    try:
        config = _load(args, require_key=False)
        enabled = {kind: set(config.enabled(kind)) for kind in ("tools", "senders", "receivers")}
        passed, _problems = _self_check(config)
        failing = {(c.kind, c.name) for c in config.components} - {
            (c.kind, c.name) for c in passed.components}
    except ConfigError as exc:
        print(f"rtd: (cannot mark what is enabled: {exc})", file=sys.stderr)
    for info in registry.plugins:
        version = f" {info.version}" if info.version else ""
        print(f"{info.name} ({info.package}{version}): {info.status_text}")
        for kind, names in info.provides.items():
            for name in names:
                mark = "enabled" if name in enabled.get(kind, ()) else "available"
                if (kind, name) in failing:
                    mark = "enabled, but its self-check fails (see rtd check)"
                print(f"  {kind[:-1]:8} {name:20} {mark}")
        for problem in info.problems:
            print(f"  problem: {problem}")
    return EX_OK


def cmd_say(args: argparse.Namespace) -> int:
    import socket

    from rtd.builtin.senders import SocketSettings

    path = args.socket
    if path is None:
        config = _load(args, require_key=False)
        settings = config.enabled("senders").get("socket")
        path = settings.settings.path if settings else SocketSettings().path
    text = " ".join(args.text).strip()
    if not text:
        return _fail("nothing to say", 2)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(text.replace("\n", " ").encode() + b"\n")
            reply = sock.makefile("rb").readline().decode(errors="replace").strip()
    except (FileNotFoundError, ConnectionRefusedError):
        return _fail(f"nothing listens on {path}: is rtd running with a [senders.socket] "
                     "table?", EX_FAILURE)
    except PermissionError:
        return _fail(f"permission denied on {path}: join the rtd group or check "
                     "senders.socket.mode", EX_FAILURE)
    except OSError as exc:
        return _fail(f"cannot talk to {path}: {exc.strerror or exc}", EX_FAILURE)
    if reply != "ok":
        return _fail(f"rtd answered: {reply or 'nothing'}", EX_FAILURE)
    return EX_OK


def _control(args: argparse.Namespace, command: str, **fields: Any) -> dict[str, Any]:
    """Ask the running daemon (found through --socket or the config's control.path)."""
    from rtd.actors.control import request

    path = args.socket or _load(args, require_key=False, quiet=True).control.path
    return request(path, command, **fields)


def _control_command(args: argparse.Namespace) -> int:
    from rtd.actors.control import ControlError

    fields = {"action": args.action} if args.command == "talk" else {}
    try:
        reply = _control(args, args.command, **fields)
    except ControlError as exc:
        return _fail(str(exc), EX_FAILURE)
    if args.command != "status":
        return EX_OK
    status = reply["status"]
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return EX_OK
    print(_status_text(status))
    return EX_OK


def _status_text(status: dict[str, Any]) -> str:
    """`rtd status` for a person: one fact per line, unknowns left out."""
    def shown(key: str, label: str, unit: str = "") -> str | None:
        value = status.get(key)
        return None if value is None else f"{label}: {value}{unit}"

    state = status.get("state") or "unknown"
    if status.get("muted"):
        state += " (microphone muted)"
    lines = [f"state: {state}" + (f" ({status['state_detail']})"
                                   if status.get("state_detail") else "")]
    connected = status.get("connected")
    if connected is not None:
        lines.append(f"connected: {'yes' if connected else 'no'}"
                     + (f", {status['connection']}" if status.get("connection") else ""))
    for line in (shown("session_age_s", "session age", " s"),
                 shown("expires_in_s", "session expires in", " s"),
                 shown("minutes_today", "minutes today"),
                 shown("turns", "turns"), shown("interruptions", "interruptions"),
                 shown("tool_calls", "tool calls"), shown("reconnects", "reconnects"),
                 shown("recycles", "recycles"), shown("dropped_audio_ms", "dropped audio", " ms"),
                 shown("uptime_s", "up", " s"), shown("pid", "pid"),
                 shown("version", "version")):
        if line is not None:
            lines.append(line)
    return "\n".join(lines)


def cmd_emulate(args: argparse.Namespace) -> int:
    from rtd.emulator import serve

    serve(args.host, args.port, args.scenario, args.api_key, args.voice, args.max_session,
          auth_failure=args.auth_failure, faults=args.fault, dialect=args.dialect)
    return EX_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from rtd.builtin.clock import ClockSettings
    from rtd.daemon import Daemon
    from rtd.emulator import DEMO_QUESTION_WAV, DEMO_SCENARIO, Emulator, load_scenario
    from rtd.messages import ResponseDone
    from rtd.supervisor import StartupError

    base = _load(args, require_key=False)
    out = Path(args.out)
    logs.setup("warning")
    conversation = logging.getLogger("rtd.conversation")
    to_stdout = logging.StreamHandler(sys.stdout)
    to_stdout.setFormatter(logging.Formatter("  %(message)s"))
    conversation.addHandler(to_stdout)
    conversation.setLevel(logging.INFO)
    conversation.propagate = False

    with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine=args.voice) as emu:
        print(f"rtd demo: talking to the local emulator at {emu.url}\n"
              "(rtd's offline development peer, not the OpenAI service; no key or network used)")
        config = dataclasses.replace(
            base,
            provider=cfg.ProviderConfig(name="custom", url=emu.url, model=base.provider.model),
            session=dataclasses.replace(base.session, output="audio",
                                        turn_detection="server_vad"),
            audio_input=cfg.AudioInputConfig(backend="file", path=str(DEMO_QUESTION_WAV)),
            audio_output=cfg.AudioOutputConfig(backend="file", path=str(out)),
            components=(base.enabled("tools").get("clock")
                        or cfg.ComponentConfig("tools", "clock", ClockSettings()),),
            component_problems=(),
            api_key=None,
            # its own control socket: the installed daemon's path is the daemon's
            control=cfg.ControlConfig(path=os.path.join(tempfile.gettempdir(),
                                                        f"rtd-demo-{os.getpid()}.sock")),
        )
        daemon = Daemon(config)
        responses = threading.Semaphore(0)
        daemon.bus.observe(lambda m: isinstance(m, ResponseDone) and responses.release())
        print(f"microphone: {DEMO_QUESTION_WAV.name}; speaker: {out}\n")
        try:
            daemon.start()
            finished = _wait_demo(emu, responses, timeout=args.timeout)
            finished = finished and daemon.drained(timeout=10)
            time.sleep(0.3)  # a moment of room tone after the answer, as a speaker would play
        except StartupError as exc:
            return _fail(f"demo could not start: {exc.__cause__ or exc}", EX_FAILURE)
        finally:
            daemon.stop()
    if not finished:
        return _fail(f"the demo conversation did not finish within {args.timeout:.0f} s",
                     EX_FAILURE)
    seconds = out.stat().st_size / 48000 if out.exists() else 0.0
    print(f"\nwrote {out} ({seconds:.1f} s of what the speaker played)")
    return EX_OK


def _wait_demo(emu, responses: threading.Semaphore, timeout: float) -> bool:
    """Wait until the scenario ran out and the daemon saw every response the emulator sent."""
    deadline = time.monotonic() + timeout
    if not emu.scenario_done.wait(timeout):
        return False
    sent = sum(1 for e in emu.sent if e.get("type") == "response.done")
    for _ in range(sent):
        if not responses.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False
    return True


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH",
                        help="config file (default: $RTD_CONFIG, /etc/rtd/rtd.toml, "
                        "./etc/rtd.toml)")
    parser = argparse.ArgumentParser(
        prog="rtd", parents=[common],
        description="rtd: a realtime voice daemon for OpenAI's Realtime API and compatible "
        "servers.")
    parser.add_argument("--version", action="version", version=f"rtd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", parents=[common], help="run the daemon until SIGTERM or Ctrl-C")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                   help="override log.level")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", parents=[common],
                       help="validate the config, key, audio devices and files; exit 78 if not")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("config", parents=[common],
                       help="print the effective configuration, secrets masked")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("devices", parents=[common],
                       help="list audio devices with channels and default rates")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("plugins", parents=[common],
                       help="list installed plugins, their status and components")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("say", parents=[common],
                       help="send a text message to the running daemon's socket sender")
    p.add_argument("text", nargs="+", help="what to say")
    p.add_argument("--socket", metavar="PATH", help="socket path (default: from the config)")
    p.set_defaults(func=cmd_say)

    socket_help = "control socket (default: control.path from the config)"
    p = sub.add_parser("status", parents=[common],
                       help="show what the running daemon is doing, its session and counters")
    p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    p.add_argument("--socket", metavar="PATH", help=socket_help)
    p.set_defaults(func=_control_command)

    p = sub.add_parser("wake", parents=[common],
                       help="open the conversation now (session.start = \"on_demand\")")
    p.add_argument("--socket", metavar="PATH", help=socket_help)
    p.set_defaults(func=_control_command)

    p = sub.add_parser("sleep", parents=[common],
                       help="close the conversation now (session.start = \"on_demand\")")
    p.add_argument("--socket", metavar="PATH", help=socket_help)
    p.set_defaults(func=_control_command)

    p = sub.add_parser("talk", parents=[common],
                       help="push-to-talk from a script: start, stop (the model answers) or "
                       "cancel a turn")
    p.add_argument("action", choices=["start", "stop", "cancel"])
    p.add_argument("--socket", metavar="PATH", help=socket_help)
    p.set_defaults(func=_control_command)

    p = sub.add_parser(
        "emulate", parents=[common],
        help="run the local realtime emulator (offline development peer, not the OpenAI "
        "service)",
        description="Run rtd's local emulator: a WebSocket server speaking the GA realtime "
        "protocol on this machine, for development and tests without a key or network. It "
        "imitates the protocol, not the model: its replies are scripted.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--scenario", metavar="FILE", help="TOML scenario of scripted turns")
    p.add_argument("--api-key", metavar="KEY",
                   help="require this key from clients (default: accept any)")
    p.add_argument("--voice", choices=["auto", "espeak", "tones"], default="auto",
                   help="speech for replies: espeak-ng if installed, else tones")
    p.add_argument("--max-session", type=float, metavar="SECONDS",
                   help="close each connection with 1001 after this long, like the service")
    p.add_argument("--auth-failure", choices=["http", "close"], default="http",
                   help="refuse a wrong key with HTTP 401, or with an error event and close 3000")
    p.add_argument("--fault", action="append", default=[], metavar="TOML",
                   help='inject a fault, written like a [[fault]] table\'s inside, e.g. '
                   '\'at = "upgrade", do = "http", status = 503, retry_after = 2\' '
                   "(repeatable; see `pydoc rtd.emulator`)")
    p.add_argument("--dialect", choices=["ga", "beta", "xai"], default="ga",
                   help="the wire shape to speak: GA (default), the older beta shape, or "
                   "xAI's")
    p.set_defaults(func=cmd_emulate)

    p = sub.add_parser(
        "demo", parents=[common],
        help="hold one conversation with the local emulator, offline, and save the speaker "
        "output")
    p.add_argument("--out", default="rtd-demo.wav", metavar="FILE",
                   help="WAV to write what the speaker played (default: rtd-demo.wav)")
    p.add_argument("--voice", choices=["auto", "espeak", "tones"], default="auto",
                   help="the emulator's speech: espeak-ng if installed, else tones")
    p.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return _fail(str(exc), EX_CONFIG)
    except RtdError as exc:
        return _fail(str(exc), EX_FAILURE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
