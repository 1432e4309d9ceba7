"""The `word_count` receiver: output that does not go to the speaker.

A receiver is a class naming the event kinds it wants in ``events`` (keys of
`rtd.components.EVENT_TYPES`). rtd runs each configured receiver in an actor of its own and
calls receive(event) once per event, in order: a slow receiver delays only itself, and an
exception in receive() costs that one event (rtd logs it), not the conversation.

Lifecycle: start() before the first event, stop() at shutdown. After a crash in start() rtd
makes a *fresh instance* and tries again after a growing delay, so anything that must outlive
a restart belongs in a file, not in an attribute. This receiver keeps running totals of the
words said by each side and, with ``path`` set, writes them to a JSON file after every turn
(reading it back in start(), so the totals survive restarts of rtd too).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtd import setting
from rtd.components import AudioTranscript, InputTranscript, Receiver, TextEvent

# A module logger: rtd configures logging, so these lines reach the journal (or the
# terminal) with the others, named "rtd_example.word_count".
logger = logging.getLogger(__name__)

ROLES = ("user", "assistant")


@dataclass(frozen=True)
class WordCountSettings:
    """Settings of the word_count receiver: the ``[receivers.word_count]`` table."""

    path: str = setting("", "JSON file keeping the running totals; empty: totals are only "
                        "logged and start from zero each time")
    log_each_turn: bool = setting(True, "log one line per turn with its word count")


class WordCountReceiver(Receiver):
    """Counts the words each side says, per turn and in total."""

    name = "word_count"
    # Whole turns only: the *_chunk kinds would arrive dozens of times per answer (and may be
    # dropped when a receiver falls behind, since they are "lossy").
    events = ("input_transcript", "audio_transcript", "text")
    Settings = WordCountSettings

    def __init__(self, settings: WordCountSettings | None = None) -> None:
        super().__init__(settings or WordCountSettings())
        self.words = dict.fromkeys(ROLES, 0)
        self.turns = dict.fromkeys(ROLES, 0)

    # The self-check: `rtd check` (and `rtd run`, before it starts anything) calls it with the
    # validated settings. Return "key: what is wrong" strings for what the table's types cannot
    # show; rtd prints each as `receivers.word_count.key: ...` and runs without the receiver,
    # instead of the first turn failing to save. Only look: create and open nothing here.
    @classmethod
    def check(cls, settings: WordCountSettings) -> list[str]:
        if not settings.path:
            return []
        path = Path(settings.path).expanduser()
        if path.is_dir():
            return [f"path: {path} is a directory, expected a file"]
        folder = next((p for p in path.parents if p.exists()), Path("/"))
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            return [f"path: cannot create {path}: {folder} is not a writable directory"]
        return []

    def start(self) -> None:
        # Resume from the file written before a restart. A file that cannot be read is
        # reported and left alone until the next turn overwrites it: counting goes on.
        path = self._path
        if path is None or not path.exists():
            return
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            for role in ROLES:
                self.words[role] = int(saved[role]["words"])
                self.turns[role] = int(saved[role]["turns"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("receivers.word_count.path: cannot read totals from %s (%s); "
                           "counting from zero", path, exc)
            self.words = dict.fromkeys(ROLES, 0)
            self.turns = dict.fromkeys(ROLES, 0)

    def receive(self, event: Any) -> None:
        # Only the kinds named in `events` arrive, but checking the type keeps the code honest
        # (and lets a test pass any event).
        if isinstance(event, InputTranscript):
            role = "user"
        elif isinstance(event, (AudioTranscript, TextEvent)):
            role = "assistant"
        else:
            return
        words = len(event.text.split())
        self.words[role] += words
        self.turns[role] += 1
        if self.settings.log_each_turn:
            logger.info("word_count: %s said %d word%s (%d in %d turn%s)", role, words,
                        "" if words == 1 else "s", self.words[role], self.turns[role],
                        "" if self.turns[role] == 1 else "s")
        if self._path is not None:
            self._save(self._path)

    def stop(self) -> None:
        # Nothing to flush (every turn was saved); a summary line helps whoever reads the log.
        logger.info("word_count: user %d words, assistant %d words", self.words["user"],
                    self.words["assistant"])

    def totals(self) -> dict[str, dict[str, int]]:
        """The running totals, as saved: {"user": {"words", "turns"}, "assistant": {...}}."""
        return {role: {"words": self.words[role], "turns": self.turns[role]} for role in ROLES}

    @property
    def _path(self) -> Path | None:
        return Path(self.settings.path).expanduser() if self.settings.path else None

    def _save(self, path: Path) -> None:
        # Write a temporary file and rename it over the old one: a power cut leaves either
        # the old totals or the new ones, never half a file. An OSError raised here is
        # logged by rtd as this event's failure; the next turn tries again.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.totals()) + "\n", encoding="utf-8")
        os.replace(tmp, path)


__all__ = ["WordCountReceiver", "WordCountSettings"]
