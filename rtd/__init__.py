"""rtd: a realtime voice daemon, and the library it is built from.

For plugin authors: `hookimpl`, `tool`, `setting`, and `rtd.components` (Sender, Receiver and
the events receivers get). For scripts: `Realtime` (the decorator API), `connect` (the raw
connection), and `Client` / `AsyncClient` (the OpenAI SDK's shape, `rtd.client`).

Importing rtd costs about what importing pluggy costs: a plugin module is imported by every
`rtd` command, so the plugin API is loaded eagerly and everything else (the runtime, the
WebSocket client, asyncio) only when a script first touches it, through `__getattr__`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rtd._version import __version__
from rtd.hookspecs import hookimpl
from rtd.schema import setting
from rtd.tools import Tool, tool

if TYPE_CHECKING:
    from rtd.app import Realtime, Stop
    from rtd.client import AsyncClient, Client
    from rtd.protocol import RealtimeConnection, ServerEvent, connect


#: Public names reached lazily -> the module that defines them.
_LAZY = {
    "AsyncClient": "rtd.client",
    "Client": "rtd.client",
    "Realtime": "rtd.app",
    "Stop": "rtd.app",
    "RealtimeConnection": "rtd.protocol",
    "ServerEvent": "rtd.protocol",
    "connect": "rtd.protocol",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "AsyncClient", "Client", "Realtime", "RealtimeConnection", "ServerEvent", "Stop", "Tool",
    "__version__", "connect", "hookimpl", "setting", "tool",
]
