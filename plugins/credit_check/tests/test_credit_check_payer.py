"""Which account pays: by caller, number table, custom, call header or application key."""

import json

import pytest

from callgate import samples
from callgate.protocols.v1.decode import decode_event
from callgate_credit_check.config import CreditCheckConfig
from callgate_credit_check.payer import PayerKey, canonical_account_id, canonical_user, payer_key, value_in_custom


def ice(**fields):
    return decode_event(json.dumps(samples.ice(**fields)))


def config(**values):
    return CreditCheckConfig.model_validate(values)


def test_by_caller_is_the_normalised_number():
    assert payer_key(ice(caller="46701234567"), config()) == PayerKey(account="+46701234567")
    assert payer_key(ice(caller="private"), config()) is None
    assert payer_key(ice(caller=None), config()) is None


def test_by_number_table_looks_the_caller_up():
    assert payer_key(ice(caller="46701234567"), config(account_by="number_table")) == PayerKey(number="+46701234567")


def test_by_user_is_the_in_app_callers_sinch_user():
    by_user = config(account_by="user")
    # an app-to-phone call from a Sinch SDK client: the cli is "private", the user is authenticated by Sinch
    assert payer_key(ice(caller="private", user="alice"), by_user) == PayerKey(user="alice")
    assert payer_key(ice(caller="private", user=" Alice "), by_user) == PayerKey(user="Alice")   # case kept
    assert payer_key(ice(caller="46701234567"), by_user) is None          # a phone caller names no user
    assert payer_key(ice(caller="private", user=""), by_user) is None
    assert PayerKey(user="alice").describe() == "user alice"


def test_operator_user_ids():
    assert canonical_user(" alice ") == "alice"
    with pytest.raises(ValueError, match="must not be empty"):
        canonical_user(" ")
    with pytest.raises(ValueError, match="control characters"):
        canonical_user("al\x00ice")


@pytest.mark.parametrize("custom, account", [
    ('{"account": "acme", "orderId": "A-1"}', "acme"), ('{"account": 42}', "42"), ("account=acme&x=1", "acme"),
    ("x=1; account = acme ", "acme"), ("x=1,account=acme", "acme"), ('{"account": null}', None),
    ('{"account": true}', None), ("{not json", None), ("accounts=acme", None), ("", None), ("account=", None),
])
def test_by_custom(custom, account):
    cfg = config(account_by="custom", account_key="account")
    expected = PayerKey(account=account) if account else None
    assert payer_key(ice(custom=custom), cfg) == expected


def test_by_call_header_and_by_application():
    headers = [{"key": "other", "value": "x"}, {"key": "billing-account", "value": "acme"}]
    assert payer_key(ice(callHeaders=headers), config(account_by="header", account_key="billing-account")) == \
        PayerKey(account="acme")
    assert payer_key(ice(), config(account_by="header", account_key="billing-account")) is None
    assert payer_key(ice(applicationKey="app-1"), config(account_by="application")) == PayerKey(account="app-1")


def test_custom_and_header_need_a_key():
    with pytest.raises(ValueError, match="needs account_key"):
        config(account_by="custom")


def test_value_in_custom_json_list_is_not_an_object():
    assert value_in_custom('["account"]', "account") is None


def test_operator_account_ids():
    assert canonical_account_id(config(), "46 70-123 45 67") == "+46701234567"
    with pytest.raises(ValueError, match="not a phone number"):
        canonical_account_id(config(), "acme")
    assert canonical_account_id(config(account_by="application"), " acme ") == "acme"
    with pytest.raises(ValueError, match="must not be empty"):
        canonical_account_id(config(account_by="application"), " ")
