"""The `shell` tool: run a command the device's owner allowed, by name, never through a shell.

The owner lists the commands in rtd.toml, each as its program and arguments (an array of
words); the model only ever picks one of those *names* and, for the commands listed in
``allow_arguments``, adds arguments as a list of words::

    [tools.shell]
    timeout = 15
    commands = { uptime = ["uptime"], disk = ["df", "-h", "/"], lights = ["/usr/local/bin/lights"] }
    allow_arguments = ["lights"]

The words are run as they are, with `rtd.tools.run_process(argv)` (no shell): nothing is split
or expanded, and no shell ever sees the model's text, so ``;``, ``|``, ``$(...)``, globs and
redirections in an argument are just characters.

Mistakes in the table that do not depend on the model (an empty command, a NUL byte, a name in
``allow_arguments`` that is not a command) are found when rtd loads the configuration, by
`ShellSettings.__post_init__`: ``rtd check`` reports them as ``tools.shell: ...`` lines and the
tool is disabled, instead of failing when the model calls it.

The tool's schema follows the table: `for_settings` builds, for the configured commands, a tool
whose ``command`` is a JSON-schema ``enum`` of their names and whose description lists them
(rtd asks for it through ``register_tools(settings)``), so the model picks from the real
names. ``run_command`` itself, with a plain string ``command``, is what rtd sees before the
configuration is read; a call with an unknown name is answered with the allowed names.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rtd import Tool, setting, tool
from rtd.tools import run_process

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
    """Settings of the shell tool: the ``[tools.shell]`` table.

    `__post_init__` checks what the types cannot (it runs when rtd validates the table, so
    a problem disables the tool with one ``tools.shell: ...`` line).
    """

    commands: dict[str, list[str]] = setting(
        {}, "allowed commands: name = [program, argument, ...], run as given (never split, "
        "expanded or run by a shell)")
    allow_arguments: list[str] = setting(
        [], "names of the commands that may get extra arguments from the model")
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

    def __post_init__(self) -> None:
        problems = [*_command_problems(self.commands)]
        unknown = [name for name in self.allow_arguments if name not in self.commands]
        if unknown:
            problems.append(f"allow_arguments names {', '.join(map(repr, unknown))}, not in "
                            f"commands ({', '.join(sorted(self.commands)) or 'none'})")
        if "\0" in self.directory:
            problems.append("directory contains a NUL character")
        for key, value in self.environment.items():
            if not key or "=" in key or "\0" in key:
                problems.append(f"environment: {key!r} is not a variable name")
            elif "\0" in value:
                problems.append(f"environment.{key} contains a NUL character")
        if problems:
            raise ValueError("; ".join(problems))


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
    argv = commands[command]

    extra = list(arguments or [])
    if extra:
        if command not in settings.allow_arguments:
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
        # its own process group, killed whole on a timeout or when rtd stops: a script's
        # children do not outlive the call
        done = run_process(
            argv, capture_output=True, text=True, errors="replace",
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


def for_settings(settings: ShellSettings) -> Tool:
    """The `shell` tool offering exactly the configured commands: ``command`` is an enum.

    The same function, name, settings class and timeout as `run_command`; only what the model
    reads changes. Without commands there is nothing to pick from (a JSON-schema enum may not
    be empty), so `run_command` itself is returned.
    """
    names = sorted(settings.commands)
    if not names:
        return run_command
    parameters = dict(run_command.parameters)
    properties = dict(parameters["properties"])
    properties["command"] = {**properties["command"], "enum": names,
                             "description": "The name of the command to run."}
    if not settings.allow_arguments:
        properties.pop("arguments")  # no command takes any: do not offer them
    parameters["properties"] = properties
    takes = sorted(settings.allow_arguments)
    description = (f"{run_command.description} Allowed commands: {', '.join(names)}."
                   + (f" Commands that take arguments: {', '.join(takes)}." if takes else ""))
    return replace(run_command, description=description, parameters=parameters)


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


def _command_problems(commands: dict[str, list[str]]) -> list[str]:
    """What is wrong with the configured commands: empty ones, words that are not strings (a
    Python caller's mistake; rtd's validator catches it in rtd.toml), NUL characters."""
    problems = []
    for name, argv in commands.items():
        if not isinstance(argv, list) or not all(isinstance(word, str) for word in argv):
            problems.append(f"commands.{name}: expected an array of strings, got {argv!r}")
        elif not argv:
            problems.append(f"commands.{name} is empty: give the program and its arguments, "
                            'e.g. ["df", "-h", "/"]')
        elif not argv[0]:
            problems.append(f"commands.{name}: the program (the first word) is empty")
        elif any("\0" in word for word in argv):
            problems.append(f"commands.{name} contains a NUL character")
    return problems


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


__all__ = ["ShellSettings", "command_environment", "for_settings", "run_command", "trim"]
