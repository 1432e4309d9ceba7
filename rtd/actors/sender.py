"""A sender actor: runs one configured sender on its own thread and owns its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtd.audio.resample import StreamResampler
from rtd.components import Sender, SenderContext
from rtd.messages import InputAudio
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)

WIRE_RATE = 24000
"""Hz of the microphone's `InputAudio` blocks."""
QUIET_AFTER = 3
"""hear() failures logged in full before they are only counted (every 100th logged)."""


@dataclass(frozen=True)
class _SenderFailed:
    error: BaseException


class SenderFailed(RuntimeError):
    """A sender's run() raised; the supervisor restarts the sender with backoff."""


class SenderActor(RtdActor):
    """Runs ``sender.run`` on a thread; a sender with an ``audio_rate`` hears the microphone.

    The microphone's blocks reach this actor's inbox through a lossy subscription (see
    `receives`, and the daemon's ``lossy=True``): the audio input's thread never waits on a
    sender, and one that falls behind loses blocks instead of the daemon's memory.
    """

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 sender: Sender) -> None:
        super().__init__(bus, on_crash)
        self.sender = sender
        self.name = f"senders.{sender.name}"
        self.ctx = SenderContext(sender.name, bus.publish)
        self._thread: threading.Thread | None = None
        self._cancel: Callable[[], None] | None = None
        rate = sender.audio_rate
        self._resampler = StreamResampler(WIRE_RATE, int(rate)) if rate else None
        self.hear_failures = 0

    @staticmethod
    def receives(sender: type[Sender]) -> tuple[type, ...]:
        """The bus types a sender class's actor subscribes to: the microphone, if it hears."""
        return (InputAudio,) if sender.audio_rate else ()

    def setup(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"rtd-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            result = self.sender.run(self.ctx)
            if inspect.isawaitable(result):
                self._run_async(result)
        except Exception as exc:
            if not self.ctx.stopping.is_set():
                self.actor_ref.tell(_SenderFailed(exc))
            return
        if not self.ctx.stopping.is_set():
            logger.info("%s finished", self.name)

    def _run_async(self, coro: Any) -> None:
        """An async sender gets its own loop; stopping cancels it from the actor's thread."""
        loop = asyncio.new_event_loop()
        task = loop.create_task(coro)

        def cancel() -> None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(task.cancel)

        self._cancel = cancel
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        finally:
            self._cancel = None
            loop.close()

    def handle(self, message: Any) -> Any:
        if isinstance(message, InputAudio):
            if self._resampler is not None and message.source == "microphone":
                self._hear(self._resampler.process(message.pcm))
        elif isinstance(message, _SenderFailed):
            err = message.error
            raise SenderFailed(f"{type(err).__name__}: {err}") from err

    def _hear(self, pcm: bytes) -> None:
        if not pcm or self.ctx.stopping.is_set():
            return
        try:
            self.sender.hear(pcm, self.ctx)
        except Exception as exc:  # a plugin's bug costs its own block, nothing more
            self.hear_failures += 1
            if self.hear_failures <= QUIET_AFTER or self.hear_failures % 100 == 0:
                logger.warning("%s: hear() failed (%d so far): %s: %s", self.name,
                               self.hear_failures, type(exc).__name__, exc)

    def release(self) -> None:
        self.ctx.stopping.set()
        if self._cancel is not None:
            self._cancel()
        try:
            self.sender.stop()
        except Exception as exc:
            logger.warning("%s: stop() failed: %s: %s", self.name, type(exc).__name__, exc)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
            if self._thread.is_alive():
                logger.warning("%s did not return from run() within 1 s of stopping; left "
                               "behind (it should watch ctx.stopping)", self.name)
