"""rtd-shell: a tool that runs commands the device's owner allowed, by name.

Install it, then allow commands in rtd.toml (see README.md and `rtd_shell.shell`)::

    [tools.shell]
    commands = { uptime = ["uptime"], disk = ["df", "-h", "/"] }

Each command is its program and arguments, an array of words run as given, never by a shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtd import Tool, hookimpl

# The tool itself, its settings and helpers live in rtd_shell.shell.
from rtd_shell.shell import ShellSettings, for_settings, run_command

__version__ = "0.1.0"


@hookimpl
def register_tools(settings: Mapping[str, Any]) -> list[Tool]:
    """The `shell` tool (the function is `run_command`; the tool's name is "shell").

    ``settings`` holds the validated `ShellSettings` under "shell" once ``[tools.shell]`` is
    configured: the tool is then built for those commands (an enum of their names). Before
    that, when rtd only asks what is installed, it is empty.
    """
    configured = settings.get("shell")
    return [for_settings(configured) if configured is not None else run_command]


__all__ = ["ShellSettings", "for_settings", "register_tools", "run_command"]
