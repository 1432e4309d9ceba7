"""The commands not covered elsewhere, run as a user runs them: rtd emulate and rtd devices."""

from __future__ import annotations

import re

import pytest

import rtd


def test_emulate_serves_until_sigterm(run_rtd):
    d = run_rtd("emulate", "--port", "0", "--voice", "tones")
    banner = d.wait_for_line("listening on ws://")
    assert "local offline peer for development and tests, not the OpenAI service" in banner
    url = re.search(r"(ws://\S+)", banner).group(1)
    with rtd.connect(provider="custom", url=url) as conn:
        assert conn.recv().type == "session.created"
    assert d.stop() == 0
    assert "Traceback" not in d.output


@pytest.mark.pulse
def test_devices_lists_the_virtual_cables(pulse, run_rtd):
    d = run_rtd("devices", extra_env=pulse.env)
    assert d.wait() == 0
    rows = [ln for ln in d.lines if re.match(r"\s*\d+\s+\d+\s+\d+\s+\d+\s", ln)]
    assert rows, d.output
    pulse_row = next(ln for ln in rows if " pulse " in f" {ln} ")
    _index, inputs, outputs, rate = pulse_row.split()[:4]
    assert int(inputs) > 0 and int(outputs) > 0 and int(rate) > 0
