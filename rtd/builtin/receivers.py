"""Built-in receivers: the conversation on the console, and a JSON-lines transcript log."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rtd.builtin.paths import append_problem
from rtd.components import (
    AudioTranscript,
    ErrorEvent,
    InputTranscript,
    Receiver,
    TextEvent,
    ToolCallEvent,
)
from rtd.schema import setting


@dataclass(frozen=True)
class ConsoleSettings:
    """Settings of the console receiver."""

    show_tools: bool = setting(True, "also print tool calls and their results")
    show_errors: bool = setting(True, "also print errors")


class ConsoleReceiver(Receiver):
    """Prints the conversation as it happens: "you: ...", "assistant: ...", tool calls."""

    name = "console"
    events = ("input_transcript", "audio_transcript", "text", "tool_call", "error")
    Settings = ConsoleSettings

    def __init__(self, settings: ConsoleSettings | None = None, stream: IO[str] | None = None
                 ) -> None:
        super().__init__(settings or ConsoleSettings())
        self.stream = stream

    def receive(self, event: Any) -> None:
        line = self.format(event)
        if line:
            out = self.stream or sys.stdout
            out.write(line + "\n")
            out.flush()

    def format(self, event: Any) -> str | None:
        if isinstance(event, InputTranscript):
            return f"you: {event.text}"
        if isinstance(event, AudioTranscript) and event.interrupted:
            return f"assistant (interrupted): {event.text}"
        if isinstance(event, (AudioTranscript, TextEvent)):
            return f"assistant: {event.text}"
        if isinstance(event, ToolCallEvent) and self.settings.show_tools:
            return f"tool: {event.summary}"
        if isinstance(event, ErrorEvent) and self.settings.show_errors:
            return f"error ({event.source}): {event.code}: {event.message}"
        return None


@dataclass(frozen=True)
class TranscriptLogSettings:
    """Settings of the transcript_log receiver."""

    path: str = setting("/var/lib/rtd/transcript.jsonl",
                        "file to append one JSON line per finished turn to")


class TranscriptLogReceiver(Receiver):
    """Appends each finished turn as a JSON line: {"time", "role", "text"}, and
    ``"interrupted": true`` for an answer the user cut short (its text is what was heard).

    Every line is flushed and fsynced as it is written, so a shutdown, a crash or a power cut
    after the line was written loses nothing.
    """

    name = "transcript_log"
    events = ("input_transcript", "audio_transcript", "text", "tool_call")
    Settings = TranscriptLogSettings

    def __init__(self, settings: TranscriptLogSettings | None = None) -> None:
        super().__init__(settings or TranscriptLogSettings())
        self._file: IO[str] | None = None

    @classmethod
    def check(cls, settings: TranscriptLogSettings) -> list[str]:
        """The file must be appendable (or creatable) by the user rtd runs as."""
        problem = append_problem(Path(settings.path))
        return [f"path: {problem}"] if problem else []

    def start(self) -> None:
        path = Path(self.settings.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise OSError(f"receivers.transcript_log.path: cannot append to {path}: "
                          f"{exc.strerror or exc}") from None

    def receive(self, event: Any) -> None:
        if isinstance(event, InputTranscript):
            role, text = "user", event.text
        elif isinstance(event, (AudioTranscript, TextEvent)):
            role, text = "assistant", event.text
        elif isinstance(event, ToolCallEvent):
            role, text = "tool", event.summary
        else:
            return
        if self._file is None:
            self.start()
        assert self._file is not None
        now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        line: dict[str, Any] = {"time": now, "role": role, "text": text}
        if getattr(event, "interrupted", False):
            line["interrupted"] = True
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def stop(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
