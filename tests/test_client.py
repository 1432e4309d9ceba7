"""rtd.Client and rtd.AsyncClient: the OpenAI SDK's shape, against the real emulator on
loopback (real sockets, the emulator's own checks of every event)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest

import rtd
from rtd.emulator import Emulator
from rtd.exceptions import APIStatusError, AuthenticationError, ConnectionClosed
from rtd.protocol import dialects

pytestmark = pytest.mark.timeout(60)

TEXT_SESSION = {"type": "realtime", "output_modalities": ["text"]}
HELLO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(voice_engine="tones") as e:
        yield e


def base(emu: Emulator) -> str:
    return f"http://127.0.0.1:{emu.port}/v1"


def text_turn(conn: Any) -> tuple[str, Any]:
    """Ask for a text reply through the resource helpers; (its text, response.done)."""
    conn.session.update(session=TEXT_SESSION)
    conn.conversation.item.create(item=HELLO)
    conn.response.create()
    text = ""
    for event in conn:
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.done":
            return text, event
    raise AssertionError("the connection ended before response.done")


def test_sync_text_turn_in_the_sdk_shape(emu: Emulator) -> None:
    client = rtd.Client(api_key="sk-any", base_url=base(emu))
    assert client.beta.realtime is client.realtime
    with client.realtime.connect(model="gpt-realtime-2", websocket_connection_options={
            "timeout": 5, "additional_headers": {"x-trace-id": "t-9"}}) as conn:
        first = conn.recv()
        assert first.type == "session.created"
        assert first.session.audio.output.voice  # attributes all the way down
        text, done = text_turn(conn)
    assert text
    item = done.response.output[0]  # list items read as attributes too
    assert item.content[0].type == "output_text"
    assert item.content[0].text == text
    assert done.response.status_details is None  # a field the event lacks: None
    with pytest.raises(AttributeError, match="did you mean 'status'"):
        _ = done.response.statuss
    assert emu.headers[0]["x-trace-id"] == "t-9"
    assert emu.headers[0]["authorization"] == "Bearer sk-any"
    assert emu.paths[0] == "/v1/realtime?model=gpt-realtime-2"
    assert "sk-any" not in repr(client)


def test_the_environment_gives_key_and_server(emu: Emulator,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", base(emu))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with rtd.Client().beta.realtime.connect(model="gpt-realtime-2") as conn:
        assert conn.recv().type == "session.created"
    assert emu.headers[0]["authorization"] == "Bearer sk-env"


def test_no_key_anywhere_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        rtd.Client(base_url="http://127.0.0.1:1/v1")


def test_resource_helpers_send_the_ga_events(emu: Emulator) -> None:
    pcm = b"\x01\x00\xff\xff" * 1200  # 100 ms
    client = rtd.Client(api_key="k", base_url=base(emu))
    with client.realtime.connect(model="gpt-realtime-2") as conn:
        conn.session.update(session={"type": "realtime", "audio": {
            "input": {"turn_detection": None}}}, event_id="ev-1")
        conn.input_audio_buffer.append(audio=pcm)
        conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        conn.send_audio_data(pcm)
        conn.input_audio_buffer.clear()
        conn.conversation.item.create(item={**HELLO, "id": "item_a"})
        conn.conversation.item.create(item={**HELLO, "id": "item_b"}, previous_item_id="item_a")
        conn.conversation.item.retrieve(item_id="item_b")
        conn.conversation.item.delete(item_id="item_b")
        conn.response.cancel()
        emu.wait_for(lambda e: e["type"] == "response.cancel", timeout=5)
        kinds = []
        for event in conn:
            kinds.append(event.type)
            if event.type == "conversation.item.deleted":
                break
    got = emu.received
    assert [e["type"] for e in got] == [
        "session.update", "input_audio_buffer.append", "input_audio_buffer.append",
        "input_audio_buffer.append", "input_audio_buffer.clear", "conversation.item.create",
        "conversation.item.create", "conversation.item.retrieve", "conversation.item.delete",
        "response.cancel"]
    assert got[0]["event_id"] == "ev-1"
    # the GA dialect says the audio rates explicitly even when the caller did not
    assert got[0]["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert [e["audio_bytes"] for e in got[1:4]] == [4800, 4800, 4800]
    assert got[6]["previous_item_id"] == "item_a"
    assert "conversation.item.retrieved" in kinds and "input_audio_buffer.cleared" in kinds


def test_truncate_reaches_the_server(emu: Emulator) -> None:
    client = rtd.Client(api_key="k", base_url=base(emu))
    with client.realtime.connect(model="gpt-realtime-2") as conn:
        conn.conversation.item.create(item=HELLO)
        conn.response.create()
        item_id = None
        for event in conn:
            if event.type == "response.output_item.added":
                item_id = event.item.id
            if event.type == "response.done":
                break
        assert item_id is not None
        conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=100)
        for event in conn:
            if event.type in ("conversation.item.truncated", "error"):
                break
    assert event.type == "conversation.item.truncated" and event.audio_end_ms == 100


def test_close_inside_the_block_then_leaving_it(emu: Emulator) -> None:
    client = rtd.Client(api_key="k", base_url=base(emu))
    with client.realtime.connect(model="gpt-realtime-2") as conn:
        conn.recv()
        conn.close()
        assert list(conn.listen()) == []  # closed here: listen ends quietly
        with pytest.raises(ConnectionClosed, match="closed here"):
            conn.recv()
    emu.sessions[0].ended.wait(5)
    assert emu.sessions[0].client_close == (1000, "")


def test_recv_bytes_and_parse_event(emu: Emulator) -> None:
    client = rtd.Client(api_key="k", base_url=base(emu))
    with client.realtime.connect(model="gpt-realtime-2") as conn:
        data = conn.recv_bytes()
        assert isinstance(data, bytes)
        assert conn.parse_event(data).type == "session.created"


def test_a_wrong_key_raises() -> None:
    with Emulator(api_key="right", voice_engine="tones") as emu:
        client = rtd.Client(api_key="wrong-key", base_url=base(emu))
        with pytest.raises(AuthenticationError, match="HTTP 401") as info:
            client.realtime.connect(model="gpt-realtime-2").enter()
        assert "wrong-key" not in str(info.value)


@pytest.mark.parametrize(("do", "said"), [("drop", "dropped"), ("reset", "reset")])
def test_a_dropped_connection_ends_listen_with_why(do: str, said: str) -> None:
    with Emulator(voice_engine="tones",
                  faults=[{"at": "response.output_text.delta", "do": do}]) as emu:
        client = rtd.Client(api_key="k", base_url=base(emu))
        with client.realtime.connect(model="gpt-realtime-2") as conn, \
                pytest.raises(ConnectionClosed, match=said):
            text_turn(conn)


def test_an_unexpected_close_code_ends_listen_with_it() -> None:
    with Emulator(voice_engine="tones", faults=[
            {"at": "response.created", "do": "close", "code": 4002, "reason": "bye"}]) as emu:
        client = rtd.Client(api_key="k", base_url=base(emu))
        with client.realtime.connect(model="gpt-realtime-2") as conn, \
                pytest.raises(ConnectionClosed, match=r"code 4002: bye") as info:
            text_turn(conn)
        assert info.value.code == 4002


@pytest.mark.parametrize(("call", "wrong", "right"), [
    (lambda c, conn: conn.session.update(sesion={}), "sesion", "session"),
    (lambda c, conn: conn.conversation.item.create(itme={}), "itme", "item"),
    (lambda c, conn: conn.conversation.item.truncate(item_id="x", content_index=0,
                                                     audio_end=1), "audio_end",
     "audio_end_ms"),
    (lambda c, conn: c.realtime.connect(modle="m"), "modle", "model"),
    (lambda c, conn: rtd.Client(api_kye="k"), "api_kye", "api_key"),
])
def test_a_wrong_keyword_names_the_closest(emu: Emulator, call: Any, wrong: str,
                                           right: str) -> None:
    client = rtd.Client(api_key="k", base_url=base(emu))
    with client.realtime.connect(model="gpt-realtime-2") as conn, \
            pytest.raises(TypeError, match=rf"'{wrong}' \(did you mean '{right}'\?\)"):
        call(client, conn)


def test_async_text_turn(emu: Emulator) -> None:
    async def main() -> tuple[str, str, Any]:
        client = rtd.AsyncClient(api_key="k", base_url=base(emu))
        assert client.beta.realtime is client.realtime
        async with client.realtime.connect(model="gpt-realtime-2") as conn:
            first = await conn.recv()
            await conn.session.update(session=TEXT_SESSION)
            await conn.conversation.item.create(item=HELLO)
            await conn.response.create()
            text = ""
            async for event in conn:
                if event.type == "response.output_text.delta":
                    text += event.delta
                elif event.type == "response.done":
                    break
            await conn.close()  # inside the block; leaving it then is fine
        return first.type, text, event

    kind, text, done = asyncio.run(main())
    assert kind == "session.created" and text
    assert done.response.output[0].content[0].text == text


def test_async_wrong_key_and_drop() -> None:
    async def refused(url: str) -> None:
        async with rtd.AsyncClient(api_key="nope", base_url=url).realtime.connect(model="m"):
            pass

    async def dropped(url: str) -> None:
        async with rtd.AsyncClient(api_key="k", base_url=url).realtime.connect(
                model="gpt-realtime-2") as conn:
            await conn.session.update(session=TEXT_SESSION)
            await conn.conversation.item.create(item=HELLO)
            await conn.response.create()
            async for _ in conn:
                pass

    with Emulator(api_key="k", voice_engine="tones",
                  faults=[{"at": "response.output_text.delta", "do": "drop"}]) as emu:
        with pytest.raises(AuthenticationError, match="HTTP 401"):
            asyncio.run(refused(base(emu)))
        with pytest.raises(ConnectionClosed, match="dropped"):
            asyncio.run(dropped(base(emu)))


# -- sessions.create / client_secrets.create over the emulator's REST endpoint --------------

SEED_KEYWORDS: dict[str, Any] = {
    "model": "gpt-realtime-2", "modalities": ["audio", "text"], "instructions": "Be brief.",
    "voice": "verse", "input_audio_format": "pcm16", "output_audio_format": "pcm16",
    "input_audio_transcription": {"model": "whisper-1"},
    "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                       "silence_duration_ms": 500},
    "tools": [{"type": "function", "name": "clock", "description": "The time.",
               "parameters": {"type": "object", "properties": {}}}],
    "tool_choice": "auto", "temperature": 0.8, "max_response_output_tokens": "inf",
}


def test_sessions_create_in_the_seed_shape_and_its_secret_connects(
        caplog: pytest.LogCaptureFixture) -> None:
    with Emulator(api_key="sk-root", voice_engine="tones") as emu:
        client = rtd.Client(api_key="sk-root", base_url=base(emu))
        dialects._logged.clear()  # "once" is per process: start this test afresh
        with caplog.at_level("WARNING", logger="rtd.protocol.dialects"):
            made = client.beta.realtime.sessions.create(**SEED_KEYWORDS)
            client.realtime.sessions.create(temperature=0.7)
        assert made.object == "realtime.session" and made.id.startswith("sess_")
        assert made.model == "gpt-realtime-2"
        assert made.modalities == ["audio", "text"]
        assert (made.instructions, made.voice) == ("Be brief.", "verse")
        assert (made.input_audio_format, made.output_audio_format) == ("pcm16", "pcm16")
        assert made.tools[0].name == "clock"
        assert made.turn_detection.silence_duration_ms == 500
        assert made.temperature is None  # GA has none: accepted, not sent, said once
        assert [r.message for r in caplog.records].count(
            "temperature has no equivalent in the GA realtime session and is not sent (it "
            "has no effect)") == 1
        secret = made.client_secret
        assert secret.value.startswith("ek_") and secret.expires_at > 0
        # the ephemeral secret is a key for a connection, which starts with its session
        ephemeral = rtd.Client(api_key=secret.value, base_url=base(emu))
        with ephemeral.realtime.connect(model="gpt-realtime-2") as conn:
            first = conn.recv()
        assert first.session.instructions == "Be brief."
        assert first.session.audio.output.voice == "verse"
        assert first.session.tools[0].name == "clock"


def test_client_secrets_create_is_the_ga_call(emu: Emulator) -> None:
    client = rtd.Client(api_key="k", base_url=base(emu))
    made = client.realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 60},
        session={"type": "realtime", "output_modalities": ["text"], "instructions": "Hi."})
    assert made.value.startswith("ek_")
    assert made.session.output_modalities == ["text"]
    assert made.session.instructions == "Hi."
    assert made.session.audio.output.voice == "marin"


def test_sessions_create_refusals_carry_status_and_message() -> None:
    with Emulator(api_key="sk-root", voice_engine="tones") as emu:
        with pytest.raises(AuthenticationError, match="HTTP 401") as refused:
            rtd.Client(api_key="sk-bad", base_url=base(emu)).realtime.sessions.create()
        assert refused.value.status == 401 and "sk-bad" not in str(refused.value)
        client = rtd.Client(api_key="sk-root", base_url=base(emu))
        with pytest.raises(APIStatusError, match="HTTP 400") as bad:
            client.realtime.sessions.create(voice="nobody")
        assert bad.value.status == 400
        assert bad.value.message.startswith("Invalid value: 'nobody'")
        with pytest.raises(APIStatusError, match="expires_after.seconds"):
            client.realtime.client_secrets.create(expires_after={"seconds": 5})
        with pytest.raises(TypeError, match=r"'voise' \(did you mean 'voice'\?\)"):
            client.realtime.sessions.create(voise="verse")


def test_async_sessions_create(emu: Emulator) -> None:
    async def main() -> Any:
        client = rtd.AsyncClient(api_key="k", base_url=base(emu))
        made = await client.realtime.sessions.create(model="gpt-realtime-2", voice="ash")
        async with rtd.AsyncClient(api_key=made.client_secret.value,
                                   base_url=base(emu)).realtime.connect(
                model="gpt-realtime-2") as conn:
            return made, await conn.recv()

    made, first = asyncio.run(main())
    assert made.voice == "ash" and first.session.audio.output.voice == "ash"


# -- the same turns in each dialect --------------------------------------------------------

@pytest.mark.parametrize("dialect", ["ga", "beta", "xai"])
def test_a_turn_in_each_dialect_reads_as_ga(dialect: str) -> None:
    """xAI has no text-only session: there the reply is audio with its transcript."""
    with Emulator(voice_engine="tones", dialect=dialect) as emu:
        client = rtd.Client(api_key="k", base_url=base(emu), dialect=dialect)
        kinds: list[str] = []
        with client.realtime.connect(model="gpt-realtime-2") as conn:
            conn.session.update(session=TEXT_SESSION)
            conn.conversation.item.create(item=HELLO)
            conn.response.create()
            text = ""
            for event in conn:
                kinds.append(event.type)
                if event.type in ("response.output_text.delta",
                                  "response.output_audio_transcript.delta"):
                    text += event.delta
                elif event.type == "response.done":
                    break
        assert text and "error" not in kinds and "ping" not in kinds
        part = event.response.output[0].content[0]
        assert part.type == ("output_audio" if dialect == "xai" else "output_text")
        first = emu.received[0]
        wire = first.get("_wire", first)["session"]
    if dialect == "beta":
        assert emu.headers[0]["openai-beta"] == "realtime=v1"
        assert wire["modalities"] == ["text"] and wire["input_audio_format"] == "pcm16"
        assert "response.text.delta" in [t for e in emu.sent for t in e.get("_wire_types", [])]
    elif dialect == "xai":
        assert "type" not in wire and "output_modalities" not in wire
        assert wire["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    else:
        assert "openai-beta" not in emu.headers[0] and wire["type"] == "realtime"


def test_xai_ping_stays_below_recv_but_parse_event_shows_it() -> None:
    with Emulator(voice_engine="tones", dialect="xai") as emu:
        client = rtd.Client(api_key="k", base_url=base(emu), dialect="xai")
        with client.realtime.connect(model="grok-voice-latest") as conn:
            assert conn.recv().type == "conversation.created"
            conn.session.update(session={"type": "realtime", "instructions": "Hi."})
            assert conn.recv().type == "session.updated"  # the ping in between never shows
        with client.realtime.connect(model="grok-voice-latest") as conn:
            frames = [conn.parse_event(conn.recv_bytes()) for _ in range(2)]
        assert [f.type for f in frames] == ["conversation.created", "ping"]


def test_a_client_of_the_wrong_dialect_is_told() -> None:
    with Emulator(voice_engine="tones") as emu:  # GA
        client = rtd.Client(api_key="k", base_url=base(emu), dialect="beta")
        with client.realtime.connect(model="gpt-realtime-2") as conn, \
                pytest.raises(ConnectionClosed, match="beta_api_shape_disabled"):
            list(conn)
    with Emulator(voice_engine="tones", dialect="beta") as emu:
        client = rtd.Client(api_key="k", base_url=base(emu))
        with client.realtime.connect(model="gpt-realtime-2") as conn, \
                pytest.raises(ConnectionClosed, match="code 4000"):
            list(conn)


def test_unknown_dialect_is_named() -> None:
    with pytest.raises(ValueError, match="unknown dialect 'bta' \\(did you mean 'beta'\\?\\)"):
        rtd.Client(api_key="k", dialect="bta")


def test_an_sdk_style_script_runs_unchanged_against_the_emulator() -> None:
    """examples/sdk_style.py as a real process, finding the emulator through the environment."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from rtd.emulator.scenario import Scenario, Turn

    scenario = Scenario(turns=(Turn(call="switch_lights",
                                    arguments={"room": "kitchen", "on": True},
                                    then="The {room} lights are {state}."),))
    root = Path(__file__).resolve().parents[1]
    with Emulator(scenario=scenario, voice_engine="tones", api_key="sk-root") as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(OPENAI_BASE_URL=base(emu), OPENAI_API_KEY="sk-root")
        proc = subprocess.run([sys.executable, str(root / "examples" / "sdk_style.py")],
                              env=env, capture_output=True, text=True, timeout=30, cwd=root,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("session sess_")
        assert lines[1] == "connected: session.created"
        assert '(tool switch_lights -> {"room": "kitchen", "state": "on"})' in lines
        assert "The kitchen lights are on." in lines
        assert lines[-1] == "lights now: {'kitchen': True}"
        # the connection used the ephemeral key, and started with the secret's session
        assert emu.headers[0]["authorization"].startswith("Bearer ek_")
        assert emu.sessions[0].server_events[0]["session"]["tools"][0]["name"] == \
            "switch_lights"
    assert "temperature has no equivalent" in proc.stderr
