"""Server events checked before use: a malformed one costs that event, never the conversation.

Everything a server sends is bad input until checked. Each event type rtd reads has a small
spec of the fields it reads (their JSON type, whether they must be there, whether null is
allowed); an event that does not fit is ignored, with one warning per event type and field,
then counted silently, so a server that repeats the same mistake cannot flood the journal.
Lists whose elements rtd reads one by one (a response's output items, an item's content
parts) are checked element by element: a bad element costs that element, not the event.

Only the fields rtd reads are checked: a server may add fields, and fields rtd does not read
may be anything. Base64 audio is checked where it is decoded (`Checker.audio`), so the hot path
decodes once.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rtd.protocol.events import BETA_SERVER_EVENT_NAMES, SERVER_EVENT_TYPES

logger = logging.getLogger(__name__)

Kind = Literal["text", "id", "int", "number", "bool", "object", "list", "base64", "any"]

UNKNOWN_TYPES_REMEMBERED = 64
"""Unknown event type names remembered (each logged once); beyond, they are counted together."""
NO_TYPE = "(no type)"
"""The event type under which JSON without a string ``type`` is counted."""
NOT_AN_OBJECT = "(not an object)"
"""The event type under which JSON that is not an object is counted."""
OTHER_UNKNOWN = "(other unknown types)"
"""Where unknown types past `UNKNOWN_TYPES_REMEMBERED` are counted."""

_EXPECTED: dict[str, str] = {
    "text": "text", "id": "non-empty text", "int": "a whole number", "number": "a number",
    "bool": "true or false", "object": "an object", "list": "a list", "base64": "base64 text",
    "any": "a value",
}


@dataclass(frozen=True)
class Field:
    """One field rtd reads, by its dotted path from the event (or from a list element)."""

    path: str
    kind: Kind
    required: bool = False
    """Must be present whenever the object holding it is."""
    nullable: bool = False
    """null is accepted (and read as absent)."""

    @property
    def parents(self) -> tuple[str, ...]:
        return tuple(self.path.split(".")[:-1])

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def _fits(kind: str, value: Any) -> bool:
    if kind == "text" or kind == "base64":
        return isinstance(value, str)
    if kind == "id":
        return isinstance(value, str) and value != ""
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "list":
        return isinstance(value, list)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    return True


def describe(value: Any) -> str:
    """A JSON value's type in words, for a log line (never the value: it may be huge)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "empty text" if value == "" else "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _f(path: str, kind: Kind, required: bool = False, nullable: bool = False) -> Field:
    return Field(path, kind, required, nullable)


_ITEM: tuple[Field, ...] = (
    _f("item", "object", True), _f("item.id", "id", True), _f("item.type", "text"),
    _f("item.role", "text", nullable=True), _f("item.status", "text", nullable=True),
    _f("item.content", "list", nullable=True), _f("item.call_id", "text", nullable=True),
    _f("item.name", "text", nullable=True), _f("item.arguments", "text", nullable=True),
    _f("item.output", "text", nullable=True),
)
_ITEM_EVENT = (*_ITEM, _f("previous_item_id", "text", nullable=True))
_DELTA = (_f("item_id", "text", True), _f("delta", "text", True))

SPECS: dict[str, tuple[Field, ...]] = {
    "session.updated": (
        _f("session", "object", True), _f("session.model", "text", nullable=True),
        _f("session.voice", "text", nullable=True), _f("session.audio", "object", nullable=True),
        _f("session.audio.output", "object", nullable=True),
        _f("session.audio.output.voice", "text", nullable=True),
    ),
    "error": (
        _f("error", "object", True), _f("error.type", "text", nullable=True),
        _f("error.code", "text", nullable=True), _f("error.message", "text", nullable=True),
        _f("error.param", "text", nullable=True), _f("error.event_id", "text", nullable=True),
    ),
    "response.created": (_f("response", "object", True), _f("response.id", "text")),
    "response.done": (
        _f("response", "object", True), _f("response.id", "text"),
        _f("response.status", "text", nullable=True),
        _f("response.output", "list", nullable=True),
        _f("response.status_details", "object", nullable=True),
        _f("response.status_details.error", "object", nullable=True),
        _f("response.status_details.error.message", "text", nullable=True),
    ),
    "response.output_audio.delta": (
        _f("item_id", "text", True), _f("delta", "base64", True), _f("response_id", "text"),
    ),
    "response.output_audio.done": (_f("item_id", "text", True),),
    "response.output_audio_transcript.delta": _DELTA,
    "response.output_audio_transcript.done": (
        _f("item_id", "text", True), _f("transcript", "text", True),
    ),
    "response.output_text.delta": _DELTA,
    "response.output_text.done": (_f("item_id", "text", True), _f("text", "text", True)),
    "conversation.item.input_audio_transcription.delta": _DELTA,
    "conversation.item.input_audio_transcription.completed": (
        _f("item_id", "text", True), _f("transcript", "text", True),
    ),
    "conversation.item.input_audio_transcription.failed": (
        _f("item_id", "text"), _f("error", "object", nullable=True),
        _f("error.code", "text", nullable=True), _f("error.message", "text", nullable=True),
    ),
    "input_audio_buffer.speech_started": (
        _f("item_id", "text", nullable=True), _f("audio_start_ms", "number", nullable=True),
    ),
    "input_audio_buffer.speech_stopped": (
        _f("item_id", "text", nullable=True), _f("audio_end_ms", "number", nullable=True),
    ),
    "input_audio_buffer.committed": (_f("item_id", "text", nullable=True),),
    "response.function_call_arguments.done": (
        _f("call_id", "id", True), _f("name", "text", nullable=True),
        _f("arguments", "text", nullable=True), _f("response_id", "text", nullable=True),
        _f("item_id", "text", nullable=True),
    ),
    "conversation.item.added": _ITEM_EVENT,
    "conversation.item.created": _ITEM_EVENT,
    "conversation.item.done": _ITEM_EVENT,
    "conversation.item.retrieved": _ITEM,
    "response.output_item.added": _ITEM,
    "response.output_item.done": _ITEM,
    "conversation.item.deleted": (_f("item_id", "text", True),),
    "conversation.item.truncated": (
        _f("item_id", "text", True), _f("audio_end_ms", "number", nullable=True),
    ),
}
"""Event type (GA name) -> the fields rtd reads of it; types not here are used for nothing
but their name."""

OUTPUT_ITEM: tuple[Field, ...] = (
    _f("type", "text", True), _f("id", "text", nullable=True),
    _f("role", "text", nullable=True), _f("status", "text", nullable=True),
    _f("content", "list", nullable=True), _f("call_id", "text", nullable=True),
    _f("name", "text", nullable=True), _f("arguments", "text", nullable=True),
    _f("output", "text", nullable=True),
)
"""An element of ``response.output``."""
CONTENT_PART: tuple[Field, ...] = (
    _f("type", "text", nullable=True), _f("text", "text", nullable=True),
    _f("transcript", "text", nullable=True),
)
"""An element of an item's ``content``."""

KNOWN_TYPES = SERVER_EVENT_TYPES | frozenset(BETA_SERVER_EVENT_NAMES)
"""Every server event type rtd recognises: the GA ones and the beta spellings."""

_MISSING = object()
_STRICT_B64 = sys.version_info >= (3, 11)


class Checker:
    """Checks server events against `SPECS`; remembers what it warned about, and counts.

    Nothing here raises on bad input: every method answers "usable or not" and logs.
    """

    def __init__(self, *, unknown_types_remembered: int = UNKNOWN_TYPES_REMEMBERED) -> None:
        self.problems: dict[tuple[str, str], int] = {}
        """(event type, field) -> events (or elements) ignored for it."""
        self._unknown_limit = unknown_types_remembered
        self._unknown: set[str] = set()
        self._specs = {kind: tuple((f, f.parents, f.name) for f in fields)
                       for kind, fields in SPECS.items()}

    def check(self, data: Any) -> tuple[str, bool]:
        """(the event's GA type name, whether it is usable).

        Beta spellings come back as their GA names. An unknown type is not usable (and logged
        once); nor is an event with a field that does not fit its spec (logged once per field).
        The name is "" when there is no string type.
        """
        if not isinstance(data, Mapping):
            self.report(NOT_AN_OBJECT, "type", f"server sent JSON that is not an object "
                        f"({describe(data)}); ignored (logged once, counted)")
            return "", False
        kind = data.get("type")
        if not isinstance(kind, str):
            what = ("without a type" if kind is None else
                    f"with type {describe(kind)}, expected text naming the event")
            self.report(NO_TYPE, "type", f"server sent JSON {what}; ignored (logged once, "
                        "counted)")
            return "", False
        kind = BETA_SERVER_EVENT_NAMES.get(kind, kind)
        spec = self._specs.get(kind)
        if spec is None:
            if kind in KNOWN_TYPES:
                return kind, True
            self._unknown_type(kind)
            return kind, False
        for field, parents, name in spec:
            node: Any = data
            for part in parents:  # each parent is checked as an object before its children
                node = node.get(part)
                if node is None:
                    break
            else:
                value = node.get(name, _MISSING)
                if value is _MISSING:
                    if field.required:
                        self._bad(kind, field.path, None, field, missing=True)
                        return kind, False
                elif value is None:
                    if not field.nullable:
                        self._bad(kind, field.path, value, field)
                        return kind, False
                elif not _fits(field.kind, value):
                    self._bad(kind, field.path, value, field)
                    return kind, False
        return kind, True

    def elements(self, event_type: str, path: str, value: Any,
                 spec: Sequence[Field]) -> list[Mapping[str, Any]]:
        """The elements of a list field that fit `spec` (top-level fields of each element).

        `value` was checked as a list (or absent/null) by the event's spec; an element that
        does not fit is left out, with one warning per (event type, field).
        """
        if not isinstance(value, list):
            return []
        good: list[Mapping[str, Any]] = []
        for element in value:
            if not isinstance(element, Mapping):
                self.report(event_type, f"{path}[]", f"server sent {event_type} with an element "
                            f"of {path} {describe(element)}, expected an object; that element "
                            "ignored (logged once, counted)")
                continue
            for field in spec:
                item = element.get(field.path, _MISSING)
                if item is _MISSING:
                    ok = not field.required
                elif item is None:
                    ok = field.nullable
                else:
                    ok = _fits(field.kind, item)
                if not ok:
                    got = (f"without {field.path}" if item is _MISSING else
                           f"whose {field.path} is {describe(item)}, expected "
                           f"{_EXPECTED[field.kind]}")
                    self.report(event_type, f"{path}[].{field.path}",
                                f"server sent {event_type} with an element of {path} {got}; "
                                "that element ignored (logged once, counted)")
                    break
            else:
                good.append(element)
        return good

    def audio(self, event_type: str, field: str, text: str) -> bytes | None:
        """The 16-bit PCM in a base64 field, or None (logged once, counted) when it is not."""
        try:
            if _STRICT_B64:
                pcm = binascii.a2b_base64(text, strict_mode=True)
            else:  # pragma: no cover - Python 3.10
                pcm = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):  # non-ASCII text is a ValueError
            self.report(event_type, field, f"server sent {event_type} with {field} text that is "
                        "not base64; ignored (logged once, counted)")
            return None
        if len(pcm) % 2:
            self.report(event_type, field, f"server sent {event_type} with {field} of an odd "
                        "number of bytes, expected 16-bit PCM; ignored (logged once, counted)")
            return None
        return pcm

    def report(self, event_type: str, field: str, line: str) -> None:
        """Count one problem; the first of its (event type, field) is logged as `line`."""
        key = (event_type, field)
        count = self.problems.get(key, 0)
        self.problems[key] = count + 1
        if not count:
            logger.warning("%s", line)

    def _bad(self, kind: str, path: str, value: Any, field: Field, missing: bool = False) -> None:
        if missing:
            line = f"server sent {kind} without {path}"
        else:
            line = f"server sent {kind} with {path} {describe(value)}"
            line += f", expected {_EXPECTED[field.kind]}"
        self.report(kind, path, line + "; ignored (logged once, counted)")

    def _unknown_type(self, kind: str) -> None:
        name = kind[:80]  # a hostile name may be megabytes long
        if name in self._unknown:
            self.problems[(name, "type")] += 1
        elif len(self._unknown) < self._unknown_limit:
            self._unknown.add(name)
            self.problems[(name, "type")] = 1
            logger.info("ignoring unknown server event type %r (logged once)", name)
        else:
            count = self.problems.get((OTHER_UNKNOWN, "type"), 0)
            self.problems[(OTHER_UNKNOWN, "type")] = count + 1
            if not count:
                logger.info("more than %d unknown server event types; ignoring the rest "
                            "without logging them", self._unknown_limit)
