"""`OpenAIRealtimeTool`: Mirascope's realtime tool type, without pydantic.

Mirascope builds tools as pydantic models; rtd derives the same JSON schema from the function's
type hints and docstring with `rtd.tools` (the one schema builder rtd has), so a tool means
the same thing to the model whichever API offered it. A tool is either a typed function
(``tools=[format_book]``) or a subclass with annotated fields and a ``call`` method::

    class FormatBook(OpenAIRealtimeTool):
        \"\"\"Format a book's title and author.\"\"\"

        title: str
        author: str

        def call(self) -> str:
            return f"{self.title} by {self.author}"
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypedDict

from rtd.tools import Tool, tool

DEFAULT_TOOL_DOCSTRING = (
    "Correctly formatted and typed parameters extracted from the completion. Must include "
    "required parameters and may exclude optional parameters unless present in the text."
)
"""What the model reads for a tool without a docstring (Mirascope's own default)."""


class RealtimeToolParam(TypedDict, total=False):
    """A tool as the session (or a response) offers it."""

    type: Literal["function"]
    name: str
    description: str
    parameters: dict[str, Any]


class FunctionCallArguments(TypedDict, total=False):
    """The model's call: its id and the arguments as the JSON text it produced."""

    call_id: str
    arguments: str


def _signature_function(cls: type) -> Callable[..., Any]:
    """A function whose signature is the class's annotated fields, for `rtd.tools.tool`."""
    hints = typing.get_type_hints(cls)
    params = []
    annotations: dict[str, Any] = {}
    for name, hint in hints.items():
        if name.startswith("_") or name == "tool_call" or typing.get_origin(hint) is ClassVar:
            continue
        default = cls.__dict__.get(name, inspect.Parameter.empty)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=hint))
        annotations[name] = hint

    def fields(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    fields.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fields.__annotations__ = annotations
    fields.__name__ = fields.__qualname__ = cls.__name__
    fields.__doc__ = cls.__doc__
    return fields


class OpenAIRealtimeTool:
    """A tool the model may call; an instance is one call, with the arguments as attributes.

    As in Mirascope: ``tool.call()`` runs it, ``tool.args`` are the arguments,
    ``tool.tool_call`` the call's id and raw arguments, ``Tool.tool_schema()`` what the model
    is offered, ``OpenAIRealtimeTool.type_from_fn(fn)`` makes the type of a function.
    """

    __provider__: ClassVar[str] = "openai"
    __rtd_tool__: ClassVar[Tool | None] = None
    """The schema and argument converters, built once from the function or the fields."""
    __rtd_function__: ClassVar[Callable[..., Any] | None] = None
    """The function a `type_from_fn` type calls; None for subclasses with their own call."""

    tool_call: FunctionCallArguments

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("__rtd_function__") is None and "call" in cls.__dict__:
            doc = inspect.getdoc(cls)
            cls.__rtd_tool__ = tool(_signature_function(cls), name=cls.__name__,
                                    description=None if doc else DEFAULT_TOOL_DOCSTRING)

    def __init__(self, **arguments: Any) -> None:
        self.tool_call = arguments.pop("tool_call", FunctionCallArguments())
        self._arguments = arguments
        for key, value in arguments.items():
            setattr(self, key, value)

    # -- the type ---------------------------------------------------------------------------

    @classmethod
    def _tool(cls) -> Tool:
        if cls.__rtd_tool__ is None:
            raise TypeError(f"{cls.__name__} is not a tool: give it annotated fields and a "
                            "call() method, or use OpenAIRealtimeTool.type_from_fn(function)")
        return cls.__rtd_tool__

    @classmethod
    def _name(cls) -> str:
        return cls._tool().name

    @classmethod
    def _description(cls) -> str:
        return cls._tool().description

    @classmethod
    def tool_schema(cls) -> RealtimeToolParam:
        """The tool as offered to the model; ``parameters`` only when it takes any."""
        t = cls._tool()
        schema = RealtimeToolParam(type="function", name=t.name, description=t.description)
        if t.parameters.get("properties"):
            schema["parameters"] = dict(t.parameters)
        return schema

    @classmethod
    def type_from_fn(cls, fn: Callable[..., Any]) -> type[OpenAIRealtimeTool]:
        """The tool type of a typed function (its docstring, if any, is the description)."""
        made = tool(fn, description=None if inspect.getdoc(fn) else DEFAULT_TOOL_DOCSTRING)
        return type(made.name, (cls,), {"__rtd_tool__": made, "__rtd_function__": fn,
                                        "__doc__": fn.__doc__, "__module__": fn.__module__})

    @classmethod
    def from_tool_call(cls, tool_call: FunctionCallArguments) -> OpenAIRealtimeTool:
        """An instance from the model's call; arguments that do not fit raise ValueError."""
        text = tool_call.get("arguments") or ""
        try:
            arguments = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{cls._name()}: arguments are not valid JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise ValueError(f"{cls._name()}: arguments must be a JSON object, got {text!r}")
        t = cls._tool()
        problems = t.validate(arguments)
        if problems:
            raise ValueError(f"{cls._name()}: " + "; ".join(problems))
        converted = {k: t.converters[k](v) if k in t.converters else v
                     for k, v in arguments.items()}
        return cls(**converted, tool_call=dict(tool_call))

    # -- the call ---------------------------------------------------------------------------

    @property
    def args(self) -> dict[str, Any]:
        """The call's arguments by name."""
        return dict(self._arguments)

    def call(self) -> Any:
        """Run the tool with this call's arguments (a function tool calls its function)."""
        fn = type(self).__rtd_function__
        if fn is None:
            raise NotImplementedError(f"{type(self).__name__} defines no call() method")
        return fn(**self._arguments)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._arguments.items())
        return f"{type(self).__name__}({shown})"


def tool_type(item: Any) -> type[OpenAIRealtimeTool]:
    """The tool type of what a script passes as a tool: a function or a tool class."""
    if inspect.isclass(item) and issubclass(item, OpenAIRealtimeTool):
        item._tool()  # a class without fields and call() is refused here, not at the call
        return item
    if callable(item) and not inspect.isclass(item):
        return OpenAIRealtimeTool.type_from_fn(item)
    raise TypeError(f"expected a typed function or an OpenAIRealtimeTool subclass as a tool, "
                    f"got {item!r}")


__all__ = ["DEFAULT_TOOL_DOCSTRING", "FunctionCallArguments", "OpenAIRealtimeTool",
           "RealtimeToolParam", "tool_type"]
