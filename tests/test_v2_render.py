"""callgate.protocols.v2.render: every answer V2Renderer can give is SVAML v2 that Sinch's own SDK loads, says what the
plan says, and the shared answer fixtures come out of the equivalent plans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sinch.domains.voice.models.v2.sinch_events import VoiceSinchEventResponse
from v2_sdk_checks import assert_sdk_accepts_answer

from callgate.calls import Header
from callgate.decisions import (
    Allow,
    CallerId,
    Conference,
    Deny,
    DigitMenu,
    EndCall,
    InAppUser,
    PhoneNumber,
    Proceed,
    Prompt,
    Route,
    SipEndpoint,
)
from callgate.plan import IncomingPlan, Rendered, Renderer
from callgate.protocols.v1.svaml import parse_svaml
from callgate.protocols.v2.render import CALLEE_LEG, CALLER_LEG, V2Renderer
from callgate.protocols.v2.wire import (
    InvalidV2Answer,
    V2Answer,
    V2AnswerCommand,
    V2DialCommand,
    V2HangupCommand,
    V2Phone,
    V2PhoneDetails,
    decode_v2_answer,
    encode_v2_answer,
)

FIXTURES = Path(__file__).parent / "fixtures" / "v2"
RENDERER = V2Renderer()

SAY = Prompt.say("Welcome to Example.")
TARGETS: dict[str, Any] = {
    "phone": PhoneNumber("+46731112233"),
    "sip": SipEndpoint("sips:support@pbx.example.com", headers=(Header("X-Ref", "42"), Header("X-Empty", "")),
                       transport="tls"),
    "sip-plain": SipEndpoint("sip:bob@example.com"),
    "menu": DigitMenu(Prompt.say("Enter your PIN, then hash."), menu_id="pin", max_digits=4, timeout_seconds=10,
                      repeats=1),
    "end": EndCall(),
    "end-prompt": EndCall((Prompt.play("https://audio.example.com/bye.wav"),)),
}
PROMPTS: dict[str, tuple[Prompt, ...]] = {
    "none": (),
    "say": (SAY,),
    "say-locale-play": (Prompt.say("Bienvenue.", locale="fr-FR"), Prompt.play("https://audio.example.com/a.mp3")),
    "twelve": tuple(Prompt.say(f"Prompt number {i}.") for i in range(12)),
    "files": (Prompt.play("https://audio.example.com/a.mp3", "https://audio.example.com/b.mp3"),),
}
CLIS = {"no-cli": None, "e164": "+46850001234", "private": "private"}
ACTIONS = {"phone": "dial", "sip": "dial", "sip-plain": "dial", "menu": "menu", "end": "hangup", "end-prompt": "hangup"}


def commands_in(commands: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every command of a command list, depth first in the order they run (nested handlers after their command)."""
    for command in commands:
        yield command
        for handlers in (command.get("events") or {}).values():
            yield from commands_in(handlers)
        for item in (command.get("menus") or {}).values():
            for handlers in (item.get("matches") or {}).values():
                yield from commands_in(handlers)
            yield from commands_in(item.get("onFailure") or [])


def heard(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages the caller hears, in order (messages commands and menu prompts)."""
    out: list[dict[str, Any]] = []
    for command in commands_in(answer["commands"]):
        if command["command"] == "messages":
            out += command["messages"]
        elif command["command"] == "menu":
            out += command["menus"][command["startMenu"]]["prompt"]["messages"]
    return out


def messages_of(*prompts: Prompt, voice: str = "Emma") -> list[dict[str, Any]]:
    """The v2 messages the prompts should become: one SAY per spoken prompt, one PLAY per audio file."""
    out: list[dict[str, Any]] = []
    for prompt in prompts:
        if prompt.text is None:
            out += [{"type": "PLAY", "play": {"url": url}} for url in prompt.urls]
        else:
            out.append({"type": "SAY", "say": {"text": prompt.text, "voiceName": voice}})
    return out


def checked(rendered: Rendered) -> dict[str, Any]:
    """The rendered answer: the SDK loads it and writes it back the same, and it is what its V2Answer encodes to."""
    assert isinstance(rendered.svaml, V2Answer)
    assert rendered.body == encode_v2_answer(rendered.svaml)
    assert decode_v2_answer(rendered.body) == rendered.svaml
    assert_sdk_accepts_answer(rendered.body)
    return json.loads(rendered.body)


def expected_heard(target: Any, prompts: tuple[Prompt, ...]) -> list[dict[str, Any]]:
    extra = target.prompts if isinstance(target, EndCall) else (target.prompt,) if isinstance(target, DigitMenu) else ()
    return messages_of(*(*prompts, *extra))


def assert_dial(answer: dict[str, Any], target: Any, cli: str | None, *, max_duration: int, dial_timeout: int) -> None:
    dials = [c for c in commands_in(answer["commands"]) if c["command"] == "dial"]
    bridges = [c for c in commands_in(answer["commands"]) if c["command"] == "bridgeCall"]
    assert len(dials) == 1 and bridges == [{"command": "bridgeCall", "bridgeName": "callgate"}]
    dial = dials[0]
    assert "events" not in dial  # so that Sinch sends call.answered / call.busy / call.hangup for the leg
    assert (dial["callName"], dial["maxCallDurationSeconds"], dial["dialTimeoutDurationSeconds"]) == (
        CALLEE_LEG, max_duration, dial_timeout)
    if isinstance(target, PhoneNumber):
        assert dial["to"] == {"type": "PHONE", "phone": {"number": target.number}}
    else:
        sip = {"endpoint": target.uri}
        if target.transport:
            sip["transport"] = target.transport.upper()
        if target.headers:
            sip["callHeaders"] = [{"key": h.key, "value": h.value} for h in target.headers]
        assert dial["to"] == {"type": "SIP", "sip": sip}
    if cli is None:
        assert "from" not in dial
    elif cli == "private":
        assert dial["from"] == {"type": "SIP", "sip": {"endpoint": "sip:anonymous@anonymous.invalid",
                                                       "displayName": "Anonymous"}}
    else:
        assert dial["from"] == {"type": "PHONE", "phone": {"number": cli}}


def assert_menu(answer: dict[str, Any], menu: DigitMenu) -> None:
    menus = [c for c in commands_in(answer["commands"]) if c["command"] == "menu"]
    assert len(menus) == 1 and menus[0]["startMenu"] == menu.menu_id and list(menus[0]["menus"]) == [menu.menu_id]
    item = menus[0]["menus"][menu.menu_id]
    assert "matches" not in item and "onFailure" not in item  # the input comes back as call.menu
    assert (item["maximumInputLength"], item["inputTimeoutDurationSeconds"], item["repeatCount"],
            item["terminatingSequence"]) == (menu.max_digits, menu.timeout_seconds, menu.repeats, "#")
    assert 1 <= len(item["prompt"]["messages"]) <= 10


def assert_no_message_webhooks(answer: dict[str, Any]) -> None:
    """Every messages command has its onFinish (else Sinch would send call.message.finished) and at most 10 messages."""
    for command in commands_in(answer["commands"]):
        if command["command"] == "messages":
            assert 1 <= len(command["messages"]) <= 10 and command["events"]["onFinish"]
            assert "messagesName" not in command


def test_v2_renderer_is_a_renderer():
    renderer: Renderer = RENDERER
    assert renderer.generation == "v2" and renderer.recorded == b'{"commands":[]}'


# --------------------------------------------------------------------------- call.incoming

@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("prompts", PROMPTS)
@pytest.mark.parametrize("target", TARGETS)
def test_incoming_every_target_prompts_and_cli(target, prompts, cli):
    to, said, number = TARGETS[target], PROMPTS[prompts], CLIS[cli]
    plan = IncomingPlan(allowed=True, prompts=said, route=Route(to, max_duration=7200, dial_timeout=45),
                        max_duration=3600, cli=number)
    rendered = RENDERER.incoming(plan)
    answer = checked(rendered)
    assert rendered.action == ACTIONS[target]
    assert heard(answer) == expected_heard(to, said)
    assert_no_message_webhooks(answer)
    first = answer["commands"][0]["command"]
    if isinstance(to, (PhoneNumber, SipEndpoint)):
        assert_dial(answer, to, number, max_duration=3600, dial_timeout=45)
        assert first == ("answer" if said else "bridgeCall")
    elif isinstance(to, DigitMenu):
        assert_menu(answer, to)
        assert first == "answer"
    else:
        hangups = [c for c in commands_in(answer["commands"]) if c["command"] == "hangup"]
        assert hangups == [{"command": "hangup"}]
        assert first == ("answer" if heard(answer) else "hangup")
    goes_on = isinstance(to, (PhoneNumber, SipEndpoint, DigitMenu))
    assert answer.get("callName") == (CALLER_LEG if goes_on else None)
    assert "events" not in answer  # Sinch sends call.hangup for the inbound leg too


@pytest.mark.parametrize("prompts", PROMPTS)
@pytest.mark.parametrize("allowed", [True, False])
def test_incoming_without_route_hangs_up_after_the_prompts(prompts, allowed):
    rendered = RENDERER.incoming(IncomingPlan(allowed=allowed, prompts=PROMPTS[prompts]))
    answer = checked(rendered)
    assert rendered.action == "hangup"
    assert heard(answer) == messages_of(*PROMPTS[prompts])
    assert [c["command"] for c in commands_in(answer["commands"])][-1] == "hangup"
    if not PROMPTS[prompts]:
        assert answer == {"commands": [{"command": "hangup"}]}


def test_dial_phone_fixture_is_the_equivalent_plan():
    plan = IncomingPlan(allowed=True, route=Route(PhoneNumber("+46731112233"), dial_timeout=30), max_duration=3600,
                        cli="+46850001234")
    rendered = V2Renderer(bridge="main").incoming(plan)
    assert json.loads(rendered.body) == json.loads((FIXTURES / "answer.call.incoming.dial-phone.json").read_bytes())
    assert rendered.action == "dial"


def test_say_hangup_fixture_is_the_equivalent_plan_but_for_its_illustrative_messages_name():
    fixture = json.loads((FIXTURES / "answer.call.incoming.say-hangup.json").read_bytes())
    text = fixture["commands"][1]["messages"][0]["say"]["text"]
    rendered = RENDERER.incoming(IncomingPlan(allowed=False, prompts=(Prompt.say(text),)))
    assert fixture["commands"][1].pop("messagesName") == "closed"  # a name must be unique in the session: none is set
    assert json.loads(rendered.body) == fixture
    assert rendered.action == "hangup"


def test_voice_is_the_renderers_and_locale_does_not_change_it():
    rendered = V2Renderer(voice="Sonia").incoming(IncomingPlan(allowed=False, prompts=(Prompt.say("Hej", "sv-SE"),)))
    assert heard(checked(rendered)) == [{"type": "SAY", "say": {"text": "Hej", "voiceName": "Sonia"}}]


def test_eleven_menu_prompts_play_the_plans_first():
    menu = DigitMenu(Prompt.say("Choose."))
    prompts = tuple(Prompt.say(f"Line {i}.") for i in range(10))
    answer = checked(RENDERER.incoming(IncomingPlan(allowed=True, prompts=prompts, route=Route(menu))))
    assert heard(answer) == messages_of(*(*prompts, menu.prompt))
    assert [c["command"] for c in commands_in(answer["commands"])] == ["answer", "messages", "menu"]


def test_nine_prompts_and_the_menus_share_its_prompt():
    menu = DigitMenu(Prompt.say("Choose."))
    prompts = tuple(Prompt.say(f"Line {i}.") for i in range(9))
    answer = checked(RENDERER.incoming(IncomingPlan(allowed=True, prompts=prompts, route=Route(menu))))
    assert [c["command"] for c in answer["commands"]] == ["answer", "menu"]
    assert heard(answer) == messages_of(*(*prompts, menu.prompt))


# --------------------------------------------------------------------------- a plugin's own V2Answer

def own_answer(max_duration: int | None) -> V2Answer:
    dial = V2DialCommand(to=V2Phone(phone=V2PhoneDetails(number="+46731112233")), call_name="agent",
                         max_call_duration_seconds=max_duration,
                         from_=V2Phone(phone=V2PhoneDetails(number="+46850001234")))
    return V2Answer(commands=[V2AnswerCommand(), dial], call_name="inbound")


@pytest.mark.parametrize(("own", "limit", "sent"), [(7200, 600, 600), (300, 600, 300), (None, 600, 600),
                                                    (900, None, 900)])
@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("prompts", ["none", "say"])
def test_specific_answer_gets_the_plans_prompts_and_limits(own, limit, sent, cli, prompts):
    plan = IncomingPlan(allowed=True, prompts=PROMPTS[prompts], specific=own_answer(own), max_duration=limit,
                        cli=CLIS[cli])
    rendered = RENDERER.incoming(plan)
    answer = checked(rendered)
    assert rendered.action == "dial" and answer["callName"] == "inbound"
    [dial] = [c for c in commands_in(answer["commands"]) if c["command"] == "dial"]
    assert dial["callName"] == "agent" and dial["maxCallDurationSeconds"] == sent
    assert rendered.max_duration == sent        # Decision.max_duration of the plugin's own route, as for v1
    if CLIS[cli] is None:
        assert dial["from"] == {"type": "PHONE", "phone": {"number": "+46850001234"}}
    elif CLIS[cli] == "private":
        assert dial["from"]["type"] == "SIP"
    else:
        assert dial["from"] == {"type": "PHONE", "phone": {"number": CLIS[cli]}}
    commands = [c["command"] for c in commands_in(answer["commands"])]
    assert commands == (["answer", "messages", "dial"] if PROMPTS[prompts] else ["answer", "dial"])


def test_specific_answer_without_a_dial_or_a_limit_sets_no_max_duration():
    hang_up = V2Answer(commands=[V2HangupCommand()])
    assert RENDERER.incoming(IncomingPlan(allowed=True, specific=hang_up, max_duration=600)).max_duration is None
    assert RENDERER.incoming(IncomingPlan(allowed=True, specific=own_answer(None))).max_duration is None


def test_specific_answer_must_be_v2():
    with pytest.raises(ValueError, match="expected a V2Answer"):
        RENDERER.incoming(IncomingPlan(allowed=True, specific={"commands": []}))


# --------------------------------------------------------------------------- call.answered

ANSWERED_OK: dict[str, tuple[Any, str]] = {
    "proceed": (Proceed(), "bridgeCall"),
    "end": (EndCall(), "hangup"),
    "end-prompts": (EndCall(PROMPTS["twelve"]), "hangup"),
    "route-end": (Route(EndCall((SAY,)), prompts=(SAY,)), "hangup"),
    "route-menu": (Route(TARGETS["menu"], prompts=PROMPTS["say-locale-play"]), "menu"),
    "own": (V2Answer(commands=[V2HangupCommand(call_name="caller")]), "hangup"),
    "own-empty": (V2Answer(commands=[]), "none"),
}


@pytest.mark.parametrize("name", ANSWERED_OK)
def test_answered(name):
    value, action = ANSWERED_OK[name]
    rendered = RENDERER.answered(value)
    answer = checked(rendered)
    assert rendered.action == action
    assert_no_message_webhooks(answer)
    assert "callName" not in answer  # takes effect in call.incoming answers only
    if not name.startswith("own"):
        assert "answer" not in [c["command"] for c in commands_in(answer["commands"])]  # the leg is answered
    if name == "proceed":
        assert answer == {"commands": [{"command": "bridgeCall", "bridgeName": "callgate"}]}
    if name.startswith(("end", "route-end")):
        hangups = [c for c in commands_in(answer["commands"]) if c["command"] == "hangup"]
        assert hangups == [{"command": "hangup", "callName": CALLER_LEG}, {"command": "hangup"}]
        assert heard(answer) == messages_of(*(*getattr(value, "prompts", ()),
                                                         *getattr(getattr(value, "to", None), "prompts", ())))
    if name == "route-menu":
        assert_menu(answer, TARGETS["menu"])


@pytest.mark.parametrize("value", [Route(PhoneNumber("+46731112233")), Route(SipEndpoint("sip:a@b.example")),
                                   Allow(), Deny("no"), CallerId("+46850001234"), {"commands": []}, None])
def test_answered_refuses_what_it_cannot_do(value):
    with pytest.raises(ValueError, match=r"cannot answer call\.answered"):
        RENDERER.answered(value)


# --------------------------------------------------------------------------- call.menu

@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("prompts", PROMPTS)
@pytest.mark.parametrize("target", TARGETS)
def test_menu_route_every_target_prompts_and_cli(target, prompts, cli):
    to, said, number = TARGETS[target], PROMPTS[prompts], CLIS[cli]
    rendered = RENDERER.menu(Route(to, max_duration=1800, dial_timeout=20, cli=number, prompts=said))
    answer = checked(rendered)
    assert rendered.action == ACTIONS[target]
    assert heard(answer) == expected_heard(to, said)
    assert_no_message_webhooks(answer)
    assert "callName" not in answer  # takes effect in call.incoming answers only
    assert "answer" not in [c["command"] for c in commands_in(answer["commands"])]  # the leg is answered already
    if isinstance(to, (PhoneNumber, SipEndpoint)):
        assert_dial(answer, to, number, max_duration=1800, dial_timeout=20)
    elif isinstance(to, DigitMenu):
        assert_menu(answer, to)
    else:
        assert [c for c in commands_in(answer["commands"]) if c["command"] == "hangup"] == [{"command": "hangup"}]


@pytest.mark.parametrize(("value", "action", "body"), [
    (Proceed(), "none", {"commands": []}),
    (EndCall(), "hangup", {"commands": [{"command": "hangup"}]}),
    (EndCall((SAY,)), "hangup", {"commands": [{"command": "messages", "messages": messages_of(SAY),
                                               "events": {"onFinish": [{"command": "hangup"}]}}]}),
    (V2Answer(commands=[V2HangupCommand()]), "hangup", {"commands": [{"command": "hangup"}]}),
])
def test_menu_steps(value, action, body):
    rendered = RENDERER.menu(value)
    assert checked(rendered) == body and rendered.action == action


@pytest.mark.parametrize("value", [Allow(), Deny("no"), {"commands": []}, None])
def test_menu_refuses_what_it_cannot_do(value):
    with pytest.raises(ValueError, match=r"cannot answer call\.menu"):
        RENDERER.menu(value)


# --------------------------------------------------------------------------- safe, recorded, not recorded

@pytest.mark.parametrize(("kind", "body", "action"), [
    ("incoming", {"commands": [{"command": "hangup"}]}, "hangup"),
    ("answered", {"commands": [{"command": "bridgeCall", "bridgeName": "callgate"}]}, "bridgeCall"),
    ("menu", {"commands": [{"command": "hangup"}]}, "hangup"),
])
def test_safe_answers(kind, body, action):
    rendered = RENDERER.safe(kind)
    assert checked(rendered) == body and rendered.action == action


def test_safe_of_an_unknown_kind():
    with pytest.raises(ValueError, match="no safe v2 answer"):
        RENDERER.safe("ended")


def test_recorded_is_an_empty_command_list_the_sdk_loads():
    assert RENDERER.recorded == b'{"commands":[]}'
    assert_sdk_accepts_answer(RENDERER.recorded)


@pytest.mark.parametrize("plugins", ["crm_export", "crm_export, credit_check", None])
def test_not_recorded_is_a_4xx_whose_body_is_still_svaml_v2(plugins):
    status, body = RENDERER.not_recorded(plugins)
    assert 400 <= status < 500 and status == 424  # a 5xx drops a v2 call; a non-2xx sends the event to the fallback
    sent = json.loads(body)
    assert sent["commands"] == [] and sent["error"] == "not_recorded"
    assert (plugins or "callgate could not") in sent["message"] and "424" in sent["message"]
    model = VoiceSinchEventResponse.model_validate(sent)  # the SDK's response model allows extra fields
    assert model.commands == [] and set(model.model_extra or {}) == {"error", "message"}


# --------------------------------------------------------------------------- refusals

V1_SVAML = parse_svaml({"action": {"name": "hangup"}})


@pytest.mark.parametrize(("value", "reason"), [
    (InAppUser("alice"), "no in-app calls"),
    (Route(InAppUser("alice")), "no in-app calls"),
    (Conference("room-1"), "within one session"),
    (Route(Conference("room-1"), prompts=(SAY,)), "within one session"),
    (V1_SVAML, "Svaml cannot answer a v2 call"),
    ({"commands": []}, "dict cannot answer a v2 call"),
    (V2Answer(commands=[], call_name="x" * 40), "callName"),
    (V2Answer(commands=[V2DialCommand(to=V2Phone(phone=V2PhoneDetails(number="0701234567")))]),
     "commands[0].to.phone.number"),
])
def test_refuses(value, reason):
    refusal = RENDERER.refuses(value, "incoming")
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("value", [
    Allow(), Deny("closed", Prompt.say("Closed.")), CallerId("private"), Proceed(), EndCall((SAY,)),
    Route(PhoneNumber("+46731112233")), Route(TARGETS["sip"]), Route(TARGETS["menu"]), Route(EndCall()),
    V2Answer(commands=[]), None,
])
def test_accepts(value):
    assert RENDERER.refuses(value, "incoming") is None


@pytest.mark.parametrize("target", [InAppUser("alice"), Conference("room-1")])
def test_v1_only_targets_raise_when_rendered(target):
    with pytest.raises(ValueError, match="Voice API v2"):
        RENDERER.incoming(IncomingPlan(allowed=True, route=Route(target)))
    with pytest.raises(ValueError, match="Voice API v2"):
        RENDERER.menu(Route(target))
    with pytest.raises(ValueError, match="Voice API v2"):
        RENDERER.answered(Route(target))


def test_what_svaml_v2_cannot_carry_raises_when_rendered():
    sip = SipEndpoint("sip:a@b.example", headers=(Header("X-Name", "Ärla"),))  # SIP headers are printable ASCII
    with pytest.raises(InvalidV2Answer, match=r"callHeaders\[0\]\.value"):
        RENDERER.incoming(IncomingPlan(allowed=True, route=Route(sip)))
    with pytest.raises(InvalidV2Answer, match="callName"):
        RENDERER.answered(V2Answer(commands=[], call_name="has space"))


@pytest.mark.parametrize(("voice", "bridge"), [("", "callgate"), ("Emma", ""), ("Emma", "two words"), (None, "b")])
def test_renderer_settings_are_checked(voice, bridge):
    with pytest.raises(ValueError):
        V2Renderer(voice=voice, bridge=bridge)
