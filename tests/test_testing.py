"""callgate.testing as docs/plugins.md documents it for plugin authors."""

import pytest
from pydantic import BaseModel, ConfigDict

import callgate
from callgate import Deny, hookimpl


class Blocklist:
    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        blocked: list[str] = []

    def __init__(self, config):
        self.blocked = set(config.blocked)

    @hookimpl
    def authorize_call(self, call):
        return Deny("caller is blocked") if call.caller in self.blocked else None


def test_check_config_returns_the_error_check_config_would_print(callgate_check_config):
    error = callgate_check_config({"plugins": {"blocklist": {"blockd": []}}}, plugins={"blocklist": Blocklist})
    assert isinstance(error, callgate.PluginError) and error.plugin == "blocklist"
    assert "[plugins.blocklist].blockd" in str(error)


def test_check_config_returns_none_for_a_valid_config(callgate_check_config):
    assert callgate_check_config({"plugins": {"blocklist": {"blocked": ["+46700000001"]}}},
                                 plugins={"blocklist": Blocklist}) is None


def test_check_config_returns_a_core_config_error_too(callgate_check_config):
    error = callgate_check_config({"server": {"deadline_ms": "soon"}})
    assert isinstance(error, callgate.ConfigError) and "deadline_ms" in str(error)


async def test_callgate_client_raises_the_plugin_error(callgate_client):
    with pytest.raises(callgate.PluginError, match=r"\[plugins.blocklist\].blockd"):
        await callgate_client({"plugins": {"blocklist": {"blockd": []}}}, plugins={"blocklist": Blocklist})


class Recording:
    def __init__(self):
        self.ended = {}

    @hookimpl
    async def on_disconnect(self, call):
        self.ended[call.callid] = (call.result, call.duration, call.debit.amount, call.debit.currency)


async def test_client_plugin_is_the_instance_the_app_runs(callgate_client, callgate_events):
    from decimal import Decimal

    client = await callgate_client(plugins={"rec": Recording})
    status, body = await client.event(callgate_events.dice(callid="c1", duration=42, debit=0.12, currency="USD"))
    assert (status, body) == (200, {})
    assert client.plugin("rec").ended == {"c1": ("ANSWERED", 42, Decimal("0.12"), "USD")}
    with pytest.raises(KeyError, match="'nope'"):
        client.plugin("nope")
