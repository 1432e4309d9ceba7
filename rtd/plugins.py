"""Finding plugins and the components they provide, each entry point isolated from the others.

rtd's own components come through the same path (the ``builtin`` entry point of the rtd
package), so a third-party tool and the clock are loaded, validated and reported alike.
A package that fails to import, a hook that raises or returns the wrong thing, a hook name
that is not one of rtd's, or a name already taken costs that plugin (or that component) one
log line and a status, never the daemon.

The ``register_*`` hooks are called in two rounds. `load` calls them with an empty
``settings`` mapping to learn what is installed: the names and the Settings schemas that the
configuration is validated against. Once the tables are valid, `Registry.configure` calls the
providing plugins again with their enabled components' validated settings, so a component can
depend on its table (rtd-shell offers its configured command names as an enum). A component
from the second round replaces the one of the same name; it must keep its Settings schema.
`self_check` then asks each enabled component for problems the table cannot show (a path that
cannot be written, an unknown time zone), which `rtd check` prints and `rtd run` logs.
"""

from __future__ import annotations

import enum
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import Any

import pluggy

from rtd import hookspecs
from rtd.components import EVENT_TYPES, Receiver, Sender
from rtd.schema import did_you_mean
from rtd.tools import Tool

logger = logging.getLogger(__name__)

KINDS = ("tools", "senders", "receivers")
"""Component kinds, as they appear in config tables and `rtd plugins`."""
TRACE_ENV = "RTD_TRACE_PLUGINS"
BUILTIN = "rtd.builtin.plugin"
DISTRIBUTION = "rtd-voice"
"""rtd's own distribution on the package index (the import package and the command are `rtd`)."""
"""The module holding rtd's own hook implementations."""
SETTINGS_ARGUMENT = "settings"
"""The context argument of the ``register_*`` hooks."""
NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})
"""What the discovery round passes as ``settings``: nothing is configured yet."""
COMMON_KEYS = {"tools": ("enabled", "timeout"), "senders": ("enabled",),
               "receivers": ("enabled",)}
"""Keys every table of a kind accepts besides the component's own (see rtd.config)."""


class PluginStatus(enum.Enum):
    """What became of one plugin (entry point); the value is how `rtd plugins` shows it."""

    LOADED = "loaded"
    """Imported and registered; every component it offered was accepted."""
    LOADED_WITH_PROBLEMS = "loaded with problems"
    """Registered, but a hook raised, returned something unusable, or is not an rtd hook."""
    FAILED_TO_IMPORT = "failed to import"
    """Importing the entry point raised: the plugin provides nothing."""
    NOT_REGISTERED = "not registered"
    """Imported, but the plugin manager refused it (a duplicate name, a hook taking an
    argument rtd does not pass): the plugin provides nothing."""


@dataclass
class PluginInfo:
    """One installed plugin (entry point) and what became of it."""

    name: str
    """The entry-point name."""
    package: str
    """The distribution that declares it, e.g. rtd-example."""
    version: str
    status: PluginStatus = PluginStatus.LOADED
    detail: str = ""
    """Why it failed to import or was not registered, in one line; empty otherwise."""
    provides: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    problems: list[str] = field(default_factory=list)
    """Hooks and components of this plugin that were refused, and why, one line each."""

    @property
    def status_text(self) -> str:
        """'loaded', or 'failed to import rtd_x: ImportError: ...': the status as one line."""
        if not self.detail:
            return self.status.value
        join = " " if self.status is PluginStatus.FAILED_TO_IMPORT else ": "
        return f"{self.status.value}{join}{self.detail}"


@dataclass
class Registry:
    """Every component the installed plugins provide, by kind and name."""

    tools: dict[str, Tool] = field(default_factory=dict)
    senders: dict[str, type[Sender]] = field(default_factory=dict)
    receivers: dict[str, type[Receiver]] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    #: (kind, name) -> the distribution that provides it.
    provider: dict[tuple[str, str], str] = field(default_factory=dict)
    #: The plugin manager holding the registered plugins, for the second round of hook calls;
    #: None for a registry built by hand.
    manager: pluggy.PluginManager | None = field(default=None, repr=False, compare=False)
    #: (kind, name) -> the plugin (entry-point name) that provides it.
    origin: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def of(self, kind: str) -> dict[str, Any]:
        return {"tools": self.tools, "senders": self.senders, "receivers": self.receivers}[kind]

    def describe(self, kind: str) -> str:
        """'clock (rtd), shell (rtd-shell)' for messages naming what exists."""
        names = self.of(kind)
        if not names:
            return "none installed"
        return ", ".join(f"{n} ({self.provider.get((kind, n), '?')})" for n in sorted(names))

    def info(self, plugin: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == plugin), None)

    def configure(self, kind: str, enabled: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, str]]:
        """Call the providing plugins' ``register_KIND`` again, with the validated settings.

        ``enabled`` maps each enabled component of ``kind`` to its validated Settings instance
        (None without a schema). Each plugin gets only its own components' settings. Returns
        the component to run for each name (the one this call returned, else the one found
        at discovery) and, by name, why a component cannot run: its hook raised or returned
        something unusable, or it came back with another Settings schema than the one its
        table was checked against.
        """
        available = self.of(kind)
        components = {name: available[name] for name in enabled}
        refused: dict[str, str] = {}
        if self.manager is None:
            return components, refused
        hook = f"register_{kind}"
        by_plugin: dict[str, dict[str, Any]] = {}
        for name, settings in enabled.items():
            by_plugin.setdefault(self.origin.get((kind, name), ""), {})[name] = settings
        for plugin_name, own in by_plugin.items():
            plugin = self.manager.get_plugin(plugin_name)
            info = self.info(plugin_name)
            if plugin is None or info is None:
                continue  # added by hand: there is no hook to ask again
            call = f"{hook}(settings)"
            try:
                results = _caller(self.manager, plugin, hook)(
                    **{SETTINGS_ARGUMENT: MappingProxyType(dict(own))})
            except Exception as exc:  # a plugin's hook must not take the configuration down
                refused.update(dict.fromkeys(own, f"{call} raised {type(exc).__name__}: {exc}"))
                continue
            for result in results:
                if not isinstance(result, (list, tuple)):
                    refused.update(dict.fromkeys(
                        own, f"{call} returned {type(result).__name__}, expected a list"))
                    continue
                for component in result:
                    name = getattr(component, "name", None)
                    problem = _check(kind, component)
                    if problem:
                        if name in own:
                            refused[name] = f"{call}: {problem}"
                        else:
                            _refuse(info, f"{call}: {problem}")
                        continue
                    if self.origin.get((kind, name)) != plugin_name:
                        _refuse(info, f"{call} returned {kind[:-1]} {name!r}, which {hook}() "
                                "without settings did not; ignored (rtd learns a plugin's "
                                "components from the call without settings)")
                        continue
                    if name not in own:
                        continue  # provided but not enabled: nothing to replace
                    before, after = _schema(kind, available[name]), _schema(kind, component)
                    if after is not before:
                        refused[name] = (f"{call} returned {kind[:-1]} {name!r} with settings "
                                         f"{_schema_name(after)} instead of "
                                         f"{_schema_name(before)}, which its table was checked "
                                         "against; a component must keep its Settings")
                        continue
                    components[name] = component
        for name, problem in refused.items():
            components.pop(name, None)
            info = self.info(self.origin.get((kind, name), ""))
            if info is not None:
                _refuse(info, problem)
        return components, refused


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
    """Load every plugin and collect what it provides (the discovery round).

    ``extra`` adds in-process plugins (name, module or object), as `rtd.Realtime` does for
    functions decorated in a script.
    """
    pm = plugin_manager()
    registry = Registry(manager=pm)
    loaded: list[tuple[PluginInfo, object]] = []
    eps = _entry_points() if entry_points is None else list(entry_points)
    if entry_points is None and not any(ep.value == BUILTIN for ep in eps):
        # running from a source tree that was never pip-installed: no entry points exist
        from rtd._version import __version__
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
            _fail(info, PluginStatus.FAILED_TO_IMPORT,
                  f"{ep.value}: {type(exc).__name__}: {_one_line(exc)}")
            continue
        loaded.append((info, obj))
    for name, obj in extra:
        info = PluginInfo(name, "(script)", "")
        registry.plugins.append(info)
        loaded.append((info, obj))

    for info, obj in loaded:
        refusal = _argument_problems(pm, obj)
        if refusal:
            _fail(info, PluginStatus.NOT_REGISTERED, refusal)
            continue
        try:
            pm.register(obj, name=info.name)
        except Exception as exc:  # pluggy refuses duplicate names and malformed hookimpls
            _fail(info, PluginStatus.NOT_REGISTERED, _one_line(exc))
            continue
        for problem in _unknown_hooks(pm, obj):
            _refuse(info, problem)
        for kind in KINDS:
            _collect(kind, _caller(pm, obj, f"register_{kind}"), info, registry)
    return registry


def _caller(pm: pluggy.PluginManager, plugin: object, hook: str) -> Callable[..., list[Any]]:
    """The hook of one plugin only: its results cannot be confused with another's."""
    others = [p for p in pm.get_plugins() if p is not plugin]
    return pm.subset_hook_caller(hook, remove_plugins=others)


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """pluggy's `check_pending()`, for one plugin and naming every unknown hook.

    ``check_pending`` raises for the first unknown hook of any plugin; a misspelt hook is a
    problem of its own plugin only, and the author wants to hear about each one, with the
    real hook it probably meant.
    """
    real = sorted(name for name, caller in vars(pm.hook).items()
                  if not name.startswith("_") and caller.has_spec())
    problems = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        if all(impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin):
            continue  # pluggy's way of saying "call me if that hook ever exists"
        problems.append(f"{caller.name} is not an rtd hook{did_you_mean(caller.name, real)}, so "
                        f"it is never called; rtd's hooks: {', '.join(real)}")
    return problems


def _argument_problems(pm: pluggy.PluginManager, plugin: object) -> str:
    """Why pluggy would refuse the plugin's hook arguments, as one line (empty: it would not).

    A hook implementation may name any of its hookspec's arguments and only those; pluggy
    refuses others at registration with a three-line message, this says the same in one.
    """
    problems = []
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        hook_name = opts.get("specname") or attr
        caller = getattr(pm.hook, hook_name, None)
        if caller is None or not caller.has_spec():
            continue
        try:
            parameters = inspect.signature(getattr(plugin, attr)).parameters
        except (TypeError, ValueError):
            continue  # not introspectable: let pluggy decide
        allowed = list(caller.spec.argnames)
        for name in parameters:
            if name not in allowed:
                problems.append(f"{hook_name}() takes argument {name!r}"
                                f"{did_you_mean(name, allowed)}, which rtd does not pass; it "
                                f"passes only {', '.join(allowed) or 'nothing'}")
    return "; ".join(problems)


def _collect(kind: str, caller: Callable[..., list[Any]], info: PluginInfo,
             registry: Registry) -> None:
    try:
        results = caller(**{SETTINGS_ARGUMENT: NO_SETTINGS})
    except Exception as exc:
        _refuse(info, f"register_{kind}() raised {type(exc).__name__}: {_one_line(exc)}")
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
            registry.origin[(kind, name)] = info.name
            info.provides[kind].append(name)


def _fail(info: PluginInfo, status: PluginStatus, detail: str) -> None:
    info.status, info.detail = status, detail
    logger.warning("plugin %s (%s): %s", info.name, info.package, info.status_text)


def _refuse(info: PluginInfo, problem: str) -> None:
    if problem in info.problems:
        return  # the same configuration checked twice in one process
    info.problems.append(problem)
    if info.status is PluginStatus.LOADED:
        info.status = PluginStatus.LOADED_WITH_PROBLEMS
    logger.warning("plugin %s (%s): %s", info.name, info.package, problem)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


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
    if kind == "senders":
        rate = component.audio_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int)
                                 or not 8000 <= rate <= 48000):
            return (f"{component.__name__}.audio_rate must be None or a sample rate in Hz "
                    f"from 8000 to 48000; got {rate!r}")
    if kind == "receivers":
        unknown = [e for e in component.events if e not in EVENT_TYPES]
        if unknown or not component.events:
            return (f"{component.__name__}.events must list kinds from "
                    f"{', '.join(EVENT_TYPES)}; got {list(component.events)!r}")
    return None


def _schema(kind: str, component: Any) -> type | None:
    """The Settings dataclass a component's table is validated against."""
    return component.settings if kind == "tools" else component.Settings


def _schema_name(schema: type | None) -> str:
    return "none" if schema is None else schema.__qualname__


# -- self-checks ------------------------------------------------------------------------------


def check_component(kind: str, name: str, component: Any, settings: Any) -> list[str]:
    """The problems a component's own ``check`` reports, as ``section.key: ...`` lines.

    A check returns lines of the form ``"key: what is wrong"``; a line whose ``key`` is one of
    the table's keys is reported as ``kind.name.key: what is wrong``, any other line as
    ``kind.name: line``. A check that raises or returns something else is one line too: a
    plugin's bug must not hide the rest of the report behind a traceback.
    """
    where = f"{kind}.{name}"
    check = getattr(component, "check", None)
    if check is None:
        return []
    try:
        found = check(settings)
        lines = [found] if isinstance(found, str) else list(found or ())
    except Exception as exc:  # a plugin's self-check is plugin code like any other
        return [f"{where}: its self-check failed: {type(exc).__name__}: {_one_line(exc)}"]
    schema = _schema(kind, component)
    keys = set(COMMON_KEYS[kind])
    if isinstance(schema, type) and is_dataclass(schema):
        keys.update(f.name for f in fields(schema))
    problems = []
    for line in lines:
        if not isinstance(line, str):
            problems.append(f"{where}: its self-check returned {line!r}, expected "
                            "'key: message' strings")
            continue
        key, colon, rest = line.partition(":")
        if colon and key.strip() in keys:
            problems.append(f"{where}.{key.strip()}: {rest.strip()}")
        else:
            problems.append(f"{where}: {' '.join(line.split())}")
    return problems


def self_check(components: Iterable[Any], registry: Registry | None = None
               ) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """Run the ``check`` of each enabled component (`rtd.config.ComponentConfig`).

    Returns the components that reported nothing and the problem lines of the others, each
    ending in ``(kind.name is disabled)``: `rtd check` prints them and exits 78, `rtd run`
    logs them and runs without those components. A component configured by hand without
    its ``component`` is looked up in ``registry``.
    """
    passed: list[Any] = []
    problems: list[str] = []
    for c in components:
        component = getattr(c, "component", None)
        if component is None and registry is not None:
            component = registry.of(c.kind).get(c.name)
        lines = [] if component is None else check_component(c.kind, c.name, component,
                                                             c.settings)
        if lines:
            problems.extend(f"{line} ({c.kind}.{c.name} is disabled)" for line in lines)
        else:
            passed.append(c)
    return tuple(passed), tuple(problems)


__all__ = ["KINDS", "PluginInfo", "PluginStatus", "Registry", "check_component", "load",
           "plugin_manager", "self_check"]
