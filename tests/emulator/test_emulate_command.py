"""`rtd emulate` with faults, run as a user runs it, seen from a raw WebSocket client."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import websocket
from emulator_helpers import TIMEOUT, Client


def test_fault_and_auth_failure_flags(run_rtd: Any) -> None:
    d = run_rtd("emulate", "--port", "0", "--voice", "tones", "--api-key", "sk-right",
                "--auth-failure", "close",
                "--fault", 'at = "upgrade", do = "http", status = 503, retry_after = 2',
                "--fault", 'at = "session.created", do = "duplicate"')
    url = re.search(r"(ws://\S+)", d.wait_for_line("listening on ws://")).group(1)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=TIMEOUT)
    assert refused.value.status_code == 503
    assert refused.value.resp_headers["retry-after"] == "2"
    assert json.loads(refused.value.resp_body)["error"]["type"] == "server_error"
    client = Client(url, ["Authorization: Bearer sk-wrong"])
    assert client.recv()["error"]["code"] == "invalid_api_key"
    assert client.close_frame() == (3000, "invalid_request_error.invalid_api_key")
    client.close()
    client = Client(url, ["Authorization: Bearer sk-right"])
    assert [client.recv()["type"] for _ in range(2)] == ["session.created"] * 2
    client.close()
    assert d.stop() == 0
    assert "Traceback" not in d.output


def test_a_bad_fault_flag_is_one_line_naming_the_key(run_rtd: Any) -> None:
    d = run_rtd("emulate", "--port", "0", "--fault", 'at = "upgrade", do = "htp"')
    assert d.wait() == 78
    assert "--fault 1: do: unknown action 'htp'; did you mean 'http'?" in d.output
    assert "Traceback" not in d.output
