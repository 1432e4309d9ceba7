"""Finding plugins and the components they provide, each entry point isolated from the others.

rtd's own components come through the same path (the ``builtin`` entry point of the rtd
package), so a third-party tool and the clock are loaded, validated and reported alike.
A package that fails to import, a hook that raises or returns the wrong thing, or a name
already taken costs that plugin (or that component) one log line and a status, never the daemon.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from rtd import hookspecs
from rtd.components import EVENT_TYPES, Receiver, Sender
from rtd.tools import Tool

logger = logging.getLogger(__name__)

KINDS = ("tools", "senders", "receivers")
"""Component kinds, as they appear in config tables and `rtd plugins`."""
TRACE_ENV = "RTD_TRACE_PLUGINS"
BUILTIN = "rtd.builtin.plugin"
DISTRIBUTION = "rtd-voice"
"""rtd's own distribution on the package index (the import package and the command are `rtd`)."""
"""The module holding rtd's own hook implementations."""


@dataclass
class PluginInfo:
    """One installed plugin (entry point) and what became of it."""

    name: str
    """The entry-point name."""
    package: str
    """The distribution that declares it, e.g. rtd-example."""
    version: str
    status: str = "loaded"
    """"loaded", or what went wrong, in one line."""
    provides: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    problems: list[str] = field(default_factory=list)
    """Components of this plugin that were refused, and why."""


@dataclass
class Registry:
    """Every component the installed plugins provide, by kind and name."""

    tools: dict[str, Tool] = field(default_factory=dict)
    senders: dict[str, type[Sender]] = field(default_factory=dict)
    receivers: dict[str, type[Receiver]] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    #: (kind, name) -> the plugin that provides it.
    provider: dict[tuple[str, str], str] = field(default_factory=dict)

    def of(self, kind: str) -> dict[str, Any]:
        return {"tools": self.tools, "senders": self.senders, "receivers": self.receivers}[kind]

    def describe(self, kind: str) -> str:
        """'clock (rtd), shell (rtd-shell)' for messages naming what exists."""
        names = self.of(kind)
        if not names:
            return "none installed"
        return ", ".join(f"{n} ({self.provider.get((kind, n), '?')})" for n in sorted(names))


def plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with rtd's hookspecs; tracing when $RTD_TRACE_PLUGINS is set."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV, "") not in ("", "0"):
        trace = logging.getLogger("rtd.plugins.trace")
        pm.trace.root.setwriter(lambda text: trace.info("%s", text.rstrip()))
        pm.enable_tracing()
    return pm


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=hookspecs.PROJECT)
    # rtd's own first, then alphabetical: a third-party name clash loses to the built-in
    return sorted(eps, key=lambda ep: (ep.value != BUILTIN, ep.name))


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    """The distribution declaring the entry point, or its module when there is none."""
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else ep.value.split(":")[0]


def load(extra: Iterable[tuple[str, object]] = (),
         entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> Registry:
    """Load every plugin and collect its components.

    ``extra`` adds in-process plugins (name, module or object), as `rtd.Realtime` does for
    functions decorated in a script.
    """
    pm = plugin_manager()
    registry = Registry()
    loaded: list[tuple[PluginInfo, object]] = []
    eps = _entry_points() if entry_points is None else list(entry_points)
    if entry_points is None and not any(ep.value == BUILTIN for ep in eps):
        # running from a source tree that was never pip-installed: no entry points exist
        from rtd import __version__
        from rtd.builtin import plugin as builtin

        loaded.append((PluginInfo("builtin", DISTRIBUTION, __version__), builtin))
        registry.plugins.append(loaded[0][0])
    for ep in eps:
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, _dist_name(ep), dist.version if dist is not None else "?")
        registry.plugins.append(info)
        try:
            obj = ep.load()
        except Exception as exc:  # any import-time failure of a third-party package
            info.status = f"failed to import {ep.value}: {type(exc).__name__}: {exc}"
            logger.warning("plugin %s (%s): %s", ep.name, info.package, info.status)
            continue
        loaded.append((info, obj))
    for name, obj in extra:
        info = PluginInfo(name, "(script)", "")
        registry.plugins.append(info)
        loaded.append((info, obj))

    for info, obj in loaded:
        try:
            pm.register(obj, name=info.name)
        except Exception as exc:  # pluggy refuses duplicate names and malformed hookimpls
            info.status = f"not registered: {exc}"
            logger.warning("plugin %s (%s): %s", info.name, info.package, info.status)
            continue
        others = [p for p in pm.get_plugins() if p is not obj]
        for kind in KINDS:
            caller = pm.subset_hook_caller(f"register_{kind}", remove_plugins=others)
            _collect(kind, caller, info, registry)
    return registry


def _collect(kind: str, caller: Callable[[], list[Any]], info: PluginInfo,
             registry: Registry) -> None:
    try:
        results = caller()
    except Exception as exc:
        problem = f"register_{kind}() raised {type(exc).__name__}: {exc}"
        info.problems.append(problem)
        info.status = "loaded with problems"
        logger.warning("plugin %s (%s): %s", info.name, info.package, problem)
        return
    for result in results:
        if not isinstance(result, (list, tuple)):
            _refuse(info, f"register_{kind}() returned {type(result).__name__}, expected a list")
            continue
        for component in result:
            problem = _check(kind, component)
            if problem:
                _refuse(info, f"register_{kind}(): {problem}")
                continue
            name = component.name
            taken = registry.provider.get((kind, name))
            if taken is not None:
                _refuse(info, f"register_{kind}(): {kind[:-1]} name {name!r} is already "
                        f"provided by {taken}; this one is ignored")
                continue
            registry.of(kind)[name] = component
            registry.provider[(kind, name)] = info.package
            info.provides[kind].append(name)


def _refuse(info: PluginInfo, problem: str) -> None:
    info.problems.append(problem)
    info.status = "loaded with problems"
    logger.warning("plugin %s (%s): %s", info.name, info.package, problem)


def _check(kind: str, component: Any) -> str | None:
    """Why a hook's item is not a usable component, or None."""
    if kind == "tools":
        if not isinstance(component, Tool):
            return f"{component!r} is not a Tool (decorate the function with @rtd.tool)"
        return None
    base = Sender if kind == "senders" else Receiver
    if not (isinstance(component, type) and issubclass(component, base)):
        return f"{component!r} is not a subclass of rtd.components.{base.__name__}"
    if not isinstance(component.name, str) or not component.name:
        return f"{component.__name__} has no name"
    if kind == "receivers":
        unknown = [e for e in component.events if e not in EVENT_TYPES]
        if unknown or not component.events:
            return (f"{component.__name__}.events must list kinds from "
                    f"{', '.join(EVENT_TYPES)}; got {list(component.events)!r}")
    return None
