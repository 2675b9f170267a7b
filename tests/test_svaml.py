"""SVAML models: wire form, documented limits, the per-event tables, parsing, and the fixtures' answers.

The expected values here are written from the protocol reference (sinch-voice-v1.md,
sections (b) and (d)), not derived from callgate.protocols.v1.svaml.
"""

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callgate.protocols.v1.svaml import (
    ACTIONS_BY_EVENT,
    INSTRUCTIONS_BY_EVENT,
    SAFE_ANSWERS,
    Amd,
    Answer,
    CallHeader,
    ConferenceDtmfOptions,
    ConnectConf,
    ConnectMxp,
    ConnectPstn,
    ConnectSip,
    ConnectStream,
    Continue,
    Destination,
    Hangup,
    Menu,
    MenuOption,
    Park,
    PlayFiles,
    RecordingOptions,
    RunMenu,
    Say,
    SendDtmf,
    SetCookie,
    StartRecording,
    StopRecording,
    StreamingOptions,
    Svaml,
    SvamlError,
    TranscriptionOptions,
    parse_action,
    parse_instruction,
    parse_svaml,
)

FIXTURES = Path(__file__).parent / "fixtures"
EVENTS = ("ice", "ace", "pie", "dice", "notify")

# --- the reference's tables, written out by hand ("Which event accepts what", OAS columns) ---

EXPECTED_ACTIONS = {
    "hangup": {"ice", "ace", "pie"},
    "continue": {"ace", "pie"},
    "connectPstn": {"ice", "pie"},
    "connectMxp": {"ice"},
    "connectConf": {"ice", "ace", "pie"},
    "connectSip": {"ice", "pie"},
    "connectStream": {"ice"},
    "runMenu": {"ice", "ace", "pie"},
    "park": {"ice"},
}
EXPECTED_INSTRUCTIONS = {
    "playFiles": {"ice", "ace", "pie"},
    "say": {"ice", "ace", "pie"},
    "sendDtmf": {"ice", "pie"},
    "setCookie": {"ice", "ace", "pie"},
    "answer": {"ice"},
    "startRecording": {"ice", "ace", "pie"},
    "stopRecording": {"ice", "ace", "pie"},
}
INDICATIONS = ("at au bg br be ch cl cn cz de dk ee es fi fr gr hu il in it lt jp mx my nl no nz ph pl pt ru "
               "se sg th uk us tw ve za").split()


def menu(id="main", **kw):
    return Menu(id=id, main_prompt="#tts[Press 1.]", options=(MenuOption(dtmf="1", action="return(one)"),), **kw)


RECORDING = RecordingOptions(destination_url="s3://bucket/calls", credentials="AKIA:SECRET:eu-west-1")

# One fully populated example of every action and instruction (every optional field set).
ACTIONS = {
    "hangup": Hangup(),
    "continue": Continue(),
    "connectPstn": ConnectPstn(number="+46850009999", locale="sv-SE", max_duration=3600, dial_timeout=30,
                               cli="+46850001234", suppress_callbacks=False, dtmf="ww1234#w#", indications="se",
                               amd=Amd(enabled=True, async_=True)),
    "connectMxp": ConnectMxp(destination=Destination(type="username", endpoint="bob"),
                             call_headers=(CallHeader(key="topic", value="support"),)),
    "connectConf": ConnectConf(conference_id="room-42", moh="music2",
                               conference_dtmf_options=ConferenceDtmfOptions(mode="detect", max_digits=4,
                                                                             timeout_mills=3000)),
    "connectSip": ConnectSip(destination=Destination(type="sip", endpoint="support@pbx.example.com"),
                             max_duration=600, cli="private", transport="tls", suppress_callbacks=True,
                             call_headers=(CallHeader(key="X-Customer", value="4821"),), moh="ring"),
    "connectStream": ConnectStream(destination=Destination(type="Websocket", endpoint="wss://ws.example.com/a"),
                                   streaming_options=StreamingOptions(version=1, sample_rate=16000),
                                   max_duration=14400, call_headers=(CallHeader(key="k", value="v"),)),
    "runMenu": RunMenu(barge=False, locale="en-US", main_menu="start", enable_voice=True,
                       menus=(Menu(id="start", main_prompt="#tts[Hi]", repeat_prompt="#tts[Again]", repeats=2,
                                   max_digits=4, timeout_mills=5000, max_timeout_mills=20000,
                                   options=(MenuOption(dtmf="1", action="menu(sub)"),
                                            MenuOption(dtmf="#", action="return(done)"))),
                              menu("sub"))),
    "park": Park(locale="en-US", intro_prompt="#tts[Welcome]", hold_prompt="#tts[Please hold]", max_duration=600),
}
INSTRUCTIONS = {
    "playFiles": PlayFiles(ids=("https://x.example/a.wav", "#tts[Hello]"), locale="en-US"),
    "say": Say(text="Hello", locale="en-GB"),
    "sendDtmf": SendDtmf(value="1234#"),
    "setCookie": SetCookie(key="flow", value="main-ivr"),
    "answer": Answer(),
    "startRecording": StartRecording(options=RecordingOptions(
        destination_url="s3://bucket/calls", credentials="AKIA:SECRET:eu-west-1", format="wav",
        notification_events=True, transcription_options=TranscriptionOptions(enabled=True, locale="en-US"))),
    "stopRecording": StopRecording(),
}


def walk(value):
    """Every (key, value) pair in a nested dict/list structure."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def objects(value):
    """Every dict in a nested structure."""
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from objects(v)
    elif isinstance(value, list):
        for item in value:
            yield from objects(item)


def example_responses():
    for event in ("ice", "ace", "pie"):
        for example in json.loads((FIXTURES / f"{event}.json").read_text())["examples"]:
            if "example_response" in example:
                yield pytest.param(event, example["example_response"], id=f"{event}-{example['name']}")


# --- serialization ---------------------------------------------------------------------------

def test_connect_pstn_answer_wire_form():
    svaml = Svaml(action=ConnectPstn(number="+46850009999", cli="+46850001234", max_duration=1800),
                  instructions=(Say(text="Connecting you now.", locale="en-US"),
                                SetCookie(key="customer", value="4821")))
    assert svaml.to_dict() == {
        "instructions": [{"name": "say", "text": "Connecting you now.", "locale": "en-US"},
                         {"name": "setCookie", "key": "customer", "value": "4821"}],
        "action": {"name": "connectPstn", "number": "+46850009999", "cli": "+46850001234", "maxDuration": 1800},
    }


def test_no_instructions_key_when_there_are_none():
    assert Svaml(action=Continue()).to_dict() == {"action": {"name": "continue"}}
    assert json.loads(Svaml(action=Hangup()).to_json()) == {"action": {"name": "hangup"}}
    assert b"instructions" not in Svaml(action=Hangup(), instructions=()).to_json()


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_serializes_camelcase_without_nulls_name_first(name):
    wire = Svaml(action=ACTIONS[name]).to_dict()
    assert all(v is not None for _, v in walk(wire))
    assert all("_" not in k for k, _ in walk(wire)), wire
    assert next(iter(wire["action"])) == "name" and wire["action"]["name"] == name


@pytest.mark.parametrize("name", sorted(INSTRUCTIONS))
def test_every_instruction_serializes_camelcase_without_nulls_name_first(name):
    wire = Svaml(action=Hangup(), instructions=(INSTRUCTIONS[name],)).to_dict()
    assert all(v is not None for _, v in walk(wire))
    assert all("_" not in k for k, _ in walk(wire)), wire
    assert next(iter(wire["instructions"][0])) == "name" and wire["instructions"][0]["name"] == name


def test_nested_objects_use_sinch_names():
    pstn = Svaml(action=ACTIONS["connectPstn"]).to_dict()["action"]
    assert pstn["amd"] == {"enabled": True, "async": True}
    assert pstn["dialTimeout"] == 30 and pstn["suppressCallbacks"] is False   # False is a value, not a null
    conf = Svaml(action=ACTIONS["connectConf"]).to_dict()["action"]
    assert conf["conferenceId"] == "room-42"
    assert conf["conferenceDtmfOptions"] == {"mode": "detect", "maxDigits": 4, "timeoutMills": 3000}
    menu_ = Svaml(action=ACTIONS["runMenu"]).to_dict()["action"]
    assert menu_["mainMenu"] == "start" and menu_["enableVoice"] is True
    assert menu_["menus"][0] == {"id": "start", "mainPrompt": "#tts[Hi]", "repeatPrompt": "#tts[Again]",
                                 "repeats": 2, "maxDigits": 4, "timeoutMills": 5000, "maxTimeoutMills": 20000,
                                 "options": [{"dtmf": "1", "action": "menu(sub)"},
                                             {"dtmf": "#", "action": "return(done)"}]}
    stream = Svaml(action=ACTIONS["connectStream"]).to_dict()["action"]
    assert stream["streamingOptions"] == {"version": 1, "sampleRate": 16000}
    assert stream["callHeaders"] == [{"key": "k", "value": "v"}]
    recording = Svaml(action=Hangup(), instructions=(INSTRUCTIONS["startRecording"],)).to_dict()["instructions"][0]
    assert recording["options"] == {"destinationUrl": "s3://bucket/calls", "credentials": "AKIA:SECRET:eu-west-1",
                                    "format": "wav", "notificationEvents": True,
                                    "transcriptionOptions": {"enabled": True, "locale": "en-US"}}


def test_play_files_ids_is_a_flat_list_of_strings():
    wire = Svaml(action=Hangup(), instructions=(PlayFiles(ids=["https://x/a.wav", "https://x/b.wav"]),)).to_dict()
    ids = wire["instructions"][0]["ids"]
    assert type(ids) is list and ids == ["https://x/a.wav", "https://x/b.wav"]


def test_every_object_in_the_wire_form_is_a_plain_dict_and_every_sequence_a_list():
    svaml = Svaml(action=ACTIONS["runMenu"], instructions=tuple(INSTRUCTIONS[n] for n in ("playFiles", "say")))
    wire = svaml.to_dict()
    assert all(type(o) is dict for o in objects(wire))
    assert not any(isinstance(v, tuple) for _, v in walk(wire))


def test_to_json_is_compact_json_of_to_dict():
    svaml = Svaml(action=ACTIONS["connectSip"], instructions=(INSTRUCTIONS["say"],))
    body = svaml.to_json()
    assert isinstance(body, bytes)
    assert json.loads(body) == svaml.to_dict()
    assert body == json.dumps(svaml.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()


def test_to_json_keeps_non_ascii_text():
    body = Svaml(action=Hangup(), instructions=(Say(text="Hej då", locale="sv-SE"),)).to_json()
    assert json.loads(body.decode("utf-8"))["instructions"][0]["text"] == "Hej då"


def test_to_dict_returns_a_fresh_dict():
    svaml = Svaml(action=Hangup(), instructions=(Answer(),))
    svaml.to_dict()["instructions"].clear()
    assert svaml.to_dict()["instructions"] == [{"name": "answer"}]


def test_transport_is_emitted_upper_case():
    for given_ in ("udp", "Tcp", "TLS"):
        sip = ConnectSip(destination=Destination(type="sip", endpoint="a@b.example"), transport=given_)
        assert Svaml(action=sip).to_dict()["action"]["transport"] == given_.upper()


def test_models_are_frozen_and_hashable():
    say = Say(text="hi")
    with pytest.raises(AttributeError):
        say.text = "changed"
    svaml = Svaml(action=ACTIONS["runMenu"], instructions=(INSTRUCTIONS["playFiles"],))
    assert hash(svaml) == hash(Svaml(action=ACTIONS["runMenu"], instructions=(INSTRUCTIONS["playFiles"],)))


def test_defaults_let_the_name_be_left_out():
    assert Say(text="hi").name == "say" and ConnectPstn().name == "connectPstn" and Continue().name == "continue"
    with pytest.raises(TypeError):        # the name is the class's, not an argument
        Say(name="playFiles", text="hi")


def test_snake_case_keywords_and_camel_case_wire_names_build_the_same_model():
    assert ConnectPstn(max_duration=60) == parse_action({"name": "connectPstn", "maxDuration": 60})
    assert Amd(async_=True) == msgspec.convert({"async": True}, Amd)


# --- limits, each at its boundary -------------------------------------------------------------

def ok(build):
    return build()


def rejected(build, *fragments):
    with pytest.raises(ValueError) as caught:      # SvamlError is a ValueError
        build()
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def missing(build, field):
    """A required argument left out: a TypeError naming it, as for any Python call."""
    with pytest.raises(TypeError, match=field):
        build()


SIP = Destination(type="sip", endpoint="a@b.example")
WS = Destination(type="websocket", endpoint="wss://x.example")


@pytest.mark.parametrize("build", [
    lambda d: ConnectPstn(max_duration=d),
    lambda d: ConnectSip(destination=SIP, max_duration=d),
    lambda d: ConnectStream(destination=WS, max_duration=d),
], ids=["connectPstn", "connectSip", "connectStream"])
def test_max_duration_0_to_14400(build):
    ok(lambda: build(0))
    ok(lambda: build(14400))
    rejected(lambda: build(14401), "max_duration", "14400")
    rejected(lambda: build(-1), "max_duration")


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_connect_pstn_max_duration_accepted_exactly_in_range(seconds):
    try:
        ConnectPstn(max_duration=seconds)
        accepted = True
    except SvamlError:
        accepted = False
    assert accepted == (0 <= seconds <= 14400)


def test_numbers_and_flags_are_not_coerced():
    rejected(lambda: ConnectPstn(max_duration=True), "max_duration")
    rejected(lambda: ConnectPstn(max_duration="60"), "max_duration")
    rejected(lambda: RunMenu(barge="yes", menus=(menu(),)), "barge")


def test_park_max_duration_at_most_600():
    ok(lambda: Park(max_duration=600))
    rejected(lambda: Park(max_duration=601), "max_duration", "600")


def test_say_text_600_characters_and_not_empty():
    ok(lambda: Say(text="x" * 600))
    ok(lambda: Say(text="å" * 600))           # characters, not bytes
    rejected(lambda: Say(text="x" * 601), "text", "600")
    rejected(lambda: Say(text=""), "text")
    rejected(lambda: Say(text="   "), "text", "empty")
    missing(lambda: Say(), "text")


def test_play_files_ids_non_empty_flat_strings():
    ok(lambda: PlayFiles(ids=["https://x/a.wav"]))
    rejected(lambda: PlayFiles(ids=[]), "ids")
    rejected(lambda: PlayFiles(ids=[["https://x/a.wav"]]), "ids")       # the "array of arrays" mistake
    rejected(lambda: PlayFiles(ids="https://x/a.wav"), "ids")           # a bare string is not a list
    rejected(lambda: PlayFiles(ids=[1]), "ids")
    rejected(lambda: PlayFiles(ids=[""]), "ids")
    missing(lambda: PlayFiles(), "ids")


def test_play_files_needs_a_locale_for_tts_and_ssml():
    ok(lambda: PlayFiles(ids=["#tts[Hello]"], locale="en-US"))
    rejected(lambda: PlayFiles(ids=["#tts[Hello]"]), "locale")
    rejected(lambda: PlayFiles(ids=["https://x/a.wav", "#ssml[<speak>Hi</speak>]"]), "locale")


def test_cookie_1024_bytes_key_plus_value():
    ok(lambda: SetCookie(key="k", value="x" * 1023))
    rejected(lambda: SetCookie(key="k", value="x" * 1024), "1025", "1024")
    ok(lambda: SetCookie(key="k", value="é" * 511))            # 1 + 1022 bytes in UTF-8
    rejected(lambda: SetCookie(key="k", value="é" * 512), "1025")
    ok(lambda: SetCookie(key="k", value=""))
    rejected(lambda: SetCookie(key="", value="v"), "key")


def test_cookie_data_of_one_answer_at_most_1024_bytes_in_all():
    half = "x" * 511
    ok(lambda: Svaml(action=Hangup(), instructions=(SetCookie(key="a", value=half), SetCookie(key="b", value=half))))
    rejected(lambda: Svaml(action=Hangup(), instructions=(SetCookie(key="a", value=half),
                                                          SetCookie(key="b", value=half + "x"))), "1025")
    # setting the same key twice keeps only the last value
    ok(lambda: Svaml(action=Hangup(), instructions=(SetCookie(key="a", value=half * 2),
                                                    SetCookie(key="a", value=half * 2))))


def test_conference_id_1_to_64_characters():
    ok(lambda: ConnectConf(conference_id="c" * 64))
    rejected(lambda: ConnectConf(conference_id="c" * 65), "conference_id", "64")
    rejected(lambda: ConnectConf(conference_id=""), "conference_id")
    missing(lambda: ConnectConf(), "conference_id")


@pytest.mark.parametrize("build", [lambda v: SendDtmf(value=v), lambda v: ConnectPstn(dtmf=v)],
                         ids=["sendDtmf.value", "connectPstn.dtmf"])
def test_dtmf_characters_0_to_9_hash_w(build):
    ok(lambda: build("ww1234#w#"))
    ok(lambda: build("0123456789"))
    for bad in ("*", "12*", "W", "1a", " 1", "", "١"):        # "١" is an Arabic-Indic digit
        rejected(lambda: build(bad))


def test_menu_option_dtmf_is_one_key():
    for key in [*"0123456789", "*", "#"]:
        ok(lambda: MenuOption(dtmf=key, action="return(x)"))
    assert MenuOption(dtmf=1, action="return(x)").dtmf == "1"     # Sinch examples sometimes send a number
    for bad in ("12", "a", "", "w", 10, True):
        rejected(lambda: MenuOption(dtmf=bad, action="return(x)"), "dtmf")


def test_menu_option_action_is_menu_or_return():
    ok(lambda: MenuOption(dtmf="1", action="menu(sales)"))
    ok(lambda: MenuOption(dtmf="1", action="return(support agent)"))
    for bad in ("goto(x)", "menu()", "return()", "return", "menu(x", "Return(x)", " menu(x)"):
        rejected(lambda: MenuOption(dtmf="1", action=bad), "action")


def test_menu_option_keys_unique_within_a_menu():
    rejected(lambda: Menu(id="main", options=(MenuOption(dtmf="1", action="return(a)"),
                                              MenuOption(dtmf="1", action="return(b)"))), "more than once")


def test_run_menu_needs_main_or_an_existing_main_menu():
    ok(lambda: RunMenu(menus=(menu("main"),)))
    ok(lambda: RunMenu(main_menu="start", menus=(menu("start"),)))
    rejected(lambda: RunMenu(menus=(menu("start"),)), "main")
    rejected(lambda: RunMenu(main_menu="nowhere", menus=(menu("main"),)), "mainMenu", "nowhere")
    rejected(lambda: RunMenu(menus=()), "menus")


def test_run_menu_menu_targets_must_exist():
    jump = lambda target: Menu(id="main", options=(MenuOption(dtmf="2", action=f"menu({target})"),))  # noqa: E731
    ok(lambda: RunMenu(menus=(jump("sales"), menu("sales"))))
    ok(lambda: RunMenu(menus=(jump("main"),)))                  # a menu may lead back to itself
    rejected(lambda: RunMenu(menus=(jump("sales"),)), "menu(sales)")


def test_run_menu_ids_unique():
    rejected(lambda: RunMenu(menus=(menu("main"), menu("main"))), "main", "more than once")


def test_run_menu_locale_required_with_voice():
    ok(lambda: RunMenu(enable_voice=True, locale="en-US", menus=(menu(),)))
    ok(lambda: RunMenu(enable_voice=False, menus=(menu(),)))
    rejected(lambda: RunMenu(enable_voice=True, menus=(menu(),)), "locale", "enableVoice")


@pytest.mark.parametrize("build", [lambda v: ConnectPstn(cli=v), lambda v: ConnectSip(destination=SIP, cli=v)],
                         ids=["connectPstn", "connectSip"])
def test_cli_is_e164_or_private(build):
    for good in ("+46850001234", "private", "+1", "+" + "9" * 15):
        ok(lambda: build(good))
    for bad in ("46850001234", "+0850001234", "+" + "9" * 16, "+", "Private", "+4685 0001234", "+4١"):
        rejected(lambda: build(bad), "cli")


def test_connect_pstn_number_is_e164():
    ok(lambda: ConnectPstn(number="+14155550123"))
    for bad in ("14155550123", "+01", "private", "+1415555012345678", "tel:+14155550123"):
        rejected(lambda: ConnectPstn(number=bad), "number")


def test_call_header_value_1024_bytes():
    ok(lambda: CallHeader(key="k", value="v" * 1024))
    ok(lambda: CallHeader(key="k", value="é" * 512))
    rejected(lambda: CallHeader(key="k", value="v" * 1025), "value", "1024")
    rejected(lambda: CallHeader(key="k", value="é" * 512 + "v"), "value")
    rejected(lambda: ConnectMxp(call_headers=[{"key": "k", "value": "v" * 1025}]), "call_headers")


def test_transport_udp_tcp_tls():
    assert ConnectSip(destination=SIP, transport="udp").transport == "UDP"
    for bad in ("SCTP", "ws", ""):
        rejected(lambda: ConnectSip(destination=SIP, transport=bad), "transport")


def test_conference_dtmf_mode_and_moh():
    for mode in ("ignore", "forward", "detect"):
        ok(lambda: ConferenceDtmfOptions(mode=mode))
    rejected(lambda: ConferenceDtmfOptions(mode="record"), "mode")
    rejected(lambda: ConferenceDtmfOptions(max_digits=0), "max_digits")
    for moh in ("ring", "music1", "music2", "music3"):
        ok(lambda: ConnectConf(conference_id="c", moh=moh))
        ok(lambda: ConnectSip(destination=SIP, moh=moh))
    rejected(lambda: ConnectConf(conference_id="c", moh="music4"), "moh")


def test_indications_from_the_country_list():
    assert len(INDICATIONS) == 39
    for country in INDICATIONS:
        ok(lambda: ConnectPstn(indications=country))
    for bad in ("false", "gb", "US", "se "):        # the OAS corrupted Norway's "no" to false
        rejected(lambda: ConnectPstn(indications=bad), "indications")


def test_start_recording_needs_destination_url_and_credentials():
    ok(lambda: StartRecording(options=RECORDING))
    missing(lambda: StartRecording(), "options")
    rejected(lambda: StartRecording(options={"credentials": "a:b:c"}), "destinationUrl", "required")
    rejected(lambda: StartRecording(options={"destination_url": "s3://b"}), "credentials", "required")
    rejected(lambda: StartRecording(options={"destination": "s3://b", "credentials": "a:b:c"}), "destination")


def test_start_recording_not_with_connect_mxp():
    rejected(lambda: Svaml(action=ConnectMxp(), instructions=(StartRecording(options=RECORDING),)),
             "startRecording", "connectMxp")


def test_destination_type_matches_the_action():
    ok(lambda: ConnectSip(destination=Destination(type="SIP", endpoint="a@b")))
    ok(lambda: ConnectMxp(destination=Destination(type="Username", endpoint="bob")))
    rejected(lambda: ConnectSip(destination=Destination(type="number", endpoint="+1555")), "sip")
    rejected(lambda: ConnectMxp(destination=Destination(type="sip", endpoint="a@b")), "username")
    rejected(lambda: ConnectStream(destination=Destination(type="sip", endpoint="a@b")), "websocket")
    missing(lambda: ConnectSip(), "destination")


def test_unknown_fields_are_rejected():
    with pytest.raises(TypeError, match="reason"):
        Hangup(reason="x")
    with pytest.raises(TypeError, match="callheaders"):
        ConnectMxp(callheaders=[])                                    # the OAS typo
    rejected(lambda: parse_action({"name": "connectMxp", "callheaders": []}), "connectMxp.callheaders")


# --- which event accepts what ----------------------------------------------------------------

def test_tables_cover_every_action_and_instruction():
    assert set(ACTIONS) == set(EXPECTED_ACTIONS)
    assert set(INSTRUCTIONS) == set(EXPECTED_INSTRUCTIONS)


@pytest.mark.parametrize("event", EVENTS)
def test_module_tables_match_the_reference(event):
    assert ACTIONS_BY_EVENT[event] == {a for a, events in EXPECTED_ACTIONS.items() if event in events}
    assert INSTRUCTIONS_BY_EVENT[event] == {i for i, events in EXPECTED_INSTRUCTIONS.items() if event in events}


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_action_allowed_per_event(name, event):
    svaml = Svaml(action=ACTIONS[name])
    if event in EXPECTED_ACTIONS[name]:
        svaml.validate_for(event)
    else:
        with pytest.raises(SvamlError) as caught:
            svaml.validate_for(event)
        assert name in str(caught.value) and event.upper() in str(caught.value)


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("name", sorted(EXPECTED_INSTRUCTIONS))
def test_instruction_allowed_per_event(name, event):
    svaml = Svaml(action=Hangup(), instructions=(INSTRUCTIONS[name],))
    if event in EXPECTED_INSTRUCTIONS[name]:
        svaml.validate_for(event)
    else:
        with pytest.raises(SvamlError) as caught:
            svaml.validate_for(event)
        assert name in str(caught.value) and event.upper() in str(caught.value)


def test_validate_for_lists_every_offending_part():
    svaml = Svaml(action=ConnectPstn(), instructions=(Answer(), SendDtmf(value="1")))
    with pytest.raises(SvamlError) as caught:
        svaml.validate_for("ace")
    message = str(caught.value)
    assert "connectPstn" in message and "answer" in message and "sendDtmf" in message and "not allowed" in message


def test_validate_for_unknown_event():
    with pytest.raises(SvamlError, match="unknown event"):
        Svaml(action=Hangup()).validate_for("ICE-ish")


def test_validate_for_rechecks_values_that_skipped_validation():
    sneaky = ConnectPstn(number="+14155550123")
    msgspec.structs.force_setattr(sneaky, "max_duration", 99999)     # what __post_init__ is for, misused
    with pytest.raises(SvamlError, match="maxDuration"):
        Svaml(action=sneaky).validate_for("ice")


@pytest.mark.parametrize("event", ["ice", "ace", "pie"])
def test_safe_answers_are_valid_for_their_event(event):
    SAFE_ANSWERS[event].validate_for(event)
    assert SAFE_ANSWERS[event].action.name == {"ice": "hangup", "ace": "continue", "pie": "hangup"}[event]


# --- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling, canonical", [
    ("ConnectPSTN", "connectPstn"), ("connectpstn", "connectPstn"), ("CONNECTPSTN", "connectPstn"),
    ("connectMXP", "connectMxp"), ("ConnectConf", "connectConf"), ("RunMenu", "runMenu"), ("Hangup", "hangup"),
    ("CONTINUE", "continue"), ("connectSIP", "connectSip"), ("ConnectStream", "connectStream"), ("Park", "park"),
])
def test_action_names_are_case_insensitive(spelling, canonical):
    body = Svaml(action=ACTIONS[canonical]).to_dict()["action"]
    action = parse_action({**body, "name": spelling})
    assert action == ACTIONS[canonical] and action.name == canonical


@pytest.mark.parametrize("spelling, canonical", [
    ("Say", "say"), ("PLAYFILES", "playFiles"), ("playfiles", "playFiles"), ("SendDTMF", "sendDtmf"),
    ("SetCookie", "setCookie"), ("Answer", "answer"), ("startrecording", "startRecording"),
    ("StopRecording", "stopRecording"),
])
def test_instruction_names_are_case_insensitive(spelling, canonical):
    body = Svaml(action=Hangup(), instructions=(INSTRUCTIONS[canonical],)).to_dict()["instructions"][0]
    instruction = parse_instruction({**body, "name": spelling})
    assert instruction == INSTRUCTIONS[canonical] and instruction.name == canonical


def test_keys_in_snake_case_or_camel_case():
    camel = parse_action({"name": "connectPstn", "maxDuration": 60, "suppressCallbacks": True,
                          "amd": {"enabled": True, "async": False}})
    snake = parse_action({"name": "connectPstn", "max_duration": 60, "suppress_callbacks": True,
                          "amd": {"enabled": True, "async": False}})
    assert camel == snake == ConnectPstn(max_duration=60, suppress_callbacks=True, amd=Amd(enabled=True, async_=False))
    menu_ = parse_action({"name": "runMenu", "main_menu": "m", "menus": [{"id": "m", "max_digits": 2}]})
    assert menu_.main_menu == "m" and menu_.menus[0].max_digits == 2


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(SvamlError) as caught:
        parse_action({"name": "connectPhone"})
    message = str(caught.value)
    assert "connectPhone" in message and all(name in message for name in EXPECTED_ACTIONS)
    with pytest.raises(SvamlError) as caught:
        parse_instruction({"name": "whisper"})
    assert "whisper" in str(caught.value) and all(name in str(caught.value) for name in EXPECTED_INSTRUCTIONS)


def test_an_instruction_is_not_an_action():
    with pytest.raises(SvamlError, match="instruction"):
        parse_action({"name": "say", "text": "hi"})
    with pytest.raises(SvamlError, match="action"):
        parse_instruction({"name": "hangup"})


@pytest.mark.parametrize("data, where", [
    ({"name": "connectPstn", "maxDuration": 14401}, "connectPstn.maxDuration"),
    ({"name": "ConnectPSTN", "cli": "12345"}, "connectPstn.cli"),
    ({"name": "connectConf", "conferenceId": "c" * 65}, "connectConf.conferenceId"),
    ({"name": "connectConf", "conferenceId": "c", "conferenceDtmfOptions": {"mode": "loud"}},
     "connectConf.conferenceDtmfOptions.mode"),
    ({"name": "runMenu", "menus": [{"id": "main", "options": [{"dtmf": "12", "action": "return(x)"}]}]},
     "runMenu.menus[0].options[0].dtmf"),
    ({"name": "connectSip", "destination": {"type": "sip", "endpoint": "a@b"}, "transport": "sctp"},
     "connectSip.transport"),
    ({"name": "park", "maxDuration": 601}, "park.maxDuration"),
    ({"name": "hangup", "reason": "x"}, "hangup.reason"),
])
def test_invalid_content_names_the_location(data, where):
    with pytest.raises(SvamlError) as caught:
        parse_action(data)
    assert where in str(caught.value)


def test_invalid_instruction_in_an_answer_names_its_position():
    with pytest.raises(SvamlError) as caught:
        parse_svaml({"action": {"name": "hangup"},
                     "instructions": [{"name": "answer"}, {"name": "say", "text": "x" * 601}]})
    assert "instructions[1].say.text" in str(caught.value)


@pytest.mark.parametrize("data", [
    None, [], "hangup", {}, {"instructions": [{"name": "answer"}]}, {"action": "hangup"},
    {"action": {"text": "no name"}}, {"action": {"name": "hangup"}, "instructions": {"name": "answer"}},
    {"action": {"name": "hangup"}, "extra": 1}, {"action": {"name": "hangup"}, "instructions": ["answer"]},
])
def test_malformed_svaml_is_an_svaml_error(data):
    with pytest.raises(SvamlError):
        parse_svaml(data)


def test_svaml_error_is_a_value_error():
    assert issubclass(SvamlError, ValueError)


def test_null_instructions_read_as_none():
    assert parse_svaml({"action": {"name": "hangup"}, "instructions": None}) == Svaml(action=Hangup())


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_round_trip_every_action(name):
    svaml = Svaml(action=ACTIONS[name])
    assert parse_svaml(svaml.to_dict()) == svaml
    assert parse_svaml(json.loads(svaml.to_json())) == svaml


@pytest.mark.parametrize("name", sorted(INSTRUCTIONS))
def test_round_trip_every_instruction(name):
    svaml = Svaml(action=Hangup(), instructions=(INSTRUCTIONS[name], Say(text="bye")))
    assert parse_svaml(svaml.to_dict()) == svaml
    assert parse_svaml(json.loads(svaml.to_json())) == svaml


# --- the fixtures' example answers -----------------------------------------------------------

@pytest.mark.parametrize("event, response", list(example_responses()))
def test_fixture_example_response_parses_and_validates(event, response):
    if response == {}:
        # conference-dtmf-detect (PIE): a 200 OK with {} is enough for a conference-DTMF PIE;
        # {} is not SVAML (no action), so there is nothing to parse here.
        with pytest.raises(SvamlError):
            parse_svaml(response)
        pytest.skip("conference-dtmf-detect answers {}, which is an acknowledgement, not SVAML")
    svaml = parse_svaml(response)
    svaml.validate_for(event)
    assert svaml.to_dict() == response      # the fixtures are in canonical wire form already


def test_every_fixture_file_has_example_responses():
    found = {event for event, *_ in (p.values for p in example_responses())}
    assert found == {"ice", "ace", "pie"}


# --- msgspec: construction and decoding agree ------------------------------------------------

def test_an_error_names_the_class_and_attribute_built_by_keyword():
    with pytest.raises(SvamlError, match=r"^ConnectPstn\.max_duration: must be at most 14400, got 14401$"):
        ConnectPstn(max_duration=14401)
    with pytest.raises(SvamlError, match=r"^ConnectMxp\.call_headers\[0\]\.value: "):
        ConnectMxp(call_headers=[{"key": "k", "value": "v" * 1025}])


def test_nested_objects_may_be_given_as_dicts_in_either_spelling():
    built = StartRecording(options={"destination_url": "s3://b", "credentials": "a:b:c",
                                    "transcriptionOptions": {"enabled": True}})
    assert built == StartRecording(options=RecordingOptions(destination_url="s3://b", credentials="a:b:c",
                                                            transcription_options=TranscriptionOptions(enabled=True)))
    assert Svaml(action={"name": "hangup"}, instructions=[{"name": "answer"}]) == \
        Svaml(action=Hangup(), instructions=(Answer(),))


def test_lists_are_stored_as_tuples_so_answers_stay_hashable():
    svaml = Svaml(action=Hangup(), instructions=[PlayFiles(ids=["https://x/a.wav"])])
    assert svaml.instructions == (PlayFiles(ids=("https://x/a.wav",)),)
    assert hash(svaml) == hash(Svaml(action=Hangup(), instructions=(PlayFiles(ids=("https://x/a.wav",)),)))


def test_a_menu_option_key_given_as_a_number_parses_as_a_string():
    parsed = parse_action({"name": "runMenu", "menus": [{"id": "main", "options": [{"dtmf": 1, "action": "return(a)"}]}]})
    assert parsed.menus[0].options[0].dtmf == "1"
    with pytest.raises(SvamlError, match=r"connectPstn\.dtmf"):
        parse_action({"name": "connectPstn", "dtmf": 1234})       # DTMF tones are a string


def test_the_wire_form_decodes_with_msgspec_into_the_same_answer():
    for action in ACTIONS.values():
        svaml = Svaml(action=action, instructions=(INSTRUCTIONS["say"], INSTRUCTIONS["setCookie"]))
        assert msgspec.json.decode(svaml.to_json(), type=Svaml) == svaml


@given(st.integers(min_value=-10, max_value=20000), st.text(max_size=70))
def test_keyword_checks_and_msgspec_decoding_accept_the_same_values(seconds, room):
    def accepts(build):
        try:
            build()
        except (SvamlError, msgspec.ValidationError):
            return False
        return True
    assert accepts(lambda: ConnectSip(destination=SIP, max_duration=seconds)) == \
        accepts(lambda: msgspec.convert({"name": "connectSip", "destination": {"type": "sip", "endpoint": "a@b.example"},
                                         "maxDuration": seconds}, ConnectSip))
    assert accepts(lambda: ConnectConf(conference_id=room)) == \
        accepts(lambda: msgspec.convert({"name": "connectConf", "conferenceId": room}, ConnectConf))
