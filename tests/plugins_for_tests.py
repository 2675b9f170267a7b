"""Small plugins used by the core's tests: each one does one thing, so a test can say what it expects."""

import asyncio

from pydantic import BaseModel

from callgate import Allow, CallerId, Deny, PhoneNumber, Prompt, Route, Svaml, hookimpl
from callgate.protocols.v1.svaml import ConnectPstn, Continue, Hangup


class AllowWith:
    """Allows every call with a max duration (from config)."""

    class Config(BaseModel):
        max_duration: int | None = None
        say: str | None = None

    def __init__(self, config):
        self.config = config

    @hookimpl
    def authorize_call(self, call):
        prompts = (Prompt.say(self.config.say),) if self.config.say else ()
        return Allow(max_duration=self.config.max_duration, prompts=prompts)


class DenyAll:
    """Denies every call, with a prompt."""

    def __init__(self):
        self.decisions = []

    @hookimpl
    async def authorize_call(self, call):
        return Deny("denied by test", prompt=Prompt.say("You may not call."))

    @hookimpl
    def call_decided(self, call, decision):
        self.decisions.append(decision)


class Abstain:
    @hookimpl
    def authorize_call(self, call):
        return None


class Raises:
    """Raises in every decision hook and when recording."""

    @hookimpl
    def authorize_call(self, call):
        raise RuntimeError("boom")

    @hookimpl
    def on_answer(self, call):
        raise RuntimeError("boom")

    @hookimpl
    def on_disconnect(self, call):
        raise RuntimeError("database is down")


class Hangs:
    """Never answers (until cancelled)."""

    @hookimpl
    async def authorize_call(self, call):
        await asyncio.sleep(3600)

    @hookimpl
    async def on_disconnect(self, call):
        await asyncio.sleep(3600)


class RouteTo:
    """Routes every call to one number."""

    class Config(BaseModel):
        number: str = "+15550001111"
        max_duration: int | None = None

    def __init__(self, config):
        self.config = config

    @hookimpl
    def route_call(self, call):
        return Route(PhoneNumber(self.config.number), max_duration=self.config.max_duration, name="test-route")


class FixedCli:
    @hookimpl
    def set_cli(self, call, route):
        return CallerId("+46850001234")


class AnswerHangup:
    @hookimpl
    def on_answer(self, call):
        return Svaml(action=Hangup())


class AnswerInvalid:
    """Returns SVAML that is not allowed in ACE (connectPstn)."""

    @hookimpl
    def on_answer(self, call):
        return Svaml(action=ConnectPstn(number="+15550001111"))


class WrongType:
    @hookimpl
    def authorize_call(self, call):
        return "yes"


class Recorder:
    """Records every DICE and Notify it sees."""

    def __init__(self):
        self.seen = []

    @hookimpl
    async def on_disconnect(self, call):
        self.seen.append(("dice", call.callid))

    @hookimpl
    async def on_notify(self, call):
        self.seen.append(("notify", call.callid))


class ContinueOnPie:
    @hookimpl
    def on_prompt_input(self, call):
        return Svaml(action=Continue())
