"""A receiver actor: one per configured receiver, so a slow or broken one stalls nothing else."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from rtd.components import EVENT_TYPES, Receiver
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)

QUIET_AFTER = 3
"""Failures logged in full before the receiver's errors are only counted (every 100th logged)."""


class ReceiverActor(RtdActor):
    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 receiver: Receiver) -> None:
        super().__init__(bus, on_crash)
        self.receiver = receiver
        self.name = f"receivers.{receiver.name}"
        self.failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def receives(receiver: type[Receiver]) -> tuple[type, ...]:
        return tuple(EVENT_TYPES[kind] for kind in receiver.events)

    def setup(self) -> None:
        self.receiver.start()

    def handle(self, message: Any) -> Any:
        try:
            result = self.receiver.receive(message)
            if inspect.isawaitable(result):
                if self._loop is None:
                    self._loop = asyncio.new_event_loop()
                self._loop.run_until_complete(result)
        except Exception as exc:  # a plugin's bug costs its own event, nothing more
            self.failures += 1
            if self.failures <= QUIET_AFTER or self.failures % 100 == 0:
                logger.warning("%s failed on a %s event (%d so far): %s: %s", self.name,
                               message.kind, self.failures, type(exc).__name__, exc)

    def release(self) -> None:
        try:
            self.receiver.stop()
        except Exception as exc:
            logger.warning("%s: stop() failed: %s: %s", self.name, type(exc).__name__, exc)
        if self._loop is not None:
            self._loop.close()
            self._loop = None
