"""Tools: typed functions become JSON schemas; every failure becomes an output the model reads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
from typing import Literal, Optional

import pytest

from rtd.builtin.clock import CLOCK, ClockSettings, clock
from rtd.schema import setting
from rtd.tools import Tool, parse_docstring, tool

# Module level on purpose: with `from __future__ import annotations` the hints are strings,
# resolved against the function's module globals.


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Greeting:
    greeting: str = setting("hello", "how to greet")


def props(function) -> dict:
    """The schema of a tool's single parameter ``x``."""
    return tool(function).parameters["properties"]["x"]


# -- schema generation ------------------------------------------------------------------------


def test_the_readme_example_schema():
    @tool
    def set_timer(minutes: int, label: str = "timer") -> str:
        """Start a kitchen timer.

        Args:
            minutes: How long the timer runs, in minutes.
            label: What to call the timer when it rings.
        """
        return f"{label}: {minutes}"

    assert isinstance(set_timer, Tool)
    assert set_timer.name == "set_timer"
    assert set_timer.description == "Start a kitchen timer."
    assert set_timer.settings is None and set_timer.takes_settings is False
    assert set_timer.timeout is None
    assert set_timer.parameters == {
        "type": "object",
        "properties": {
            "minutes": {"type": "integer", "description": "How long the timer runs, in minutes."},
            "label": {"type": "string", "default": "timer",
                      "description": "What to call the timer when it rings."},
        },
        "required": ["minutes"],
        "additionalProperties": False,
    }
    assert set_timer.schema() == {"type": "function", "name": "set_timer",
                                  "description": "Start a kitchen timer.",
                                  "parameters": set_timer.parameters}


def test_primitive_types():
    def s(x: str):
        "d"

    def i(x: int):
        "d"

    def f(x: float):
        "d"

    def b(x: bool):
        "d"

    assert props(s) == {"type": "string"}
    assert props(i) == {"type": "integer"}
    assert props(f) == {"type": "number"}
    assert props(b) == {"type": "boolean"}


def test_literal_types():
    def words(x: Literal["celsius", "fahrenheit"]):
        "d"

    def mixed(x: Literal[1, "one", True]):
        "d"

    assert props(words) == {"type": "string", "enum": ["celsius", "fahrenheit"]}
    assert props(mixed) == {"type": ["integer", "string", "boolean"], "enum": [1, "one", True]}


def test_enum_types():
    def color(x: Color):
        "d"

    def level(x: Level = Level.LOW):
        "d"

    assert props(color) == {"type": "string", "enum": ["red", "green"]}
    assert props(level) == {"type": "integer", "enum": [1, 2], "default": 1}


def test_list_types():
    def words(x: list[str]):
        "d"

    def colors(x: list[Color]):
        "d"

    def nested(x: list[list[int]]):
        "d"

    assert props(words) == {"type": "array", "items": {"type": "string"}}
    assert props(colors) == {"type": "array", "items": {"type": "string", "enum": ["red", "green"]}}
    assert props(nested) == {"type": "array",
                             "items": {"type": "array", "items": {"type": "integer"}}}


def test_optional_types_are_nullable():
    def pipe(x: int | None):
        "d"

    def optional(x: Optional[int]):  # noqa: UP045 - the spelling under test
        "d"

    def color(x: Color | None = None):
        "d"

    def literal(x: Literal["a", "b"] | None):
        "d"

    def many(x: list[str] | None = None):
        "d"

    assert props(pipe) == {"type": ["integer", "null"]}
    assert props(optional) == {"type": ["integer", "null"]}
    assert props(color) == {"type": ["string", "null"], "enum": ["red", "green", None],
                            "default": None}
    assert props(literal) == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert props(many) == {"type": ["array", "null"], "items": {"type": "string"},
                           "default": None}
    # required means "no default": a nullable parameter without one must still be sent
    assert tool(pipe).parameters["required"] == ["x"]
    assert "required" not in tool(color).parameters


def test_a_none_default_makes_the_type_nullable():
    def implicit(x: int = None):  # type: ignore[assignment]
        "d"

    assert props(implicit) == {"type": ["integer", "null"], "default": None}


def test_defaults_and_required():
    @tool
    def f(a: str, b: int = 3, c: float = 0.5, d: bool = False, e: list[str] = ("x",),
          *, g: Color = Color.GREEN) -> None:
        """d"""

    p = f.parameters
    assert p["required"] == ["a"]
    assert [p["properties"][k].get("default") for k in "bcdeg"] == [3, 0.5, False, ["x"], "green"]
    assert p["additionalProperties"] is False


def test_no_parameters():
    @tool
    def ping() -> str:
        """Answer pong."""
        return "pong"

    assert ping.parameters == {"type": "object", "properties": {}, "additionalProperties": False}


def test_name_description_and_timeout_options():
    @tool(name="lights-on", description="  Turn the lights on.  ", timeout=5)
    def anything() -> None:
        pass

    assert anything.name == "lights-on"
    assert anything.description == "Turn the lights on."
    assert anything.timeout == 5.0 and isinstance(anything.timeout, float)


def test_schema_is_a_copy():
    @tool
    def f(x: list[str]) -> None:
        """d"""

    f.schema()["parameters"]["properties"]["x"]["items"]["type"] = "integer"
    assert f.parameters["properties"]["x"]["items"] == {"type": "string"}


# -- docstrings -------------------------------------------------------------------------------


def test_google_docstring():
    @tool
    def weather(city: str, days: int = 1, unit: Literal["c", "f"] = "c") -> str:
        """Today's weather
        for a city.

        Looks it up online. This second paragraph is not sent.

        Args:
            city (str): The city, e.g.
                'Berlin' or 'Paris'.
            days: How many
                days ahead.

        Returns:
            unit: not a parameter, the Returns section is not read as one.
        """
        return ""

    assert weather.description == "Today's weather for a city."
    props = weather.parameters["properties"]
    assert props["city"]["description"] == "The city, e.g. 'Berlin' or 'Paris'."
    assert props["days"]["description"] == "How many days ahead."
    assert "description" not in props["unit"]


def test_sphinx_docstring():
    @tool
    def weather(city: str, days: int = 1) -> str:
        """Today's weather for a city.

        :param city: The city,
            e.g. 'Berlin'.
        :param int days: How many days ahead.
        :returns: a forecast.
        """
        return ""

    props = weather.parameters["properties"]
    assert props["city"]["description"] == "The city, e.g. 'Berlin'."
    assert props["days"]["description"] == "How many days ahead."


def test_parse_docstring_first_paragraph_stops_at_a_section():
    assert parse_docstring("Do it.\nArgs:\n    x: the x.") == ("Do it.", {"x": "the x."})
    assert parse_docstring("Do it.\n:param x: the x.") == ("Do it.", {"x": "the x."})
    assert parse_docstring("  One line.  ") == ("One line.", {})
    assert parse_docstring(None) == ("", {})


def test_one_line_string_docstring():
    @tool
    def weather(city: str) -> str:
        "Today's weather for a city."
        return city

    assert weather.description == "Today's weather for a city."


# -- decoration errors ------------------------------------------------------------------------


def undocumented(x: int) -> None:
    pass


def unhinted(x) -> None:
    """d"""


def star_args(*items: str) -> None:
    """d"""


def star_kwargs(**options: str) -> None:
    """d"""


def a_dict(x: dict[str, int]) -> None:
    """d"""


def a_datetime(x: dt.datetime) -> None:
    """d"""


def a_bare_list(x: list) -> None:
    """d"""


def a_union(x: int | str) -> None:
    """d"""


def an_unknown_name(x: NoSuchType) -> None:  # noqa: F821 - the mistake under test
    """d"""


def positional(x: int, /) -> None:
    """d"""


def bad_default(x: int = "ten") -> None:  # type: ignore[assignment]
    """d"""


@pytest.mark.parametrize(("function", "words"), [
    (undocumented, ["undocumented", "no docstring", "description="]),
    (unhinted, ["unhinted", "'x'", "no type hint"]),
    (star_args, ["star_args", "'items'", "*args"]),
    (star_kwargs, ["star_kwargs", "'options'", "**kwargs"]),
    (a_dict, ["a_dict", "'x'", "unsupported type dict[str, int]"]),
    (a_datetime, ["a_datetime", "'x'", "datetime.datetime"]),
    (a_bare_list, ["a_bare_list", "'x'", "list[str]"]),
    (a_union, ["a_union", "'x'", "X | None"]),
    (an_unknown_name, ["an_unknown_name", "NoSuchType"]),
    (positional, ["positional", "'x'", "positional-only"]),
    (bad_default, ["bad_default", "'x'", "default", "expected an integer, got a string 'ten'"]),
])
def test_decoration_errors_name_the_function_and_parameter(function, words):
    with pytest.raises(TypeError) as info:
        tool(function)
    for word in words:
        assert word in str(info.value)


def test_settings_decoration_errors():
    def takes_settings(settings: Greeting) -> None:
        """d"""

    def no_settings_parameter() -> None:
        """d"""

    with pytest.raises(TypeError, match="'settings' is reserved"):
        tool(takes_settings)
    with pytest.raises(TypeError, match="no 'settings' parameter"):
        tool(settings=Greeting)(no_settings_parameter)
    with pytest.raises(TypeError, match="must be a dataclass"):
        tool(settings=dict)(takes_settings)


def test_bad_names_and_timeouts_are_value_errors():
    def f() -> None:
        """d"""

    with pytest.raises(ValueError, match="tool name 'has space'"):
        tool(name="has space")(f)
    with pytest.raises(ValueError, match="timeout"):
        tool(timeout=0)(f)
    with pytest.raises(TypeError, match="expects a function"):
        tool(len)


def test_description_option_makes_a_docstring_optional():
    assert tool(description="Do it.")(undocumented).description == "Do it."


# -- validation -------------------------------------------------------------------------------


@tool
def everything(minutes: int, unit: Literal["s", "m"] = "m", color: Color | None = None,
               tags: list[str] = (), ratio: float = 1.0, loud: bool = False) -> dict:
    """Take every kind of argument."""
    return {"minutes": minutes, "unit": unit, "color": color, "tags": tags, "ratio": ratio,
            "loud": loud}


def test_valid_arguments_have_no_problems():
    assert everything.validate({"minutes": 3}) == []
    assert everything.validate({"minutes": 3.0, "unit": "s", "color": None, "tags": ["a"],
                                "ratio": 2, "loud": True}) == []
    assert everything.validate({"minutes": 1, "color": "red"}) == []


def test_validation_lists_every_problem():
    problems = everything.validate({"minutes": "ten", "unit": "h", "color": "blue",
                                    "tags": ["a", 3], "ratio": True, "loud": 1, "minute": 2})
    assert problems == [
        "minutes: expected an integer, got a string 'ten'",
        "unit: expected one of 's', 'm', got 'h'",
        "color: expected one of 'red', 'green', null, got 'blue'",
        "tags[1]: expected a string, got an integer 3",
        "ratio: expected a number, got a boolean true",
        "loud: expected a boolean, got an integer 1",
        "unknown argument 'minute' (did you mean 'minutes'?)",
    ]
    assert everything.validate({}) == ["missing required argument 'minutes'"]
    assert everything.validate({"minutes": 2.5}) == [
        "minutes: expected an integer, got a number 2.5"]
    assert everything.validate({"minutes": 1, "color": 3}) == [
        "color: expected a string or null, got an integer 3"]
    assert everything.validate([1]) == ["arguments must be a JSON object, got an array"]


def test_validation_of_hand_written_schemas():
    schema = {"type": "object", "required": ["where"], "properties": {
        "where": {"type": "object", "properties": {"x": {"type": "integer"}},
                  "required": ["y"], "additionalProperties": False},
        "anything": {"minimum": 3}}}
    t = Tool("t", "d", schema, lambda **kw: kw)
    assert t.validate({"where": {"x": True, "z": 1}, "other": 1, "anything": -1}) == [
        "where.x: expected an integer, got a boolean true",
        "where: unknown key 'z'",
        "where: missing required key 'y'",
    ]
    assert Tool("t", "d", {"type": "object"}, print).validate({"a": 1}) == []


# -- invoke -----------------------------------------------------------------------------------


def test_invoke_converts_json_to_the_declared_types():
    got = everything.invoke({"minutes": 3.0, "color": "green", "ratio": 2})
    assert got == {"minutes": 3, "unit": "m", "color": Color.GREEN, "tags": (), "ratio": 2.0,
                   "loud": False}
    assert type(got["minutes"]) is int and type(got["ratio"]) is float
    assert everything.invoke({"minutes": 1, "color": None})["color"] is None


def test_invoke_with_enum_literal_and_list_arguments():
    @tool
    def pick(levels: list[Level], mode: Literal[1, 2], maybe: Level | None) -> list:
        """d"""
        return [levels, mode, maybe]

    levels, mode, maybe = pick.invoke({"levels": [1, 2.0], "mode": 2.0, "maybe": 2})
    assert levels == [Level.LOW, Level.HIGH] and all(type(x) is Level for x in levels)
    assert mode == 2 and type(mode) is int
    assert maybe is Level.HIGH


def test_async_tools_run_to_completion():
    @tool
    async def later(x: int) -> dict:
        """d"""
        import asyncio

        await asyncio.sleep(0)
        return {"x": x * 2}

    assert later.invoke({"x": 2}) == {"x": 4}
    assert json.loads(later.run(None, '{"x": 5}')) == {"x": 10}


def test_settings_are_injected():
    @tool(settings=Greeting)
    def greet(name: str, settings: Greeting) -> str:
        """Greet someone."""
        return f"{settings.greeting}, {name}"

    assert greet.settings is Greeting and greet.takes_settings
    assert "settings" not in greet.parameters["properties"]
    assert greet.parameters["required"] == ["name"]
    assert greet.invoke({"name": "Ada"}, Greeting("hi")) == "hi, Ada"
    assert greet.invoke({"name": "Ada"}) == "hello, Ada"  # no settings: the defaults
    assert greet.run(Greeting("moin"), '{"name": "Ada"}') == "moin, Ada"
    assert "unknown argument 'settings'" in greet.run(None, '{"name": "A", "settings": 1}')


def test_hand_built_tools_get_keyword_arguments():
    t = Tool("t", "d", {"type": "object"}, lambda **kw: kw)
    assert t.invoke({"a": 1}, settings="ignored") == {"a": 1}
    s = Tool("s", "d", {"type": "object"}, lambda settings, **kw: [settings, kw],
             settings=Greeting, takes_settings=True)
    assert s.invoke({"a": 1}, Greeting("x")) == [Greeting("x"), {"a": 1}]


# -- run: every failure becomes an output -----------------------------------------------------


def test_run_returns_strings_as_is_and_everything_else_as_json():
    echo = Tool("echo", "d", {"type": "object"}, lambda **a: f"got {a['v']}")
    assert echo.run(None, '{"v": 3}') == "got 3"
    assert everything.run(None, '{"minutes": 1, "tags": ["Grüße"]}') == (
        '{"minutes": 1, "unit": "m", "color": null, "tags": ["Grüße"], "ratio": 1.0, '
        '"loud": false}')
    rich = Tool("rich", "d", {"type": "object"},
                lambda: {"c": Color.RED, "g": Greeting(), "d": dt.date(2026, 11, 21)})
    assert json.loads(rich.run(None, "")) == {"c": "red", "g": {"greeting": "hello"},
                                              "d": "2026-11-21"}


def test_run_with_empty_arguments():
    ping = Tool("ping", "d", {"type": "object"}, lambda: "pong")
    assert ping.run(None, "") == "pong"
    assert ping.run(None, "  ") == "pong"


def test_run_invalid_json():
    out = json.loads(everything.run(None, "{oops"))
    assert out["error"].startswith("arguments are not valid JSON: ")


def test_run_invalid_arguments_lists_them():
    assert json.loads(everything.run(None, "[1]")) == {
        "error": "invalid arguments: arguments must be a JSON object, got an array"}
    assert json.loads(everything.run(None, '{"minutes": "ten", "x": 1}')) == {
        "error": "invalid arguments: minutes: expected an integer, got a string 'ten'; "
                 "unknown argument 'x'"}


def test_run_tool_exception(caplog):
    def boom() -> None:
        raise RuntimeError("disk on fire")

    t = Tool("t", "d", {"type": "object"}, boom)
    with caplog.at_level(logging.WARNING, logger="rtd.tools"):
        assert json.loads(t.run(None, "{}")) == {"error": "RuntimeError: disk on fire"}
    [record] = caplog.records
    assert record.getMessage() == "tool t failed: RuntimeError: disk on fire"
    assert record.exc_info is None


def test_run_result_that_is_not_json(caplog):
    odd = Tool("odd", "d", {"type": "object"}, lambda: {"x": object()})
    with caplog.at_level(logging.WARNING, logger="rtd.tools"):
        out = json.loads(odd.run(None, "{}"))
    assert out["error"].startswith("tool returned a value that is not JSON: ")
    [record] = caplog.records
    assert "odd" in record.getMessage() and "\n" not in record.getMessage()
    assert record.exc_info is None


def test_run_async_exception():
    @tool
    async def fails() -> None:
        """d"""
        raise ValueError("no network")

    assert json.loads(fails.run(None, "{}")) == {"error": "ValueError: no network"}


# -- the clock --------------------------------------------------------------------------------


def test_clock_is_a_decorated_tool():
    assert clock is CLOCK and CLOCK.name == "clock"
    assert CLOCK.settings is ClockSettings and CLOCK.takes_settings
    assert CLOCK.description.startswith("Get the current local date and time. Use it whenever")
    assert CLOCK.parameters == {"type": "object", "properties": {},
                                "additionalProperties": False}


def test_clock_reports_time_in_the_configured_zone():
    out = json.loads(CLOCK.run(ClockSettings(timezone="Asia/Tokyo"), "{}"))
    now = dt.datetime.fromisoformat(out["iso"])
    assert now.utcoffset() == dt.timedelta(hours=9)
    assert out["timezone"] == "JST"
    assert out["time"] == now.strftime("%H:%M")
    assert out["date"] == f"{now:%A} {now.day} {now:%B %Y}"
    assert abs((now - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120


def test_clock_without_a_zone_uses_the_systems():
    out = json.loads(CLOCK.run(ClockSettings(), ""))
    assert dt.datetime.fromisoformat(out["iso"]).utcoffset() is not None


def test_clock_with_unknown_zone_says_so():
    out = json.loads(CLOCK.run(ClockSettings(timezone="Mars/Olympus"), ""))
    assert out == {"error": "unknown time zone 'Mars/Olympus' in tools.clock.timezone"}
