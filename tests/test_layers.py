"""The layers of DESIGN.md, kept: every import of every module, function-level ones included.

A module may import from its own group and from groups of lower layers, never upwards; no
import cycle exists, however the imports are spread across functions; the emulator shares
nothing with the client but the exceptions and the schema helpers; plugins (first-party ones
and rtd's own built-in components) use the public plugin API only. Imports under
``if TYPE_CHECKING:`` are for type checkers and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Bottom up. A module belongs to the first group whose prefix it has (longest prefix wins).
LAYERS: list[dict[str, tuple[str, ...]]] = [
    {"base": ("rtd._version", "rtd.schema", "rtd.exceptions", "rtd.exitcodes", "rtd.logs",
              "rtd.notify")},
    {"plugin API": ("rtd.messages", "rtd.hookspecs", "rtd.tools", "rtd.components")},
    {"built-in plugin": ("rtd.builtin",)},
    {"protocol": ("rtd.protocol",), "audio": ("rtd.audio",)},
    {"conversation": ("rtd.conversation",)},
    {"config": ("rtd.config", "rtd.plugins")},
    {"actors": ("rtd.supervisor", "rtd.actors")},
    {"daemon": ("rtd.daemon", "rtd.service")},
    {"faces": ("rtd", "rtd.__main__", "rtd.cli", "rtd.app", "rtd.client", "rtd.mirascope")},
]
#: A separate peer: it may import only these groups besides its own.
EMULATOR = "rtd.emulator"
EMULATOR_MAY_USE = ("rtd.exceptions", "rtd.schema")
#: What a plugin may import of rtd: the public plugin API.
PUBLIC_API = ("rtd", "rtd.components", "rtd.tools", "rtd.schema", "rtd.hookspecs",
              "rtd.exceptions", "rtd.messages")


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module named by an import anywhere in the tree (TYPE_CHECKING blocks excluded)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:  # `from pkg import sub` names the submodule, not pkg
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in RTD_MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph(base: Path, package: str) -> dict[str, set[str]]:
    """module -> the rtd modules it imports (names resolved to modules that exist)."""
    files = {_module_name(p, base): p for p in (base / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        named = _imports(tree, name, path.name == "__init__.py")
        graph[name] = {n for n in named if n in RTD_MODULES and n != name}
    return graph


RTD_MODULES = {_module_name(p, ROOT) for p in (ROOT / "rtd").rglob("*.py")}
GRAPH = _graph(ROOT, "rtd")
# rtd/__init__ reaches the faces lazily (module __getattr__): those are edges too
sys.path.insert(0, str(ROOT))
import rtd  # noqa: E402

GRAPH["rtd"] |= set(rtd._LAZY.values())


def _group(module: str) -> tuple[int, str]:
    best: tuple[int, int, str] | None = None
    for level, groups in enumerate(LAYERS):
        for group, prefixes in groups.items():
            for prefix in prefixes:
                matches = module == prefix or (prefix != "rtd" and
                                               module.startswith(prefix + "."))
                if matches and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), level, group)
    if best is None:
        raise KeyError(module)
    return best[1], best[2]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_has_a_layer():
    unplaced = []
    for module in sorted(m for m in GRAPH if not m.startswith(EMULATOR)):
        try:
            _group(module)
        except KeyError:
            unplaced.append(module)
    assert unplaced == [], "add these modules to a layer in tests/test_layers.py"


def test_imports_go_down_the_layers():
    wrong = []
    for module, targets in sorted(GRAPH.items()):
        if module.startswith(EMULATOR):
            continue
        level, group = _group(module)
        for target in sorted(targets):
            if target.startswith(EMULATOR):
                if module not in ("rtd.cli",):  # `rtd emulate` and `rtd demo` start it
                    wrong.append(f"{module} -> {target} (only the CLI starts the emulator)")
                continue
            t_level, t_group = _group(target)
            if t_level > level or (t_level == level and t_group != group):
                wrong.append(f"{module} ({group}) -> {target} ({t_group})")
    assert wrong == []


def test_protocol_imports_nothing_of_the_daemon():
    offending = {m: sorted(t for t in ts if not t.startswith(("rtd.protocol", "rtd.exceptions",
                                                                "rtd.schema", "rtd.exitcodes")))
                 for m, ts in GRAPH.items() if m.startswith("rtd.protocol")}
    assert {m: t for m, t in offending.items() if t} == {}


def test_the_conversation_is_pure():
    """No threads, sockets, bus or config: the messages and the wire protocol only."""
    allowed = ("rtd.messages", "rtd.protocol", "rtd.schema", "rtd.exceptions", "rtd.exitcodes")
    offending = {m: sorted(t for t in ts if t != m and not t.startswith(allowed))
                 for m, ts in GRAPH.items() if m.startswith("rtd.conversation")}
    assert {m: t for m, t in offending.items() if t} == {}
    assert "rtd.conversation" in GRAPH


def test_the_emulator_shares_nothing_with_the_client():
    offending = {m: sorted(t for t in ts if not t.startswith((EMULATOR, *EMULATOR_MAY_USE)))
                 for m, ts in GRAPH.items() if m.startswith(EMULATOR)}
    assert {m: t for m, t in offending.items() if t} == {}


def test_builtin_components_use_the_public_plugin_api_only():
    """rtd's own components load through the plugin path; they may not take shortcuts."""
    offending = {m: sorted(t for t in ts if t not in PUBLIC_API and not t.startswith(
        "rtd.builtin")) for m, ts in GRAPH.items() if m.startswith("rtd.builtin")}
    assert {m: t for m, t in offending.items() if t} == {}


@pytest.mark.parametrize("plugin", sorted(p.name for p in (ROOT / "plugins").iterdir()
                                          if (p / "pyproject.toml").exists()))
def test_plugins_use_the_public_api_only(plugin):
    folder = ROOT / "plugins" / plugin
    wrong = []
    for path in folder.rglob("*.py"):
        if "tests" in path.relative_to(folder).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name in _imports(tree, _module_name(path, folder), path.name == "__init__.py"):
            if name in RTD_MODULES and name not in PUBLIC_API:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_the_plugin_import_loads_no_runtime():
    """What every plugin's first line costs: no runtime module, event loop or WebSocket."""
    code = ("import sys; from rtd import hookimpl, tool, setting; "
            "print('\\n'.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    loaded = set(done.stdout.split())
    heavy = sorted(m for m in loaded if m.split(".")[0] in ("asyncio", "websocket", "websockets",
                                                           "ssl", "pykka", "numpy", "sounddevice"))
    runtime = sorted(m for m in loaded if m.startswith("rtd.") and m not in (
        "rtd._version", "rtd.hookspecs", "rtd.schema", "rtd.tools"))
    assert heavy == [] and runtime == []
    assert "rtd.app" not in loaded
    # and the rest is still there, reached lazily
    done = subprocess.run([sys.executable, "-c", "import rtd; print(rtd.Realtime.__module__, "
                           "rtd.connect.__module__, rtd.Client.__module__, "
                           "rtd.AsyncClient.__module__)"], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.split() == ["rtd.app", "rtd.protocol.connection", "rtd.client",
                                   "rtd.client"]
