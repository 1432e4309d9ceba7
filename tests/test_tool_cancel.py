"""Stopping with tools in flight: running calls are cancelled, their processes killed whole."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pykka
import pytest
from rtdproc import wait_until

from rtd.actors.tools import ToolsActor
from rtd.messages import ToolCall, ToolCallEvent
from rtd.supervisor import Bus, Ping
from rtd.tools import CallContext, run_process, tool


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): count it as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _family(pidfile: Path) -> list[int]:
    """The shell's pid and its background child's, written by the command itself."""
    assert wait_until(lambda: pidfile.exists() and len(pidfile.read_text().split()) == 2)
    return [int(p) for p in pidfile.read_text().split()]


SCRIPT = 'sleep 30 & echo $$ $! > "$1"; wait'


def test_run_process_kills_the_whole_group_on_a_timeout(tmp_path):
    pidfile = tmp_path / "pids"
    with pytest.raises(subprocess.TimeoutExpired):
        run_process(["sh", "-c", SCRIPT, "sh", str(pidfile)], timeout=1)
    shell, child = _family(pidfile)
    assert wait_until(lambda: not _alive(shell) and not _alive(child), timeout=5)


def test_run_process_returns_what_the_command_printed():
    done = run_process([sys.executable, "-c", "print('hi')"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "hi\n")


def test_cancelling_a_call_kills_its_process_group(tmp_path):
    pidfile = tmp_path / "pids"
    context = CallContext("c1")
    raised: list[BaseException] = []

    @tool
    def run_script() -> str:
        """Runs a script that starts a child of its own."""
        run_process(["sh", "-c", SCRIPT, "sh", str(pidfile)])
        return "finished"

    def work() -> None:
        raised.append(json.loads(run_script.run(None, "{}", context))["error"])

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    shell, child = _family(pidfile)
    context.cancel()
    worker.join(timeout=5)
    assert raised == ["the call was cancelled: rtd is stopping"]
    assert wait_until(lambda: not _alive(shell) and not _alive(child), timeout=5)


def test_cancelling_a_call_cancels_a_coroutine_tool():
    context = CallContext("c2")
    state: list[str] = []

    @tool
    async def wait_long() -> str:
        """Waits for a long time."""
        state.append("started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state.append("cancelled")
            raise
        return "done"

    outputs: list[str] = []
    worker = threading.Thread(target=lambda: outputs.append(wait_long.run(None, "{}", context)),
                              daemon=True)
    worker.start()
    assert wait_until(lambda: state == ["started"])
    context.cancel()
    worker.join(timeout=5)
    assert state == ["started", "cancelled"]
    assert json.loads(outputs[0]) == {"error": "the call was cancelled: rtd is stopping"}


def test_stopping_the_tools_actor_cancels_running_calls(tmp_path):
    pidfile = tmp_path / "pids"
    seen: list[object] = []
    bus = Bus()
    bus.observe(seen.append)

    @tool
    def script() -> str:
        """Runs a script."""
        return run_process(["sh", "-c", SCRIPT, "sh", str(pidfile)]).returncode

    ref = ToolsActor.start(bus, lambda n, e: None, {"script": (script, None, 60.0)})
    ref.ask(Ping(), timeout=5)
    ref.tell(ToolCall("c3", "script", "{}"))
    shell, child = _family(pidfile)
    ref.stop(timeout=5)
    assert wait_until(lambda: not _alive(shell) and not _alive(child), timeout=5)
    # the tool's thread is a daemon thread: nothing at interpreter exit waits for it
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("rtd-tool"))
    assert [m for m in seen if isinstance(m, ToolCallEvent)] == []  # the actor is gone


def test_cancel_runs_callbacks_once_and_late_ones_at_once():
    context = CallContext("c4")
    calls: list[str] = []
    context.on_cancel(lambda: calls.append("early"))
    context.cancel()
    context.cancel()
    context.on_cancel(lambda: calls.append("late"))
    assert calls == ["early", "late"]
    assert context.cancelled.is_set()
