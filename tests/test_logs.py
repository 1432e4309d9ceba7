"""Log lines as journald and a terminal get them."""

from __future__ import annotations

import io
import logging
import os

import pytest

from rtd import logs


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _journal_pipe(monkeypatch: pytest.MonkeyPatch):
    read, write = os.pipe()
    st = os.fstat(write)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return os.fdopen(read, "r"), os.fdopen(write, "w", buffering=1)


def test_journal_lines_get_a_priority_each_and_no_time(monkeypatch, restore_logging):
    reader, writer = _journal_pipe(monkeypatch)
    assert logs.to_journal(writer)
    logs.setup("debug", ["sk-secret-123456"], stream=writer)
    log = logging.getLogger("rtd.test")
    log.debug("d")
    log.info("i")
    log.warning("w with the key sk-secret-123456")
    try:
        raise ValueError("sk-secret-123456 in an exception")
    except ValueError:
        log.exception("e")
    log.critical("two\nlines")
    writer.close()
    text = reader.read()
    lines = text.splitlines()
    assert lines[:3] == ["<7>rtd.test: d", "<6>rtd.test: i", "<4>rtd.test: w with the key ********"]
    assert lines[3] == "<3>rtd.test: e"
    trace = [ln for ln in lines[4:] if not ln.startswith("<2>")]
    assert trace and all(ln.startswith("<3>") for ln in trace)  # the traceback stays an error
    assert lines[-2:] == ["<2>rtd.test: two", "<2>lines"]
    assert "sk-secret-123456" not in text


def test_a_stream_that_is_not_the_journal_keeps_timestamps(monkeypatch, restore_logging):
    _reader, writer = _journal_pipe(monkeypatch)
    other = io.StringIO()
    assert not logs.to_journal(other)  # no file descriptor at all
    _r2, other_pipe = os.pipe()
    with os.fdopen(other_pipe, "w") as not_journal:
        assert not logs.to_journal(not_journal)
    logs.setup("info", stream=other)
    logging.getLogger("rtd.test").info("hello")
    assert other.getvalue().endswith(" INFO rtd.test: hello\n")
    assert other.getvalue()[:2].isdigit()  # HH:MM:SS first
    writer.close()


def test_priorities_of_levels_between_the_named_ones():
    assert logs.priority(logging.WARNING + 5) == 4
    assert logs.priority(5) == 7
    assert logs.prefix(logging.ERROR, io.StringIO()) == ""
