"""rtd-shell: a tool that runs commands the device's owner allowed, by name.

Install it, then allow commands in rtd.toml (see README.md and `rtd_shell.shell`)::

    [tools.shell]
    commands = { uptime = ["uptime"], disk = ["df", "-h", "/"] }

Each command is its program and arguments, an array of words run as given, never by a shell.
"""

from __future__ import annotations

from rtd import Tool, hookimpl

# The tool itself, its settings and helpers live in rtd_shell.shell.
from rtd_shell.shell import ShellSettings, run_command

__version__ = "0.1.0"


@hookimpl
def register_tools() -> list[Tool]:
    """The `shell` tool (the function is `run_command`; the tool's name is "shell")."""
    return [run_command]


__all__ = ["ShellSettings", "register_tools", "run_command"]
