"""The `shell` tool: run a command the device's owner allowed, by name, never through a shell.

The owner lists the commands in rtd.toml; the model only ever picks one of those *names* and,
for the commands listed in ``allow_arguments``, adds arguments as a list of words::

    [tools.shell]
    timeout = 15
    commands = { uptime = "uptime", disk = "df -h /", lights = "/usr/local/bin/lights" }
    allow_arguments = "lights"

Each command line is split into words once, with `shlex.split` (so quotes group words as in a
shell), and run with ``subprocess.run(argv, shell=False)``: no shell ever sees the model's text,
so ``;``, ``|``, ``$(...)``, globs and redirections in an argument are just characters.

Why a string per command and not an array (``uptime = ["uptime"]``): rtd's settings validator
knows str, int, float, bool and tables of strings, not arrays. For the same reason
``allow_arguments`` is one string of names separated by spaces or commas.

Why the command is a plain string checked at call time rather than an enum of the configured
names: a tool's JSON schema is built once, from the function, before any configuration is
read. An unknown name is answered with the list of allowed names, so the model can retry.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtd import setting, tool

logger = logging.getLogger(__name__)

TOOL_TIMEOUT = 15.0
"""Seconds rtd waits for the tool by default (``tools.shell.timeout`` overrides it)."""
MAX_ARGUMENTS = 32
"""Most extra arguments one call may pass."""
MAX_ARGUMENT_CHARS = 1000
"""Longest extra argument accepted."""
PASSED_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ")
"""rtd's environment variables the commands see (plus every LC_*); nothing else is passed, so
secrets in rtd's environment, such as the API key, never reach a command or the model."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
"""PATH for the commands when rtd itself has none."""


@dataclass(frozen=True)
class ShellSettings:
    """Settings of the shell tool: the ``[tools.shell]`` table."""

    commands: dict[str, str] = setting(
        {}, "allowed commands: name = command line, split into words like a shell would "
        "(quotes group words) but never run by one")
    allow_arguments: str = setting(
        "", "names of the commands that may get extra arguments from the model, separated by "
        "spaces or commas")
    command_timeout: float = setting(
        10.0, "seconds a command may run before it is killed; keep it below tools.shell.timeout",
        min=0.1, max=3600.0)
    max_output: int = setting(
        4000, "characters of stdout, and of stderr, passed back to the model (the middle of "
        "longer output is cut)", min=100, max=1_000_000)
    directory: str = setting("", "working directory of the commands; empty: rtd's own")
    environment: dict[str, str] = setting(
        {}, "extra environment variables for the commands (of rtd's own only PATH, HOME, USER, "
        "LOGNAME, LANG, LANGUAGE, TZ and LC_* are passed)")


@tool(name="shell", settings=ShellSettings, timeout=TOOL_TIMEOUT)
def run_command(command: str, arguments: list[str] | None = None, *,
                settings: ShellSettings) -> dict[str, Any]:
    """Run one of the commands the owner of this device allowed, by name, and get its exit code
    and output. An unknown name is answered with the list of allowed names.

    Args:
        command: The name of an allowed command, such as "uptime"; not a command line.
        arguments: Extra arguments, one word per item, for the commands that accept them.
    """
    commands = settings.commands
    if command not in commands:
        if not commands:
            return {"error": "no commands are allowed on this device (tools.shell.commands "
                             "is empty)"}
        return {"error": f"no command named {command!r}; allowed commands: "
                         f"{', '.join(sorted(commands))}"}
    try:
        argv = shlex.split(commands[command])
    except ValueError as exc:  # an unclosed quote: the owner's mistake, reported to both
        logger.warning("tools.shell.commands.%s: cannot split %r: %s", command,
                       commands[command], exc)
        return {"error": f"tools.shell.commands.{command} is not a valid command line ({exc})"}
    if not argv:
        return {"error": f"tools.shell.commands.{command} is empty"}

    extra = list(arguments or [])
    if extra:
        allowed = argument_commands(settings)
        if command not in allowed:
            return {"error": f"command {command!r} takes no arguments; call it without "
                             "'arguments'"}
        problem = _argument_problem(extra)
        if problem:
            return {"error": problem}

    directory = settings.directory or None
    if directory is not None and not Path(directory).is_dir():
        return {"error": f"tools.shell.directory: {directory} is not a directory"}

    argv = [*argv, *extra]
    logger.info("shell: running %s", shlex.join(argv))
    try:
        done = subprocess.run(
            argv, shell=False, check=False, capture_output=True, text=True, errors="replace",
            stdin=subprocess.DEVNULL,  # never rtd's stdin (the stdin sender may be reading it)
            timeout=settings.command_timeout, cwd=directory, env=command_environment(settings))
    except FileNotFoundError:
        return {"error": f"command {command!r}: executable {argv[0]!r} not found "
                         f"(tools.shell.commands.{command})"}
    except PermissionError:
        return {"error": f"command {command!r}: {argv[0]!r} is not executable "
                         "(permission denied)"}
    except subprocess.TimeoutExpired:
        logger.warning("shell: %s did not finish within %g s; killed", command,
                       settings.command_timeout)
        return {"error": f"command {command!r} did not finish within "
                         f"{settings.command_timeout:g} seconds and was stopped"}
    except OSError as exc:
        return {"error": f"command {command!r}: cannot run {argv[0]!r}: {exc.strerror or exc}"}
    result: dict[str, Any] = {"command": command, "exit_code": done.returncode,
                              "stdout": trim(done.stdout, settings.max_output),
                              "stderr": trim(done.stderr, settings.max_output)}
    if done.returncode < 0:  # killed by a signal: say which, "exit code -9" means little
        result["signal"] = _signal_name(-done.returncode)
    return result


def argument_commands(settings: ShellSettings) -> set[str]:
    """The names in ``allow_arguments`` (separated by spaces and/or commas)."""
    return {name for name in re.split(r"[\s,]+", settings.allow_arguments) if name}


def command_environment(settings: ShellSettings) -> dict[str, str]:
    """The environment of a command: a few of rtd's variables plus ``environment``."""
    env = {key: value for key, value in os.environ.items()
           if key in PASSED_ENVIRONMENT or key.startswith("LC_")}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(settings.environment)
    return env


def trim(text: str, limit: int) -> str:
    """``text`` without trailing whitespace, its middle cut when longer than ``limit``.

    The model reads a summary: the start of the output (headers, the first error) and its end
    (the result, the last error) matter most.
    """
    text = text.rstrip()
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"


def _argument_problem(arguments: list[str]) -> str | None:
    if len(arguments) > MAX_ARGUMENTS:
        return f"at most {MAX_ARGUMENTS} arguments, got {len(arguments)}"
    for argument in arguments:
        if len(argument) > MAX_ARGUMENT_CHARS:
            return f"an argument is longer than {MAX_ARGUMENT_CHARS} characters"
        if "\0" in argument:
            return "an argument contains a NUL character"
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


__all__ = ["ShellSettings", "argument_commands", "command_environment", "run_command", "trim"]
