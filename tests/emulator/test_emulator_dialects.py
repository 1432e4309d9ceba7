"""The emulator speaking the beta and xAI shapes, seen from a raw WebSocket client: what it
sends, and what it refuses from a client that forgot to translate."""

from __future__ import annotations

from emulator_helpers import Client

from rtd.emulator import Emulator

BETA = ["OpenAI-Beta: realtime=v1"]
HELLO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}


def test_beta_speaks_the_flat_session_and_the_old_names() -> None:
    with Emulator(voice_engine="tones", dialect="beta") as emu:
        c = Client(emu.url, BETA)
        created = c.recv()
        assert created["type"] == "session.created"
        session = created["session"]
        assert session["modalities"] == ["audio", "text"]
        assert session["input_audio_format"] == "pcm16" and session["voice"] == "marin"
        assert "audio" not in session and "output_modalities" not in session
        c.send(type="session.update", session={"modalities": ["text"], "temperature": 0.7,
                                               "turn_detection": None})
        assert c.until("session.updated")["session"]["turn_detection"] is None
        c.send(type="conversation.item.create", item=HELLO)
        c.send(type="response.create")
        kinds = [e["type"] for e in c.collect("response.done")]
        assert "conversation.item.created" in kinds and "response.text.delta" in kinds
        assert not {"conversation.item.added", "conversation.item.done",
                    "response.output_text.delta"} & set(kinds)
        done = c.events[-1]
        assert done["response"]["modalities"] == ["text"]
        assert done["response"]["output"][0]["content"][0]["type"] == "text"
        c.close()
        # what tests read stays GA, the wire's shape beside it
        update = emu.received[0]
        assert update["session"]["output_modalities"] == ["text"]
        assert update["_wire"]["session"]["modalities"] == ["text"]


def test_beta_refuses_ga_fields_and_a_missing_header() -> None:
    with Emulator(voice_engine="tones", dialect="beta") as emu:
        c = Client(emu.url, BETA)
        c.recv()
        c.send(type="session.update", session={"type": "realtime",
                                               "output_modalities": ["text"]})
        error = c.until("error")["error"]
        assert (error["code"], error["param"]) == ("unknown_parameter", "session.type")
        c.send(type="conversation.item.create", item={
            "type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "x"}]})
        assert c.until("error")["error"]["param"] == "item.content[0].type"
        c.close()
        bare = Client(emu.url)
        assert bare.recv()["error"]["code"] == "missing_beta_header"
        assert bare.close_frame()[0] == 4000
        bare.close()


def test_xai_starts_with_conversation_created_and_a_ping() -> None:
    with Emulator(voice_engine="tones", dialect="xai") as emu:
        c = Client(emu.url)
        assert [c.recv()["type"] for _ in range(2)] == ["conversation.created", "ping"]
        c.send(type="session.update", session={"voice": "ash", "turn_detection": None,
                                               "instructions": "Short."})
        session = c.until("session.updated")["session"]
        assert session["voice"] == "ash" and session["turn_detection"] is None
        assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert "type" not in session
        c.send(type="session.update", session={"type": "realtime"})
        assert c.until("error")["error"]["param"] == "session.type"
        c.send(type="conversation.item.create", item=HELLO)
        c.send(type="response.create", response={"modalities": ["text", "audio"]})
        done = c.until("response.done")
        assert done["usage"] == done["response"]["usage"]  # also at the top, as xAI sends it
        c.close()
    assert emu.sent[0]["_wire_types"] == ["conversation.created", "ping"]
