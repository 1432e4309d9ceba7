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

from rtd.components import Sender, SenderContext
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _SenderFailed:
    error: BaseException


class SenderFailed(RuntimeError):
    """A sender's run() raised; the supervisor restarts the sender with backoff."""


class SenderActor(RtdActor):
    receives: tuple[type, ...] = ()

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 sender: Sender) -> None:
        super().__init__(bus, on_crash)
        self.sender = sender
        self.name = f"senders.{sender.name}"
        self.ctx = SenderContext(sender.name, bus.publish)
        self._thread: threading.Thread | None = None
        self._cancel: Callable[[], None] | None = None

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
        if isinstance(message, _SenderFailed):
            err = message.error
            raise SenderFailed(f"{type(err).__name__}: {err}") from err

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
