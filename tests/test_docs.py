"""docs/plugins.md stays in step with the code plugin authors program against.

Fails when a hookspec of rtd/hookspecs.py is missing from the guide with its exact signature,
when an event kind of `rtd.components.EVENT_TYPES` (or one of its fields) is not documented,
when a public `SenderContext` method is not documented with its signature, when the self-check
(`Sender.check`, `Receiver.check`, ``@tool(check=)``) or an argument of `@tool` is not documented,
when a hook has no test of its own (``test_hook_<hookname>`` somewhere under tests/), when the
guide documents something the code no longer has, when one of the guide's example plugins no
longer loads, and when the template package (plugins/rtd-example) implements a hook with
arguments the hookspec does not have or no longer shows the hooks' context argument.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtd import hookspecs, plugins, tools
from rtd.components import EVENT_TYPES, Receiver, Sender, SenderContext
from rtd.plugins import PluginStatus

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"
EXAMPLE_MARK = "<!-- example plugin: loaded by tests/test_docs.py -->"
TEMPLATE = ROOT / "plugins" / "rtd-example"


class _AsWritten(str):
    """An annotation shown as its source text: inspect would put quotes around a plain str."""

    def __repr__(self) -> str:
        return str(self)


def _source_annotations(function: Callable[..., Any]) -> dict[str, str]:
    """Each annotation of ``function`` as written in its source ("return" for the result)."""
    source = textwrap.dedent(inspect.getsource(function))
    node = ast.parse(source).body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    args = node.args
    found = {a.arg: ast.get_source_segment(source, a.annotation)
             for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                       *filter(None, [args.vararg, args.kwarg])] if a.annotation is not None}
    if node.returns is not None:
        found["return"] = ast.get_source_segment(source, node.returns)
    return {name: text for name, text in found.items() if text is not None}


def signature_text(function: Callable[..., Any], *, drop_self: bool = False) -> str:
    """``(a: int, *, b: str = 'x') -> list[Tool]`` from inspect.signature, annotations as written.

    With ``from __future__ import annotations`` inspect already holds the source text; without
    it, the text is read from the source so that ``list[Tool]`` does not become a repr.
    """
    signature = inspect.signature(function)
    written = _source_annotations(function)
    parameters = list(signature.parameters.values())
    if drop_self:
        parameters = parameters[1:]
    parameters = [p if p.annotation is p.empty else
                  p.replace(annotation=_AsWritten(written.get(p.name, p.annotation)))
                  for p in parameters]
    returns = signature.return_annotation
    if returns is not signature.empty:
        returns = _AsWritten(written.get("return", returns))
    return str(signature.replace(parameters=parameters, return_annotation=returns))


def hookspec_functions() -> list[Callable[..., Any]]:
    """Every function of rtd.hookspecs marked as a hookspec."""
    marker = f"{hookspecs.PROJECT}_spec"
    found = [f for _, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(f, marker)]
    assert found, "no hookspecs found in rtd/hookspecs.py"
    return found


@pytest.fixture(scope="module")
def guide() -> str:
    assert GUIDE.is_file(), f"{GUIDE} is missing"
    return GUIDE.read_text(encoding="utf-8")


def test_signature_text_is_the_source_text() -> None:
    assert signature_text(hookspecs.register_tools) == (
        "(settings: Mapping[str, Any]) -> list[Tool]")
    assert signature_text(SenderContext.send_text, drop_self=True) == (
        "(text: str, *, respond: bool = True, response: dict[str, Any] | None = None)"
        " -> bool")


@pytest.mark.parametrize("hook", hookspec_functions(), ids=lambda f: f.__name__)
def test_every_hook_is_documented_with_its_exact_signature(guide: str, hook) -> None:
    line = f"def {hook.__name__}{signature_text(hook)}:"
    assert line in guide, f"docs/plugins.md does not show the hook as `{line}`"


@pytest.mark.parametrize("hook", hookspec_functions(), ids=lambda f: f.__name__)
def test_every_hook_has_a_test_of_its_own(hook) -> None:
    pattern = re.compile(rf"^\s*(async\s+)?def test_hook_{hook.__name__}\(", re.MULTILINE)
    homes = [path for path in TESTS.rglob("*.py")
             if pattern.search(path.read_text(encoding="utf-8"))]
    assert homes, (f"no test named test_hook_{hook.__name__} under tests/: add one that calls the "
                   "hook through rtd.plugins.load() (see tests/plugins/test_hooks.py)")


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_every_event_kind_is_documented_with_its_fields(guide: str, kind: str) -> None:
    rows = [line for line in guide.splitlines() if line.startswith(f"| `{kind}` |")]
    assert rows, f"docs/plugins.md has no table row starting with | `{kind}` |"
    cells = [cell.strip() for cell in rows[0].split("|")[1:-1]]
    assert len(cells) == 4, f"the `{kind}` row needs 4 cells: kind, type, fields, when it fires"
    _kind, type_cell, fields_cell, when = cells
    event_type = EVENT_TYPES[kind]
    assert type_cell == f"`{event_type.__name__}`", f"the `{kind}` row does not name its type"
    for field in dataclasses.fields(event_type):
        assert f"`{field.name}`" in fields_cell, f"the `{kind}` row lacks the field `{field.name}`"
    assert when, f"the `{kind}` row does not say when it fires"


def sender_context_methods() -> list[Callable[..., Any]]:
    return [f for name, f in inspect.getmembers(SenderContext, inspect.isfunction)
            if not name.startswith("_")]


@pytest.mark.parametrize("method", sender_context_methods(), ids=lambda f: f.__name__)
def test_every_sender_context_method_is_documented(guide: str, method) -> None:
    text = f"ctx.{method.__name__}{signature_text(method, drop_self=True)}"
    unescaped = guide.replace("\\|", "|")  # `float \| None` inside a Markdown table cell
    assert text in unescaped, f"docs/plugins.md does not document `{text}`"


def test_nothing_documented_that_does_not_exist(guide: str) -> None:
    """Hooks, event kinds and context methods removed from the code leave the guide too."""
    hooks = {f.__name__ for f in hookspec_functions()}
    documented_hooks = set(re.findall(r"^def (register_\w+)\(", guide, re.MULTILINE))
    assert documented_hooks <= hooks, f"not hooks (any more): {documented_hooks - hooks}"
    kinds = set(re.findall(r"^\| `(\w+)` \| `\w+` \|", guide, re.MULTILINE))
    assert kinds <= set(EVENT_TYPES), f"not event kinds (any more): {kinds - set(EVENT_TYPES)}"
    methods = {f.__name__ for f in sender_context_methods()}
    documented = set(re.findall(r"^\| `ctx\.(\w+)\(", guide, re.MULTILINE))
    assert documented <= methods, f"not SenderContext methods: {documented - methods}"
    assert documented_hooks and kinds and documented  # the patterns still match the guide


def plugin_examples() -> list[str]:
    """Every ```python block of the guide that implements a hook: each must load as it is."""
    if not GUIDE.is_file():
        return []
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    return [block for block in blocks if "@hookimpl" in block]


def test_the_complete_example_is_marked_and_implements_every_hook(guide: str) -> None:
    assert EXAMPLE_MARK in guide, f"the complete example is not marked with {EXAMPLE_MARK}"
    block = re.search(r"```python\n(.*?)```", guide.split(EXAMPLE_MARK, 1)[1], re.DOTALL)
    assert block, "no ```python block after the example mark"
    for hook in hookspec_functions():
        assert f"def {hook.__name__}(" in block.group(1), f"the example lacks {hook.__name__}"


def _example_id(source: str) -> str:
    """The first component the example defines: a tool function's name or a class's ``name``."""
    found = re.search(r'^def (?!register_)(\w+)\(|^    name = "(\w+)"', source, re.MULTILINE)
    return next(filter(None, found.groups()), "example") if found else "example"


@pytest.mark.parametrize("source", plugin_examples(), ids=_example_id)
def test_the_guides_examples_load_as_plugins(source: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's examples are real code: each imports and registers without a problem."""
    path = tmp_path / "rtd_docs_example.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("rtd_docs_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "rtd_docs_example", module)
    spec.loader.exec_module(module)
    registry = plugins.load(extra=[("docs_example", module)], entry_points=[])
    info = registry.plugins[0]
    assert (info.status, info.problems) == (PluginStatus.LOADED, [])
    implemented = [f.__name__ for f in hookspec_functions() if hasattr(module, f.__name__)]
    assert implemented
    for hook in implemented:
        assert info.provides[hook.removeprefix("register_")], f"{hook} provided nothing"


@pytest.mark.parametrize("base", [Sender, Receiver], ids=lambda c: c.__name__)
def test_the_self_check_is_documented_with_its_exact_signature(guide: str, base: type) -> None:
    line = f"def check{signature_text(base.check.__func__)}:"
    assert line in guide, f"docs/plugins.md does not show {base.__name__}.check as `{line}`"
    assert "## Self-checks" in guide


def test_every_argument_of_the_tool_decorator_is_documented(guide: str) -> None:
    keywords = [p.name for p in inspect.signature(tools.tool).parameters.values()
                if p.kind is p.KEYWORD_ONLY]
    assert "check" in keywords
    shown = "`@tool(" + ", ".join(f"{k}=" for k in keywords) + ")`"
    assert shown in guide, f"docs/plugins.md does not list @tool's arguments as {shown}"


def test_the_template_implements_the_hooks_as_specified(monkeypatch: pytest.MonkeyPatch) -> None:
    """plugins/rtd-example is what authors copy: its hooks match the hookspecs' arguments."""
    monkeypatch.syspath_prepend(str(TEMPLATE))
    for name in [m for m in sys.modules if m == "rtd_example" or m.startswith("rtd_example.")]:
        monkeypatch.delitem(sys.modules, name)
    template = importlib.import_module("rtd_example")
    specs = {f.__name__: f for f in hookspec_functions()}
    takes_arguments = []
    for name, spec in specs.items():
        implementation = getattr(template, name, None)
        assert implementation is not None, f"the template does not implement {name}"
        parameters = inspect.signature(implementation).parameters
        assert set(parameters) <= set(inspect.signature(spec).parameters), name
        if parameters:
            assert signature_text(implementation) == signature_text(spec), (
                f"the template's {name} should have the hookspec's signature")
            takes_arguments.append(name)
    assert takes_arguments, "the template shows no hook taking its context argument"
    registry = plugins.load(extra=[("example", template)], entry_points=[])
    assert (registry.plugins[0].status, registry.plugins[0].problems) == (
        PluginStatus.LOADED, [])
